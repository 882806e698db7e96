"""End to end through the CLI, in real processes: 8 fake devices and 2 processes give the same
parameters as 1 device; a SIGKILLed run resumes onto the uninterrupted run's losses; SIGTERM
saves and exits. All runs share tests/tiny_config.py (20 steps, checkpoint every 5).
"""

import json
import pathlib
import signal
import socket
import subprocess
import sys
import os
import time

import jax
import numpy as np
import pytest

from musicrep_jax.checkpointing import load_state_as_numpy
from musicrep_jax.metric_writers import read_jsonl
from tests.conftest import REPO, TINY_CONFIG, run_cli

pytestmark = pytest.mark.slow
STEPS = 20
# Same global batch, different reduction trees (8-way / 2-process all-reduce vs one device):
# float32 sums reassociate, so parameters agree to rounding, not bitwise.
PARAM_RTOL, PARAM_ATOL = 2e-4, 2e-5


def _train_args(workdir, data_dir, *extra):
  return ["train", "--config", TINY_CONFIG, "--workdir", str(workdir), "--data-dir",
          str(data_dir), *extra]


def _final_params(workdir) -> dict:
  return load_state_as_numpy(pathlib.Path(workdir) / "checkpoints" / str(STEPS) / "state")


def _train_losses(workdir) -> dict:
  """step -> train loss; a step logged twice (before a kill and after the resume) keeps the last."""
  return {r["step"]: r["loss"] for r in read_jsonl(pathlib.Path(workdir) / "metrics.jsonl")
          if r["split"] == "train"}


def _assert_trees_close(a, b):
  flat_a, flat_b = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
  assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
  for (path, x), (_, y) in zip(flat_a, flat_b):
    np.testing.assert_allclose(x, y, rtol=PARAM_RTOL, atol=PARAM_ATOL,
                               err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def reference_run(tiny_data_dir, tmp_path_factory):
  """The uninterrupted one-device run every other run is compared with."""
  workdir = tmp_path_factory.mktemp("reference")
  proc = run_cli(_train_args(workdir, tiny_data_dir))
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert summary["compilations"] == 1, "the train step must compile exactly once per run"
  return workdir


def test_reference_run_learns_something(reference_run):
  losses = _train_losses(reference_run)
  assert sorted(losses) == list(range(1, STEPS + 1))
  assert np.mean([losses[s] for s in range(16, 21)]) < np.mean([losses[s] for s in range(1, 6)])


def test_eight_devices_give_the_same_params_as_one(reference_run, tiny_data_dir, tmp_path):
  run_cli(_train_args(tmp_path, tiny_data_dir),
          env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  state = _final_params(tmp_path)
  reference = _final_params(reference_run)
  _assert_trees_close(state["params"], reference["params"])
  _assert_trees_close(state["batch_stats"], reference["batch_stats"])
  losses, ref_losses = _train_losses(tmp_path), _train_losses(reference_run)
  np.testing.assert_allclose([losses[s] for s in range(1, STEPS + 1)],
                             [ref_losses[s] for s in range(1, STEPS + 1)], rtol=1e-4)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_train_together_and_match_one(reference_run, tiny_data_dir, tmp_path):
  port = _free_port()
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  procs = [subprocess.Popen(
      [sys.executable, "-m", "musicrep_jax.cli", *_train_args(tmp_path, tiny_data_dir),
       "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, f"process exited {p.returncode}\n{out[-3000:]}\n{err[-3000:]}"
  # Each process read half of every global batch; together they trained one model.
  _assert_trees_close(_final_params(tmp_path)["params"], _final_params(reference_run)["params"])
  summary = json.loads(outputs[0][0].strip().splitlines()[-1])
  assert summary["step"] == STEPS


def _wait_for(predicate, proc, timeout=300):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    if proc.poll() is not None:
      raise AssertionError(f"run ended early with {proc.returncode}: {proc.stderr.read()[-3000:]}")
    time.sleep(0.05)
  raise AssertionError("timed out")


def _start(workdir, data_dir, *extra):
  return subprocess.Popen(
      [sys.executable, "-m", "musicrep_jax.cli", *_train_args(workdir, data_dir, *extra)],
      cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_onto_the_uninterrupted_losses(reference_run, tiny_data_dir, tmp_path):
  proc = _start(tmp_path, tiny_data_dir)
  committed = tmp_path / "checkpoints" / "10" / "commit_success.txt"
  _wait_for(committed.exists, proc)
  proc.kill()  # SIGKILL: no handler runs, whatever was in flight is lost.
  proc.wait()
  resumed = run_cli(_train_args(tmp_path, tiny_data_dir))
  assert "Resumed from" in resumed.stdout
  losses, ref_losses = _train_losses(tmp_path), _train_losses(reference_run)
  assert sorted(losses) == list(range(1, STEPS + 1))
  np.testing.assert_allclose([losses[s] for s in range(11, STEPS + 1)],
                             [ref_losses[s] for s in range(11, STEPS + 1)], rtol=1e-6)
  _assert_trees_close(_final_params(tmp_path)["params"], _final_params(reference_run)["params"])


def test_sigterm_saves_a_checkpoint_and_exits(tiny_data_dir, tmp_path):
  proc = _start(tmp_path, tiny_data_dir, "--config.num_train_steps=100000",
                "--config.checkpoint_every=100000")
  metrics = tmp_path / "metrics.jsonl"
  _wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err[-3000:]
  assert "Rerun the same command to resume" in out
  stopped = json.loads(out.strip().splitlines()[-1])
  assert (tmp_path / "checkpoints" / str(stopped["step"]) / "commit_success.txt").exists()
