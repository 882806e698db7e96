"""``musicrep train --config.data.placement=device`` trains as the host pipeline does: on 8 fake
CPU devices the tiny config (tests/configs/tiny.py) with the training split resident on the
devices and its crops gathered inside the jitted step (``training/device_resident.py``, wired by
``trainer._train_input``) logs the host pipeline's losses step by step (the batches are
bit-identical; only the reduction order inside the two compiled programs may differ), compiles
once, and a run stopped at step 5 and resumed to step 10 (the index iterator restored from the
checkpoint) logs the same losses as the uninterrupted host run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from musicrep_jax.training.curves import read_jsonl
from tests.helpers import REPO

pytestmark = pytest.mark.slow

TINY = str(REPO / "tests" / "configs" / "tiny.py")


def _train(workdir, data_dir, *overrides):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "musicrep_jax.cli", "train", "--config", TINY, "--workdir",
       str(workdir), "--data-dir", str(data_dir), "--config.num_train_steps=10",
       "--config.eval_every=10", "--config.checkpoint.async_save=false",
       # Constant: the 5-step first half must not change the rate schedule.
       "--config.optimizer.schedule=constant", *overrides],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _rows(workdir, split):
  return [r for r in read_jsonl(workdir / "metrics.jsonl") if r.get("split") == split]


def _losses(workdir):
  return {r["step"]: r["loss"] for r in _rows(workdir, "train")}


def test_device_placement_trains_like_host_and_resumes_on_8_devices(tiny_data_dir, tmp_path):
  _train(tmp_path / "host", tiny_data_dir)
  device = ["--config.data.placement=device", "--config.data.device_budget_mb=64"]
  first = _train(tmp_path / "device", tiny_data_dir, *device, "--config.num_train_steps=5")
  assert first["compilations"] == 1 and first["step"] == 5
  resumed = _train(tmp_path / "device", tiny_data_dir, *device)
  assert resumed["compilations"] == 1 and resumed["step"] == 10
  expected, got = _losses(tmp_path / "host"), _losses(tmp_path / "device")
  assert sorted(expected) == sorted(got) == list(range(1, 11)), (expected, got)
  np.testing.assert_allclose([got[s] for s in range(1, 11)],
                             [expected[s] for s in range(1, 11)], rtol=1e-5, atol=1e-6)
  # The last test row (the 5-step first half wrote its own).
  host_test = _rows(tmp_path / "host", "test")[-1]
  device_test = _rows(tmp_path / "device", "test")[-1]
  for key, value in host_test.items():
    if key not in ("time", "split") and isinstance(value, float):
      np.testing.assert_allclose(device_test[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
