"""``musicrep embed`` in fresh processes: the CLI refusing other sample rates with --no-resample,
and the memory bound on a 10-minute file. (Decoding, resampling, tiling and outputs in-process:
tests/unit/serving/test_embed.py.)

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

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data.audio_io import load_audio
from tests.helpers import REPO, make_workdir, run_cli
from tests.unit.serving.test_embed import MODEL, SR, _write


TRACED_BOUND_MB = 8.0
RSS_SLACK_MB = 16.0

MEMORY_SCRIPT = r"""
import json, sys, tracemalloc
import numpy as np
from musicrep_jax.serving import embed
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


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_data_dir):
  return make_workdir(tmp_path_factory.mktemp("embed") / "wd", tiny_data_dir, **MODEL)


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
