"""Musical word embedding (paper 12): vocabulary, sampling, SGNS training, vectors IO, CLI."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from musicrep_jax.data import word_vectors
from musicrep_jax.errors import UserError
from musicrep_jax.systems.word2vec import evaluate, sgns, text, vocab as vocab_lib
from tests.helpers import REPO, run_cli


@pytest.fixture(scope="module")
def planted():
  sentences, groups = text.planted_sentences(num_groups=10, group_size=4, num_sentences=3000)
  cfg = sgns.SkipGramConfig(dim=32, epochs=5, batch_size=256, min_count=2)
  return sentences, groups, sgns.train_skipgram(sentences, cfg, progress=False)


def test_planted_relations_are_recovered(planted):
  sentences, groups, emb = planted
  assert emb.stats["compilations"] == 1
  assert emb.stats["epoch_loss"][-1] < emb.stats["epoch_loss"][0]
  precision = evaluate.planted_precision(emb.vocab.words, emb.vectors, groups)
  assert precision >= 0.9, precision
  # The untrained (initial) vectors recover nothing: chance is ~3 / 440.
  init = sgns._init_tables(__import__("jax").random.key(0), len(emb.vocab), 32)["in"]
  assert evaluate.planted_precision(emb.vocab.words, np.asarray(init), groups) < 0.2


def test_vocab_subsampling_and_noise():
  sentences = [["a"] * 50 + ["b"] * 5 + ["c"] * 1]
  vocab = vocab_lib.build_vocab(sentences, min_count=2)
  assert vocab.words == ("a", "b") and list(vocab.counts) == [50, 5]
  keep = vocab_lib.keep_probabilities(vocab.counts, 0.01)
  t = 0.01 * 55
  np.testing.assert_allclose(keep, np.minimum(1, (np.sqrt(vocab.counts / t) + 1) * t /
                                              vocab.counts))
  assert keep[0] < keep[1] <= 1.0
  assert np.all(vocab_lib.keep_probabilities(vocab.counts, 0) == 1)
  cdf = vocab_lib.noise_cdf(vocab.counts)
  np.testing.assert_allclose(cdf[0], 50 ** 0.75 / (50 ** 0.75 + 5 ** 0.75), rtol=1e-6)
  encoded = vocab_lib.encode_sentences(vocab, sentences + [["b", "zzz", "a"]])
  assert len(encoded) == 57 and list(encoded.sentence[-2:]) == [1, 1]
  kept = vocab_lib.subsample(encoded, keep, np.random.default_rng(0))
  assert 0 < len(kept) < len(encoded)
  with pytest.raises(UserError, match="min_count"):
    vocab_lib.build_vocab(sentences, min_count=100)


def test_word_vector_files_round_trip(tmp_path):
  words = ["rock", "hip_hop", "café"]
  vectors = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
  word_vectors.save_word2vec_text(tmp_path / "v.txt", words, vectors)
  word_vectors.save_word2vec_binary(tmp_path / "v.bin", words, vectors)
  lines = (tmp_path / "v.txt").read_text(encoding="utf-8").splitlines()
  assert lines[0] == "3 5"
  (tmp_path / "g.txt").write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
  for name, fmt in (("v.txt", "word2vec_text"), ("v.bin", "word2vec_binary"),
                    ("g.txt", "glove")):
    assert word_vectors.detect_format(tmp_path / name) == fmt
    loaded = word_vectors.load_word_vectors(tmp_path / name)
    assert loaded.words == tuple(words)
    np.testing.assert_allclose(loaded.vectors, vectors, rtol=1e-5, atol=1e-6)
  loaded = word_vectors.load_word_vectors(tmp_path / "v.txt")
  np.testing.assert_allclose(loaded.phrase_vector("Hip-Hop"), vectors[1], rtol=1e-5)
  np.testing.assert_allclose(loaded.phrase_vector("rock café"), vectors[[0, 2]].mean(0),
                             rtol=1e-5)
  matrix, found = loaded.label_matrix(["rock", "polka"])
  assert list(found) == [True, False] and not matrix[1].any()
  with pytest.raises(UserError, match="does not exist"):
    word_vectors.load_word_vectors(tmp_path / "missing.txt")
  (tmp_path / "bad.txt").write_text("2 3\na 1 2 3\nb 1 2\n")
  with pytest.raises(UserError, match="line 2"):
    word_vectors.load_word_vectors(tmp_path / "bad.txt")


def test_files_agree_with_gensim(tmp_path):
  models = pytest.importorskip("gensim.models")
  words = ["rock", "jazz", "ambient"]
  vectors = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
  for binary in (False, True):
    path = tmp_path / f"ours{int(binary)}"
    (word_vectors.save_word2vec_binary if binary else word_vectors.save_word2vec_text)(
        path, words, vectors)
    kv = models.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    np.testing.assert_allclose(kv[words], vectors, rtol=1e-5, atol=1e-6)
    kv.save_word2vec_format(str(path) + ".gensim", binary=binary)
    back = word_vectors.load_word_vectors(str(path) + ".gensim")
    np.testing.assert_allclose(back.vectors, vectors, rtol=1e-5, atol=1e-6)


def test_music_text_holds_out_context_words():
  from musicrep_jax.data_pipelines.synthetic_corpus import CorpusConfig, SyntheticCorpus

  corpus = SyntheticCorpus(CorpusConfig(num_clips=60, num_users=10))
  cat = text.corpus_catalogue(corpus)
  sentences = text.catalogue_music_sentences(cat, holdout_words=("happy", "sad", "calm",
                                                                 "angry"))
  test_tracks = {f"track_{t}" for t in cat.track[cat.split == "test"]}
  moods = {"happy", "sad", "calm", "angry"}
  track_sentences = [s for s in sentences if any(w.startswith("artist_") for w in s)]
  assert len(track_sentences) == 60
  for s in track_sentences:
    track = next(w for w in s if w.startswith("track_"))
    assert bool(moods & set(s)) == (track not in test_tracks)
  assert len(sentences) > 60  # user listening sentences follow


def test_sharded_training_matches_one_device(tmp_path):
  """The batch sharded over 8 (fake) devices gives the 1-device vectors."""
  script = textwrap.dedent("""
    import json, jax, numpy as np
    from musicrep_jax.training import mesh as sharding
    from musicrep_jax.systems.word2vec import sgns, text
    s, _ = text.planted_sentences(num_groups=4, num_sentences=300)
    cfg = sgns.SkipGramConfig(dim=8, epochs=2, batch_size=64, min_count=1)
    one = sgns.train_skipgram(s, cfg, mesh=sharding.make_mesh(devices=jax.devices()[:1]),
                              progress=False)
    eight = sgns.train_skipgram(s, cfg, mesh=sharding.make_mesh(), progress=False)
    print(json.dumps({"devices": len(jax.devices()),
                      "diff": float(np.abs(one.vectors - eight.vectors).max()),
                      "scale": float(np.abs(one.vectors).max())}))
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True,
                        text=True, timeout=300, check=True)
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["devices"] == 8
  assert result["diff"] <= 1e-4 * max(result["scale"], 1.0), result


def test_cli_writes_vectors(tmp_path):
  out = tmp_path / "w2v"
  proc = run_cli(["word2vec", "--config", "configs/word2vec.py:runlocal", "--out", str(out),
                  "--config.skipgram.epochs=1", "--config.music.corpus.num_clips=120",
                  "--config.progress_bar=False"])
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert summary["compilations"] == 1 and summary["words_per_s"] > 0
  vectors = word_vectors.load_word_vectors(out / "vectors.txt")
  assert vectors.dim == 32 and "rock" in vectors and "track_0" in vectors
  assert summary["vocab_size"] == len(vectors.words)
  assert 0.0 <= summary["association_auc"] <= 1.0
  bad = run_cli(["word2vec", "--out", str(out), "--config.general_text=/no/such/file"],
                check=False)
  assert bad.returncode == 2 and "general text" in bad.stderr


def test_trainer_runner_resolves_word_vectors_config_through_the_cache(monkeypatch, tmp_path):
  """``task.kwargs.word_vectors_config`` becomes ``word_vectors`` (the cached vectors of that
  word2vec config) before training, unless ``word_vectors`` is already set."""
  from musicrep_jax import config_loading
  from musicrep_jax.systems import supervised
  from musicrep_jax.systems.word2vec import cache

  asked = []
  monkeypatch.setattr(cache, "cached_vectors",
                      lambda spec: asked.append(spec) or tmp_path / "vectors.txt")
  config = config_loading.load_config("zero_shot:runlocal")
  assert config.task.kwargs.word_vectors_config == "word2vec:runlocal"
  supervised.resolve_word_vectors(config)
  assert config.task.kwargs.word_vectors == str(tmp_path / "vectors.txt")
  assert asked == ["word2vec:runlocal"]
  config.task.kwargs.word_vectors = "mine.txt"
  supervised.resolve_word_vectors(config)
  assert config.task.kwargs.word_vectors == "mine.txt" and len(asked) == 1
