"""``musicrep embed``: streamed decoding, explicit resampling, tiling, batching across files, the
outputs and index, and the memory bound on a 10-minute file.

Memory bound (stated): embedding one 10-minute 16 kHz file, the Python/numpy allocations
(tracemalloc, after compilation) peak below ``TRACED_BOUND_MB`` = 8 MB, where holding the
decoded track alone takes 38.4 MB (``load_audio`` peaks at ~77 MB, checked as the control); and
the process' peak RSS while embedding (VmHWM reset after loading and compiling) is at most
``RSS_SLACK_MB`` = 16 MB above embedding the same amount of audio as ten 1-minute files (same
number of batches, so the same XLA runtime memory). Peak RSS of a fresh process varies by tens of
MB from run to run (allocator arenas, thread stacks; once 19 MB in CI), so each side is the
lower of two runs. Linux only (/proc).
"""

import csv
import json
import subprocess
import sys
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data.audio_io import load_audio, resample
from musicrep_jax.serving import embed
from musicrep_jax.serving.inference import load_trained
from tests.helpers import REPO, run_cli
from tests.helpers import make_workdir

SR = 16000
MODEL = dict(n=7, channels=(8,) * 9)  # 3^7: 6,561-sample (0.41 s) segments
TRACED_BOUND_MB = 8.0
RSS_SLACK_MB = 16.0

MEMORY_SCRIPT = r"""
import json, sys, tracemalloc
import numpy as np
from musicrep_jax import embed
from musicrep_jax.serving.inference import load_trained
workdir, data_dir, out, *files = sys.argv[1:]
trained = load_trained(workdir, data_dir)
forward, _ = embed.make_forward(trained, 32)
np.asarray(forward(np.zeros((32, trained.input_length, 1), np.float32))[0])  # compile first
with open("/proc/self/clear_refs", "w") as f:  # Linux: reset the peak RSS (VmHWM) to the current
  f.write("5")
tracemalloc.start()
summary = embed.embed_files(files, forward, sample_rate=trained.sample_rate,
                            input_length=trained.input_length, out_dir=out, batch_size=32,
                            progress=False)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"traced_peak_mb": tracemalloc.get_traced_memory()[1] / 2 ** 20,
                  "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
                  "segments": summary["segments"]}))
"""


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
  forward, scores_name = embed.make_forward(trained, 4)
  paths = embed.list_audio_files(inputs)
  summary = embed.embed_files(paths, forward, sample_rate=SR, input_length=trained.input_length,
                              out_dir=tmp_path / "out", batch_size=4, block_seconds=0.37,
                              per_segment=True, scores_name=scores_name,
                              output_names=trained.tag_names, progress=False)
  assert (summary["files"], summary["ok"], summary["failed"]) == (5, 3, 2)

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


@pytest.mark.slow
def test_cli_refuses_other_rates_with_no_resample(workdir, tiny_data_dir, tmp_path):
  (tmp_path / "in").mkdir()
  _write(tmp_path / "in" / "ok.wav", 1.0, SR)
  _write(tmp_path / "in" / "cd.wav", 1.0, 44100)
  proc = run_cli(["embed", str(tmp_path / "in"), "--workdir", str(workdir), "--data-dir",
                  str(tiny_data_dir), "--out", str(tmp_path / "out"), "--no-resample",
                  "--no-progress"])
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert (summary["files"], summary["ok"], summary["failed"]) == (2, 1, 1)
  rows = list(csv.DictReader(open(tmp_path / "out/index.csv")))
  refused = next(r for r in rows if r["path"].endswith("cd.wav"))
  assert "44100 Hz differs from the model's 16000 Hz" in refused["reason"]
  assert np.load(tmp_path / "out/embeddings.npy").shape == (1, MODEL["channels"][-1])


def _ten_minute_wav(path):
  rng = np.random.default_rng(0)
  with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as f:
    for i in range(60):  # 60 x 10 s, written in blocks
      t = np.arange(10 * SR) / SR
      f.write((0.3 * np.sin(2 * np.pi * (220 + i) * t)
               + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
  return path


def _lowest_rss(workdir, data_dir, out, files, runs: int = 2) -> dict:
  """The measurement with the lowest peak RSS of ``runs`` fresh processes."""
  return min((_measure(workdir, data_dir, f"{out}_{i}", files) for i in range(runs)),
             key=lambda m: m["peak_rss_mb"])


def _measure(workdir, data_dir, out, files) -> dict:
  proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(workdir), str(data_dir),
                         str(out), *map(str, files)], cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_a_ten_minute_file_stays_within_the_memory_bound(workdir, tiny_data_dir, tmp_path):
  long = _ten_minute_wav(tmp_path / "ten_minutes.wav")
  one_minute = tmp_path / "one_minute.wav"
  audio, _ = sf.read(long, frames=60 * SR, dtype="int16")
  sf.write(one_minute, audio, SR, subtype="PCM_16")

  # Control: decoding the whole file at once, as load_audio does, is far above the bound.
  tracemalloc.start()
  load_audio(long, SR)
  full_decode_mb = tracemalloc.get_traced_memory()[1] / 2 ** 20
  tracemalloc.stop()
  assert full_decode_mb > 38.0

  streamed = _lowest_rss(workdir, tiny_data_dir, tmp_path / "o1", [long])
  ten_short = _lowest_rss(workdir, tiny_data_dir, tmp_path / "o2", [one_minute] * 10)
  print(f"10-min file: {streamed}; ten 1-min files: {ten_short}; "
        f"full decode {full_decode_mb:.1f} MB")
  assert streamed["segments"] == 1464  # 600 s / 6561 samples = 1463.3 -> 1463 + tail
  assert streamed["traced_peak_mb"] < TRACED_BOUND_MB
  assert streamed["peak_rss_mb"] < ten_short["peak_rss_mb"] + RSS_SLACK_MB
