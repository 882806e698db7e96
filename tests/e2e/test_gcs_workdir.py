"""A ``gs://`` workdir and data dir end to end, against the GCS API emulator on 127.0.0.1
(``gcs_emulator`` in tests/conftest.py): train tests/configs/tiny.py into ``gs://bucket/run``
from shards uploaded to the bucket, SIGKILL it after its first checkpoint, resume with the same
command, then ``eval`` and ``export`` from the bucket; everything matches an uninterrupted local
run. ``musicrep stage`` copies the shards down.
"""

import json
import subprocess
import sys
import os

import numpy as np
import pytest

from musicrep_jax import storage
from musicrep_jax.data.shards import open_shards
from musicrep_jax.training.checkpoints import load_state_as_numpy
from musicrep_jax.training.writers import read_jsonl
from tests.helpers import REPO, TINY_CONFIG, run_cli, wait_for

pytestmark = pytest.mark.slow
STEPS = 20
REMOTE = "gs://bucket/run"
TEST_METRICS = ("roc_auc", "pr_auc", "loss")


@pytest.fixture(scope="module")
def gcs_data(gcs_emulator, tiny_data_dir):
  """The tiny prepared shards, uploaded to ``gs://bucket/tiny_data``."""
  del gcs_emulator
  remote = storage.as_path("gs://bucket/tiny_data")
  for path in sorted(tiny_data_dir.rglob("*")):
    if path.is_file():
      storage.upload_file(path, remote.joinpath(*path.relative_to(tiny_data_dir).parts))
  return str(remote)


def _train_args(workdir, data_dir):
  return ["train", "--config", TINY_CONFIG, "--workdir", str(workdir), "--data-dir", str(data_dir)]


def _summary(proc) -> dict:
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _train_losses(workdir) -> dict:
  return {r["step"]: r["loss"] for r in read_jsonl(f"{workdir}/metrics.jsonl")
          if r["split"] == "train"}



def test_gs_workdir_survives_a_kill_and_matches_a_local_run(gcs_data, tiny_data_dir, tmp_path):
  local = _summary(run_cli(_train_args(tmp_path / "local", tiny_data_dir)))

  proc = subprocess.Popen([sys.executable, "-m", "musicrep_jax.cli",
                           *_train_args(REMOTE, gcs_data)],
                          cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  committed = storage.as_path(REMOTE) / "checkpoints" / "5" / "commit_success.txt"
  wait_for(committed.exists, proc)
  proc.kill()  # SIGKILL: no handler runs, whatever was in flight is lost.
  proc.wait()
  resumed = run_cli(_train_args(REMOTE, gcs_data))
  assert f"Resumed from {REMOTE}/checkpoints/" in resumed.stdout
  assert "Staging gs://bucket/tiny_data" in resumed.stdout
  remote = _summary(resumed)
  assert remote["workdir"] == REMOTE and remote["step"] == STEPS
  for key in TEST_METRICS:
    np.testing.assert_allclose(remote[key], local[key], rtol=1e-6, err_msg=key)

  # The log, the parameters and the run's files all live in the bucket.
  losses, ref_losses = _train_losses(REMOTE), _train_losses(tmp_path / "local")
  assert sorted(losses) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([losses[s] for s in sorted(losses)],
                             [ref_losses[s] for s in sorted(losses)], rtol=1e-6)
  params = load_state_as_numpy(f"{REMOTE}/checkpoints/{STEPS}/state")["params"]
  ref_params = load_state_as_numpy(tmp_path / "local" / "checkpoints" / str(STEPS) / "state")
  flat, ref_flat = (sorted(_flatten(t).items()) for t in (params, ref_params["params"]))
  assert [k for k, _ in flat] == [k for k, _ in ref_flat]
  for (key, x), (_, y) in zip(flat, ref_flat):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=key)
  run = storage.as_path(REMOTE)
  assert json.loads((run / "config.json").read_text())["num_train_steps"] == STEPS
  assert json.loads((run / "timing.json").read_text())["steps"] == STEPS
  assert len(list((run / "tensorboard").iterdir())) == 2  # One event file per session.
  assert (run / "best").is_dir()
  assert not (REPO / "gs:").exists(), "a gs:// path became a local folder"

  # eval and export restore from the bucket (trainer.restore_workdir).
  evaluated = _summary(run_cli(["eval", "--workdir", REMOTE, "--data-dir", gcs_data]))
  for key in TEST_METRICS:
    np.testing.assert_allclose(evaluated[key], local[key], rtol=1e-6, err_msg=key)
  exported = _summary(run_cli(["export", "--workdir", REMOTE, "--data-dir", gcs_data,
                               "--out", str(tmp_path / "export"), "--format", "stablehlo"]))
  assert exported["step"] == remote["best_step"]
  assert (tmp_path / "export" / "model.stablehlo").is_file()


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}/{key}").items()}
  return {prefix: np.asarray(tree)}


def test_stage_copies_a_remote_data_dir_to_local_shards(gcs_data, tmp_path):
  out = tmp_path / "staged"
  summary = _summary(run_cli(["stage", "--data-dir", gcs_data, "--out", str(out)]))
  assert summary == {"data_dir": str(out), "source": gcs_data}
  assert open_shards(out).split_sizes == {"train": 96, "validation": 12, "test": 12}
  missing = run_cli(["stage", "--data-dir", "gs://bucket/absent", "--out", str(out)], check=False)
  assert missing.returncode == 2
  assert missing.stderr.strip().splitlines()[-1] == (
      "error: The data dir gs://bucket/absent does not exist or holds no files.")
