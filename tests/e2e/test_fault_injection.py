"""SIGKILL at several points of `musicrep prepare folder` (issue 17: "a killed prepare leaves
incomplete.* folders forever"): the process is killed for real (``SIGKILL``, no handler runs) at
a point chosen by a patch in the child process, not by timing: while decoding the first split,
after the first split's shards were written (while decoding the next), and after the dataset
folder was finalized but before ``prepare_report.json`` was written. The same command run again
cleans up the partial output and writes shards whose records equal an uninterrupted prepare's.

(SIGKILL of a training run: tests/e2e/test_distributed_training.py (after a committed
checkpoint), tests/e2e/test_gcs_workdir.py (remote workdir), tests/e2e/test_workdir_safety.py
(during an asynchronous save; a damaged latest checkpoint).)"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import cli
from musicrep_jax.data.shards import open_shards
from musicrep_jax.data_pipelines import prepare
from tests.helpers import REPO

pytestmark = pytest.mark.slow

SR = 16000
SPLITS = ["train"] * 24 + ["validation"] * 6 + ["test"] * 6


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
  """36 stereo 1.5-s WAVs at 22.05 kHz (resampled to 16 kHz when prepared) with a split column,
  and an uninterrupted prepare of them; -> (audio folder, manifest, reference shards folder)."""
  root = tmp_path_factory.mktemp("prepare_faults")
  audio = root / "audio"
  audio.mkdir()
  rng = np.random.default_rng(0)
  rows = ["path,tags,split"]
  for i, split in enumerate(SPLITS):
    sf.write(audio / f"{i:02d}.wav", rng.uniform(-0.5, 0.5, (33075, 2)).astype(np.float32),
             22050)
    rows.append(f"{i:02d}.wav,{('rock', 'jazz', 'pop')[i % 3]},{split}")
  manifest = root / "tags.csv"
  manifest.write_text("\n".join(rows) + "\n")
  reference = root / "reference"
  prepare.prepare_folder(reference, audio_dir=audio, manifest=manifest, sample_rate=SR,
                         workers=2, progress=False)
  return audio, manifest, reference


# The child: `musicrep prepare folder ARGS` with one function patched to SIGKILL the process.
_CHILD = """
import glob, os, signal, sys, threading
from musicrep_jax import cli
from musicrep_jax.data_pipelines import manifest_builder, prepare

point, out = sys.argv[1], sys.argv[2]
calls = []
dying = threading.Lock()  # Decoding threads: the first to get here reports and kills.

def die(what):
  dying.acquire()  # The others wait here until the SIGKILL.
  shards = glob.glob(os.path.join(out, "musicrep_folder", "incomplete.*", "*.array_record*"))
  print(f"killed {what}; shard files: {sorted(map(os.path.basename, shards))}", flush=True)
  os.kill(os.getpid(), signal.SIGKILL)

decode = manifest_builder.ManifestBuilder._decode
def patched_decode(self, row):
  calls.append(row.clip_id)
  if point == "decoding" and len(calls) == 10:
    die("while decoding the train split")
  if point == "next_split" and row.split == "validation":
    die("after the train split was written")
  return decode(self, row)
manifest_builder.ManifestBuilder._decode = patched_decode

write_report = prepare._write_report
def patched_write_report(report, out_dir):
  if point == "report" and "error" not in report:
    die("before prepare_report.json was written")
  return write_report(report, out_dir)
prepare._write_report = patched_write_report
sys.exit(cli.main(sys.argv[3:]))
"""


def _records(folder) -> dict:
  shards = open_shards(folder)
  return {split: [shards.source(split)[i] for i in range(n)]
          for split, n in sorted(shards.split_sizes.items())}


@pytest.mark.parametrize("point", ["decoding", "next_split", "report"])
def test_killed_prepare_is_cleaned_up_and_rerun_equals_an_uninterrupted_one(
    collection, tmp_path, point, capsys):
  audio, manifest, reference = collection
  out = tmp_path / "out"
  args = ["prepare", "folder", "--audio-dir", str(audio), "--manifest", str(manifest),
          "--sample-rate", str(SR), "--out", str(out)]
  killed = subprocess.run([sys.executable, "-c", _CHILD, point, str(out), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
  assert killed.returncode == -9, killed.stderr[-3000:]
  line, = [l for l in killed.stdout.splitlines() if l.startswith("killed")]
  dataset = out / "musicrep_folder"
  if point == "decoding":  # TFDS's temporary folder, nothing finished in it.
    assert glob.glob(str(dataset / "incomplete.*")), line
  elif point == "next_split":  # The train split's shards were written before the kill.
    assert "train.array_record" in line and glob.glob(str(dataset / "incomplete.*")), line
  else:  # The dataset is in place, the report is not: unfinished.
    assert (dataset / "1.0.0").is_dir() and not (out / "prepare_report.json").exists()

  assert cli.main(args) == 0, capsys.readouterr().err  # The same command, run again.
  assert "file(s) seen" in capsys.readouterr().out
  assert not glob.glob(str(dataset / "incomplete.*"))
  assert sorted(p.name for p in dataset.iterdir()) == ["1.0.0"]
  assert sorted(p.name for p in out.iterdir()) == [".prepare.lock", "musicrep_folder",
                                                   "prepare_report.json"]
  got, want = _records(out), _records(reference)
  assert {s: len(r) for s, r in got.items()} == {"test": 6, "train": 24, "validation": 6}
  for split in want:
    for a, b in zip(got[split], want[split]):
      assert sorted(a) == sorted(b)
      for key in b:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{split} {key}")
  report = json.loads((out / "prepare_report.json").read_text())
  assert report["total"] == {"seen": 36, "written": 36, "skipped": 0}
  print(f"{point}: {line}")
