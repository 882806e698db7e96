"""Learning runs of the tasks on synthetic corpora, checked on held-out clips: paper 6's
classification models (genre), DCUE (paper 7) against the popularity baseline, the
metric-learning systems (papers 4, 9, 13, 14), and zero-shot tagging (papers 10, 11) with word
vectors of paper 12 or attribute side information, including evaluation on another corpus.
(The tasks' fast tests: tests/unit/tasks/.)"""

import json

import numpy as np
import pytest

from musicrep_jax import cli, config_loading
from musicrep_jax.configs import metric_learning as metric_configs
from musicrep_jax.data import word_vectors
from musicrep_jax.data.shards import open_shards
from musicrep_jax.training import trainer
from tests.helpers import synthetic_shards


# ------------------------------------------------------------------------- classification (paper 6)


# Paper 6's two models (basic SampleCNN, ReSE-2-Multi), each through its config's :runlocal on a
# 300-clip corpus (2 s, 16 kHz; 240 train, 60 held out), classifying genre (8 classes, chance
# 0.125) from 0.5-s segments. Measured (200 steps, provisional): basic 0.33, improved 0.52 over
# the 60 held-out clips. P(>= 15 of 60 right by chance) ~ 0.003.
MIN_HELD_OUT_ACCURACY = 0.25


@pytest.fixture(scope="module")
def genre_data_dir(tmp_path_factory):
  return synthetic_shards(tmp_path_factory, "genre_corpus", num_clips=300, clip_seconds=2.0)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["configs/samplecnn_speech_commands.py:basic,runlocal",
                                    "configs/samplecnn_dcase2017.py:improved,task1,runlocal"])
def test_paper6_models_beat_chance_on_held_out_clips(config, genre_data_dir, tmp_path, capsys):
  steps = 200
  assert cli.main(["train", "--config", config, "--data-dir", str(genre_data_dir),
                   "--workdir", str(tmp_path), "--config.model.kwargs.input_samples=8000",
                   "--config.model.kwargs.bn_momentum=0.9", f"--config.num_train_steps={steps}",
                   f"--config.eval_every={steps}", "--config.progress_bar=false"]) == 0
  test = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  validation = [r for r in rows if r["split"] == "validation"][-1]
  assert test["split"] == "test" and test["best_step"] == steps
  correct = test["accuracy"] * test["clips"] + validation["accuracy"] * validation["clips"]
  held_out = test["clips"] + validation["clips"]
  assert held_out == 60
  assert correct / held_out >= MIN_HELD_OUT_ACCURACY, (test, validation)


# ----------------------------------------------------------------------------------- DCUE (paper 7)


@pytest.fixture(scope="module")
def dcue_corpus(tmp_path_factory):
  """480 synthetic clips of 1.5 s (384 training tracks, 48 cold-start test tracks), 200 users."""
  return synthetic_shards(tmp_path_factory, "dcue_corpus", num_clips=480, clip_seconds=1.5)


@pytest.mark.slow
def test_dcue_beats_popularity_on_heldout_and_cold_start_tracks(dcue_corpus, tmp_path):
  """Trained end to end (user table and audio CNN, paper 7's hinge on cosines), the model ranks
  each user's held-out listens above popularity and ranks never-trained test tracks above
  chance, where popularity knows nothing."""
  from musicrep_jax.configs.dcue import get_config
  from musicrep_jax.training import trainer

  c = get_config("runlocal")
  c.eval_every = c.checkpoint_every = c.num_train_steps  # 1,600 steps
  c.progress_bar = False
  summary = trainer.train(c, tmp_path / "run", data_dir=str(dcue_corpus))
  assert summary["compilations"] == 1
  result = trainer.evaluate_workdir(tmp_path / "run", "test", str(dcue_corpus))
  assert result["cold/items"] == 48 and result["cold/users"] > 150, result
  # Measured at 1,600 steps (seeds 0 and 1): warm 0.689 against popularity 0.648; cold start
  # 0.606-0.607 against popularity's 0.5 (it has no counts for these tracks). At 1,200 steps
  # the warm margin shrinks to 0.025.
  assert result["warm/auc"] > result["popularity/warm/auc"] + 0.02, result
  assert result["popularity/cold/auc"] < 0.53, result
  assert result["cold/auc"] > 0.56, result


# ------------------------------------------------------------ metric learning (papers 4, 9, 13, 14)

SYSTEMS = {
    "artist_dcnn": "artist_dcnn:runlocal",
    "siamese_artist_dcnn": "siamese_artist_dcnn:runlocal",
    "artist_album_track_joint": "artist_album_track:joint,runlocal",
    "csn_disentangled_track": "csn_disentangled:track,runlocal",
}


def _train(name, tmp_path_factory):
  config = config_loading.load_config_file(config_loading.resolve_config_spec(SYSTEMS[name]))
  metric_configs.metric_tiny(config, num_train_steps=240)
  config.eval_every = config.checkpoint_every = 240
  return trainer.train(config, tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  cache = {}

  def get(name):
    if name not in cache:
      cache[name] = _train(name, tmp_path_factory)
    return cache[name]

  return get


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_system_learns_held_out_similarity(trained, name):
  """Tiny runs (240 steps, 100 held-out clips); margins measured at 0.83-0.90 track triplet
  accuracy, artist mAP 3.3-3.8x chance, tag mAP chance + 0.07 (csn)."""
  summary = trained(name)
  test = summary["test"]
  assert summary["compilations"] == 1 and test["clips"] == 100
  # Two segments of one held-out clip are closer than a segment of another clip.
  assert test["track/triplet_acc"] > 0.75, test["track/triplet_acc"]
  # Retrieval beats a random ranking on what the system was trained on.
  if name.startswith("csn"):
    assert test["overall/map"] > test["overall/chance"] + 0.03, test
    assert test["overall/sub_map"] > test["overall/chance"] + 0.03, test
  else:
    assert test["artist/map"] > 2 * test["artist/chance"], test


# ---------------------------------------------------------------- zero-shot tagging (papers 10, 11)


@pytest.mark.slow
def test_unseen_tags_are_retrieved_with_trained_word_vectors(tiny_data_dir, tmp_path):
  """Word vectors trained by musicrep's skip-gram on the corpus's music text let the audio model
  rank clips for tags it never saw clearly above chance."""
  from musicrep_jax.configs.zero_shot import get_config
  from musicrep_jax.data_pipelines.synthetic_corpus import CorpusConfig, SyntheticCorpus
  from musicrep_jax.training import trainer
  from musicrep_jax.systems.word2vec import sgns, text

  sentences = text.catalogue_music_sentences(
      text.corpus_catalogue(SyntheticCorpus(CorpusConfig(num_clips=600))), repeats=5)
  emb = sgns.train_skipgram(sentences, sgns.SkipGramConfig(dim=32, epochs=10), progress=False)
  vectors = tmp_path / "vectors.txt"
  word_vectors.save_word2vec_text(vectors, emb.vocab.words, emb.vectors)

  c = get_config("runlocal")
  c.task.kwargs.word_vectors = str(vectors)
  c.num_train_steps = 300
  c.eval_every = c.checkpoint_every = 300
  c.data.segments_per_clip = 2
  c.progress_bar = False
  summary = trainer.train(c, tmp_path / "run", data_dir=str(tiny_data_dir))
  assert summary["compilations"] == 1
  # Unseen tags never trained on: score the training clips' audio too (paper 10 evaluates
  # (B+C)-Y, B being training instances when training on A+B).
  train = trainer.evaluate_workdir(tmp_path / "run", "train", str(tiny_data_dir))
  assert train["unseen_tags"] == 5 and train["clips_bc"] > 40
  split = json.loads((tmp_path / "run" / "run_info.json").read_text())["tag_split"]
  assert len(split["unseen"]) == 5 and not set(split["seen"]) & set(split["unseen"])
  assert train["auc_l_seen"] > 0.7, train  # measured 0.80
  assert train["auc_l_unseen"] > 0.62, train  # measured 0.75
  assert train["auc_i_unseen"] > 0.6, train  # measured 0.75


@pytest.mark.slow
def test_attribute_side_information_trains_on_seen_genres(tiny_data_dir, tmp_path):
  """Paper 10's attribute setup: genres described by instrument counts; the seen genres are
  learned, the unseen ones are scored (on 8 genres the transfer to 2 unseen ones is weak:
  auc_l_unseen 0.54-0.66 over split seeds 0-3, mean 0.60; not asserted)."""
  from musicrep_jax.configs.zero_shot import get_config
  from musicrep_jax.data_pipelines.synthetic_corpus import GENRES
  from musicrep_jax.training import trainer

  c = get_config("attributes,runlocal")
  c.num_train_steps = c.eval_every = c.checkpoint_every = 300
  c.data.segments_per_clip = 2
  c.progress_bar = False
  trainer.train(c, tmp_path / "run", data_dir=str(tiny_data_dir))
  side = trainer.make_task(c).bind(open_shards(tiny_data_dir)).data
  assert side.vectors.shape[1] == 2 * 9 and side.seen.sum() == 6
  genre_rows = [open_shards(tiny_data_dir).tag_names.index(g) for g in GENRES]
  assert set(np.flatnonzero(side.seen | side.unseen)) == set(genre_rows)
  train = trainer.evaluate_workdir(tmp_path / "run", "train", str(tiny_data_dir))
  assert train["unseen_tags"] == 2 and train["seen_tags"] == 6
  assert train["auc_l_seen"] > 0.85, train  # measured 0.96-0.99
  assert 0.0 <= train["auc_l_unseen"] <= 1.0


def _write_other_corpus(root, tag_subset, num_clips=30):
  """The embedded corpus rendered with seed 1 as a folder of wav files whose manifest keeps only
  ``tag_subset`` of each clip's tag words (plus a word no vector knows); all in the test split."""
  import csv

  import soundfile as sf
  from musicrep_jax.data_pipelines.synthetic_corpus import CorpusConfig, SyntheticCorpus

  corpus = SyntheticCorpus(CorpusConfig(num_clips=num_clips, seed=1, clip_seconds=2.0,
                                        num_artists=10))
  audio_dir = root / "audio"
  audio_dir.mkdir(parents=True)
  manifest = root / "manifest.csv"
  with open(manifest, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["path", "tags", "split"])
    for i, clip in enumerate(corpus.clips):
      sf.write(audio_dir / f"{i}.wav", corpus.render(i), 16000)
      words = [w for w in corpus.tag_text(i).split() if w in tag_subset] + ["zzzunknownword"]
      writer.writerow([f"{i}.wav", ";".join(words), "test"])
  return audio_dir, manifest


@pytest.mark.slow
def test_knowledge_transfer_evaluates_the_other_corpus_unseen_tags(tiny_data_dir, tmp_path,
                                                                    capsys):
  """`:runlocal`'s word vectors (``word_vectors_config``, trained once into the cache, as
  `musicrep train` does); `musicrep eval --data-dir OTHER` then scores the other corpus's clips
  on its own tags: those that were unseen in training are its unseen tags, a word without a
  vector takes no part."""
  import json

  from musicrep_jax.configs.zero_shot import get_config
  from musicrep_jax.data_pipelines.prepare import prepare_folder
  from musicrep_jax import cli
  from musicrep_jax.systems.word2vec.cache import cached_vectors
  from musicrep_jax.training import run_data as data, trainer

  c = get_config("runlocal")
  assert c.task.kwargs.word_vectors == ""
  c.task.kwargs.word_vectors = str(cached_vectors(c.task.kwargs.word_vectors_config))
  c.num_train_steps = c.eval_every = c.checkpoint_every = 10
  c.data.segments_per_clip = 1
  c.progress_bar = False
  trainer.train(c, tmp_path / "run", data_dir=str(tiny_data_dir))
  assert list(data.cache_root().glob("word2vec-*/vectors.txt"))

  side = trainer.make_task(c).bind(open_shards(tiny_data_dir)).data
  names = np.array(open_shards(tiny_data_dir).tag_names)
  unseen_words, seen_words = list(names[side.unseen]), list(names[side.seen])
  assert unseen_words
  subset = set(unseen_words + seen_words[:3])
  audio_dir, manifest = _write_other_corpus(tmp_path / "other", subset)
  prepare_folder(tmp_path / "other_shards", audio_dir=audio_dir, manifest=manifest,
                 sample_rate=16000, progress=False)
  other_tags = open_shards(tmp_path / "other_shards").tag_names
  assert "zzzunknownword" in other_tags and set(other_tags) <= subset | {"zzzunknownword"}

  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(tmp_path / "run"), "--data-dir",
                   str(tmp_path / "other_shards")]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["clips"] == 30
  assert result["unseen_tags"] == len(set(other_tags) & set(unseen_words))
  assert result["seen_tags"] == len(set(other_tags) & set(seen_words))
  assert result["unseen_tags"] + result["seen_tags"] == len(other_tags) - 1
  assert np.isfinite(result["auc_l_unseen"]) and np.isfinite(result["auc_i_unseen"])
