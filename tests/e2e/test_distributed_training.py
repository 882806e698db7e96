"""End to end through the CLI, in real processes: 8 fake devices and 2 processes give the same
parameters as 1 device (also into a gs:// workdir on the GCS emulator); a SIGKILLed run resumes onto the uninterrupted run's losses; SIGTERM
saves and exits. All runs share tests/tiny_config.py (20 steps, checkpoint every 5).
"""

import json
import shutil
import pathlib
import signal
import socket
import subprocess
import sys
import os

import jax
import numpy as np
import pytest

from musicrep_jax.training.checkpoints import load_state_as_numpy
from musicrep_jax.training.writers import read_jsonl
from tests.helpers import REPO, TINY_CONFIG, run_cli, wait_for

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


def test_local_launch_script_runs_two_processes_that_match_one(reference_run, tiny_data_dir,
                                                                tmp_path):
  """``launch/local_multiprocess.sh 2 ...``: two processes, gloo over 127.0.0.1, one model."""
  env = dict(os.environ, PYTHONUNBUFFERED="1", MUSICREP_PORT=str(_free_port()),
             PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
  proc = subprocess.run(["bash", str(REPO / "launch" / "local_multiprocess.sh"), "2",
                         *_train_args(tmp_path, tiny_data_dir)[1:]],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  # Each process read half of every global batch; together they trained one model.
  _assert_trees_close(_final_params(tmp_path)["params"], _final_params(reference_run)["params"])
  summaries = [json.loads(line.split("] ", 1)[1]) for line in proc.stdout.splitlines()
               if line.startswith("[process ") and line.split("] ", 1)[1].startswith("{")]
  assert len(summaries) == 2 and all(s["step"] == STEPS for s in summaries)



def test_two_processes_train_into_one_bucket_workdir(reference_run, tiny_data_dir, gcs_emulator,
                                                     tmp_path):
  """Multi-host into ``gs://``: both processes write one Orbax checkpoint into the bucket (each
  its shards, through TensorStore) and process 0 the logs; the result equals the local run."""
  from musicrep_jax import storage

  env = dict(os.environ, PYTHONUNBUFFERED="1", MUSICREP_PORT=str(_free_port()),
             PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
  remote = "gs://bucket/multihost/run"
  proc = subprocess.run(["bash", str(REPO / "launch" / "local_multiprocess.sh"), "2",
                         *_train_args(remote, tiny_data_dir)[1:]],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  assert not any(pathlib.Path(REPO).glob("gs:*")), "a gs:// workdir became a local folder"
  local = tmp_path / "copy"
  storage.copy_tree(remote, local)
  assert (local / "config.json").is_file() and (local / "metrics.jsonl").is_file()
  _assert_trees_close(_final_params(local)["params"], _final_params(reference_run)["params"])
  assert _train_losses(local).keys() == _train_losses(reference_run).keys()


def _start(workdir, data_dir, *extra):
  return subprocess.Popen(
      [sys.executable, "-m", "musicrep_jax.cli", *_train_args(workdir, data_dir, *extra)],
      cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_onto_the_uninterrupted_losses(reference_run, tiny_data_dir, tmp_path):
  proc = _start(tmp_path, tiny_data_dir)
  committed = tmp_path / "checkpoints" / "10" / "commit_success.txt"
  wait_for(committed.exists, proc)
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
  wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0, proc)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err[-3000:]
  assert "Rerun the same command to resume" in out
  stopped = json.loads(out.strip().splitlines()[-1])
  assert (tmp_path / "checkpoints" / str(stopped["step"]) / "commit_success.txt").exists()


FSDP_ARGS = ("--config.mesh.fsdp=4", "--config.mesh.fsdp_min_size=64")
EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


@pytest.fixture(scope="module")
def fsdp_run(tiny_data_dir, tmp_path_factory):
  """The tiny run on 8 devices, mesh data=2 x fsdp=4: parameters and Adam/SGD state sharded."""
  workdir = tmp_path_factory.mktemp("fsdp")
  run_cli(_train_args(workdir, tiny_data_dir, *FSDP_ARGS), env_extra=EIGHT_DEVICES)
  return workdir


def test_fsdp_shards_parameters_and_optimizer_state(tiny_data_dir):
  """In a fresh 8-device process: big leaves are split 4 ways over ``fsdp``, small ones whole."""
  script = f"""
import json, jax
from musicrep_jax import config_loading
from musicrep_jax.training import trainer
from musicrep_jax.training.run_data import resolve_shards
c = config_loading.load_config({TINY_CONFIG!r}, {list(FSDP_ARGS)!r})
run = trainer.build_run(c, resolve_shards(c, {str(tiny_data_dir)!r}))
state = run.create_state(jax.random.key(0))
out = []
for path, leaf in jax.tree.leaves_with_path(state):
  out.append([jax.tree_util.keystr(path), list(leaf.shape), str(leaf.sharding.spec),
              list(leaf.addressable_shards[0].data.shape)])
print(json.dumps(out))
"""
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, **EIGHT_DEVICES), timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  leaves = json.loads(proc.stdout.strip().splitlines()[-1])
  sharded = [l for l in leaves if "fsdp" in l[2]]
  assert any(".params" in l[0] for l in sharded) and any(".opt_state" in l[0] for l in sharded)
  for name, shape, spec, shard_shape in leaves:
    size = int(np.prod(shape)) if shape else 1
    if "fsdp" in spec:
      assert size >= 64 and int(np.prod(shard_shape)) * 4 == size, name
    elif size >= 64:
      assert all(d % 4 for d in shape), f"{name} {shape} should have been sharded"
    else:
      assert shard_shape == shape, name


def test_fsdp_run_matches_the_replicated_run(fsdp_run, reference_run):
  _assert_trees_close(_final_params(fsdp_run)["params"], _final_params(reference_run)["params"])


@pytest.mark.parametrize("devices,fsdp", [(2, 2), (1, 1)])
def test_fsdp_checkpoint_restores_on_fewer_devices_and_goes_on(
    fsdp_run, reference_run, tiny_data_dir, tmp_path, devices, fsdp):
  """Step 10 of the 8-device fsdp=4 run, resumed on ``devices`` devices: steps 11-20 land on
  the uninterrupted run's parameters."""
  workdir = tmp_path / "wd"
  shutil.copytree(fsdp_run, workdir)
  for step in (15, 20):
    shutil.rmtree(workdir / "checkpoints" / str(step))
  shutil.rmtree(workdir / "best")
  resumed = run_cli(_train_args(workdir, tiny_data_dir, f"--config.mesh.fsdp={fsdp}",
                                "--config.mesh.fsdp_min_size=64"),
                    env_extra={"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"})
  assert "Resumed from" in resumed.stdout and "(step 10)" in resumed.stdout
  _assert_trees_close(_final_params(workdir)["params"], _final_params(reference_run)["params"])


def test_timing_file_is_written_atomically_and_a_broken_one_never_blocks_a_resume(tmp_path):
  """A kill while ``timing.json`` was being written (found by CI: an empty file made the resume
  crash): writes go through a rename, and an unreadable file is reported and ignored."""
  from musicrep_jax.training import trainer

  trainer._write_timing(tmp_path, {"train_s": 1.5, "steps": 3})
  assert trainer._read_timing(tmp_path) == {"train_s": 1.5, "steps": 3}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["timing.json"]
  (tmp_path / "timing.json").write_text("")
  assert trainer._read_timing(tmp_path) == {}
  assert trainer._read_timing(tmp_path / "absent") == {}
