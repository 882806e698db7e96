"""``musicrep embed``: streamed decoding, explicit resampling, tiling, batching across files, the
outputs and index. (The CLI and the memory bound on a 10-minute file:
tests/e2e/test_embed_cli_and_memory.py.)"""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data.audio_io import load_audio, resample
from musicrep_jax.serving import embed
from musicrep_jax.serving.inference import load_trained
from tests.helpers import make_workdir

SR = 16000
MODEL = dict(n=7, channels=(8,) * 9)  # 3^7: 6,561-sample (0.41 s) segments


@pytest.mark.parametrize("source, target", [(44100, 16000), (8000, 16000), (48000, 22050)])
@pytest.mark.parametrize("block", [1, 997, 50_000])
def test_streamed_resampling_equals_resampling_the_whole_signal(source, target, block):
  x = np.random.default_rng(0).standard_normal(source + 123).astype(np.float32)
  blocks = (x[i:i + block] for i in range(0, len(x), block))
  got = np.concatenate(list(embed.resample_stream(blocks, source, target)))
  whole = resample(x, source, target)
  assert got.shape == whole.shape
  np.testing.assert_allclose(got, whole, atol=1e-5)


@pytest.mark.parametrize("n", [0, 3, 10, 25, 40])
@pytest.mark.parametrize("hop", [None, 3])
def test_segments_cover_the_track_with_an_end_aligned_tail(n, hop):
  x = np.arange(n, dtype=np.float32)
  segments = list(embed.segment_stream((x[i:i + 4] for i in range(0, n, 4)), 10, hop))
  step = hop or 10
  expected = list(range(0, n - 9, step)) if n >= 10 else ([0] if n else [])
  if n >= 10 and expected[-1] + 10 < n:
    expected.append(n - 10)  # the tail segment ends exactly at the end
  assert [s.start for s in segments] == expected
  for s in segments:
    np.testing.assert_array_equal(s.audio, np.pad(x[s.start:s.start + 10], (0, max(0, 10 - n))))
    assert s.padded == (n < 10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_data_dir):
  return make_workdir(tmp_path_factory.mktemp("embed") / "wd", tiny_data_dir, **MODEL)


def _write(path, seconds, rate, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  sf.write(path, (0.2 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32),
           rate, subtype="PCM_16")
  return path


def test_embeddings_equal_the_model_on_whole_decoded_files(workdir, tiny_data_dir, tmp_path):
  files = [_write(tmp_path / "a.wav", 2.3, SR), _write(tmp_path / "b.flac", 1.7, 44100, 2, 1),
           _write(tmp_path / "short.wav", 0.1, SR, seed=2)]
  (tmp_path / "bad.wav").write_bytes(b"RIFF" + b"\0" * 60)
  inputs = [str(tmp_path), str(tmp_path / "missing.wav")]
  trained = load_trained(workdir, str(tiny_data_dir))
  forward, spec = embed.make_forward(trained, 4)
  scores_name = spec.scores
  paths = embed.list_audio_files(inputs)
  summary = embed.embed_files(paths, forward, sample_rate=SR, input_length=trained.input_length,
                              out_dir=tmp_path / "out", batch_size=4, block_seconds=0.37,
                              per_segment=True, scores_name=scores_name,
                              output_names=trained.tag_names, progress=False)
  assert (summary["files"], summary["ok"], summary["skipped"], summary["failed"]) == (5, 3, 0, 2)

  rows = {pathlib_name(r["path"]): r for r in csv.DictReader(open(tmp_path / "out/index.csv"))}
  assert rows["missing.wav"]["reason"] == "missing file"
  assert rows["bad.wav"]["status"] == "error" and rows["bad.wav"]["row"] == "-1"
  assert rows["b.flac"]["source_sample_rate"] == "44100" and rows["b.flac"]["resampled"] == "True"
  assert rows["short.wav"]["padded"] == "True" and rows["short.wav"]["segments"] == "1"

  # Reference: decode the whole file at once, tile, run the model, average.
  length = trained.input_length
  apply = jax.jit(lambda a: trained.model.apply(trained.variables, a, train=False))
  embeddings = np.load(tmp_path / "out/embeddings.npy")
  scores = np.load(tmp_path / "out/tag_scores.npy")
  for name in ("a.wav", "b.flac", "short.wav"):
    audio = load_audio(tmp_path / name, SR)
    starts = list(range(0, len(audio) - length + 1, length))
    if len(audio) >= length and starts[-1] + length < len(audio):
      starts.append(len(audio) - length)
    tiles = (np.stack([audio[s:s + length] for s in starts]) if starts
             else np.pad(audio, (0, length - len(audio)))[None])
    out = apply(jnp.asarray(tiles[..., None]))
    row = int(rows[name]["row"])
    assert int(rows[name]["segments"]) == len(tiles)
    np.testing.assert_allclose(embeddings[row], np.mean(out["embedding"], 0), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(scores[row], np.mean(jax.nn.sigmoid(out["logits"]), 0),
                               rtol=1e-5, atol=1e-6)
  assert np.load(tmp_path / "out/segment_embeddings.npy").shape[0] == summary["segments"]
  top = json.loads(open(tmp_path / "out/index.jsonl").readline())["top"]
  assert set(top) <= set(trained.tag_names) and len(top) == 5


def pathlib_name(path: str) -> str:
  return path.rsplit("/", 1)[-1]


def _cut(path, fraction):
  """``path`` cut to ``fraction`` of its bytes (a download or copy that stopped early)."""
  data = path.read_bytes()
  path.write_bytes(data[:int(len(data) * fraction)])
  return path


def test_unsupported_and_truncated_files_are_skipped_with_their_reason(workdir, tiny_data_dir,
                                                                       tmp_path):
  """A folder's ``.m4a`` is listed and skipped (libsndfile has no AAC); a truncated FLAC
  (STREAMINFO knows the length; decoding fails at the cut) and a truncated MP3 (when this
  libsndfile writes MP3; its header knows the length, decoding just ends early) are skipped as
  truncated, not embedded as if whole; a complete MP3 is embedded."""
  folder = tmp_path / "in"
  folder.mkdir()
  _write(folder / "ok.wav", 1.0, SR)
  (folder / "song.m4a").write_bytes(b"\0\0\0\x20ftypM4A " + bytes(200))
  (folder / "cover.jpg").write_bytes(b"not audio")  # Not audio at all: not listed.
  _cut(_write(folder / "cut.flac", 3.0, SR), 0.5)
  has_mp3 = "MP3" in sf.available_formats()
  if has_mp3:
    rng = np.random.default_rng(3)
    for name in ("whole.mp3", "cut.mp3"):
      sf.write(folder / name, (0.2 * rng.standard_normal(3 * SR)).astype(np.float32), SR,
               format="MP3", subtype="MPEG_LAYER_III")
    _cut(folder / "cut.mp3", 0.5)
  trained = load_trained(workdir, str(tiny_data_dir))
  forward, spec = embed.make_forward(trained, 4)
  paths = embed.list_audio_files([folder])
  assert "cover.jpg" not in {p.name for p in paths} and "song.m4a" in {p.name for p in paths}
  summary = embed.embed_files(paths, forward, sample_rate=SR, input_length=trained.input_length,
                              out_dir=tmp_path / "out", batch_size=4, scores_name=spec.scores,
                              progress=False)
  rows = {pathlib_name(r["path"]): r for r in csv.DictReader(open(tmp_path / "out/index.csv"))}
  assert rows["song.m4a"]["status"] == "skipped"
  assert rows["song.m4a"]["reason"].startswith("unsupported format .m4a")
  assert rows["cut.flac"]["status"] == "skipped", rows["cut.flac"]
  assert rows["cut.flac"]["reason"].startswith("truncated: decoded ")
  assert "of the 3.00 s its header declares" in rows["cut.flac"]["reason"]
  assert rows["ok.wav"]["status"] == "ok"
  expected_ok = 1
  if has_mp3:
    assert rows["whole.mp3"]["status"] == "ok"
    assert rows["cut.mp3"]["status"] == "skipped" and "truncated" in rows["cut.mp3"]["reason"]
    expected_ok = 2
  assert (summary["ok"], summary["skipped"], summary["failed"]) == (
      expected_ok, len(rows) - expected_ok, 0)
  assert np.load(tmp_path / "out/embeddings.npy").shape[0] == expected_ok


def test_embed_command_exits_2_when_nothing_was_embedded(workdir, tiny_data_dir, tmp_path,
                                                         capsys):
  """The command's result when every file failed or was skipped: one ``UserError`` naming the
  counts (the CLI prints it as one ``error:`` line and exits 2), after the index is written and
  each file's reason printed."""
  import argparse

  from musicrep_jax.commands import embed as embed_command
  from musicrep_jax.errors import UserError

  (tmp_path / "a.m4a").write_bytes(bytes(64))
  (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(60))
  parser = argparse.ArgumentParser()
  embed_command.add_arguments(parser)
  args = parser.parse_args([str(tmp_path / "a.m4a"), str(tmp_path / "bad.wav"), "--workdir",
                            str(workdir), "--data-dir", str(tiny_data_dir), "--out",
                            str(tmp_path / "out"), "--no-progress"])
  with pytest.raises(UserError, match=r"None of the 2 files was embedded \(1 skipped, 1 "
                                      r"failed; reasons in .*index.csv\)"):
    embed_command.run(args, [])
  err = capsys.readouterr().err
  assert "skipped " in err and "unsupported format .m4a" in err and "failed " in err
  assert "error:" not in err  # The CLI adds the one error line.
  assert (tmp_path / "out/index.csv").exists()
