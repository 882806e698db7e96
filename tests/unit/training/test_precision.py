"""``config.compute_dtype``: "auto" resolved from the run's devices (bf16 on TPU/GPU, f32 on
CPU), and a bfloat16 train step whose state, statistics, metrics and gradient reduction stay
float32 (training/precision.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax import config_loading
from musicrep_jax.errors import UserError
from musicrep_jax.training.precision import resolve_compute_dtype
from tests.helpers import REPO, TINY_CONFIG


# What "auto" gives on this machine: CI runs on CPU; bench/accelerator_check.sh runs these tests
# on a GPU.
_AUTO_HERE = "bfloat16" if jax.default_backend() in ("gpu", "tpu") else "float32"


def _devices(*platforms):
  return [types.SimpleNamespace(platform=p) for p in platforms]


def test_auto_is_bfloat16_on_accelerators_and_float32_on_cpu():
  assert resolve_compute_dtype("auto", _devices("tpu", "tpu")) == "bfloat16"
  assert resolve_compute_dtype("auto", _devices("gpu")) == "bfloat16"
  assert resolve_compute_dtype("auto", _devices("cpu")) == "float32"
  assert resolve_compute_dtype("auto", jax.devices()) == _AUTO_HERE
  assert resolve_compute_dtype("auto", _devices("gpu", "cpu")) == "float32"
  assert resolve_compute_dtype("auto", []) == "float32"
  assert resolve_compute_dtype("float32", _devices("tpu")) == "float32"
  assert resolve_compute_dtype("bfloat16", _devices("cpu")) == "bfloat16"
  with pytest.raises(ValueError, match="float16"):
    resolve_compute_dtype("float16", _devices("cpu"))


def test_configs_default_to_auto_and_validation_names_the_choices():
  config = config_loading.load_config("demo")
  assert config.compute_dtype == "auto"
  for value in ("auto", "float32", "bfloat16"):
    config.compute_dtype = value
    config_loading.validate(config)
  config.compute_dtype = "float16"
  with pytest.raises(UserError, match="auto, float32 or bfloat16, got 'float16'"):
    config_loading.validate(config)


def test_auto_builds_float32_models_on_cpu_and_bfloat16_ones_on_accelerators(tiny_data_dir):
  from musicrep_jax.data.shards import open_shards
  from musicrep_jax.training import trainer

  config = config_loading.load_config(TINY_CONFIG)
  assert config.compute_dtype == "auto"
  shards = open_shards(tiny_data_dir)
  assert trainer.build_run(config, shards).model.dtype == jnp.dtype(_AUTO_HERE)
  config.compute_dtype = "bfloat16"
  assert trainer.build_run(config, shards).model.dtype == jnp.bfloat16


# Compiles the bfloat16 train step of a tiny SampleCNN on the mesh of this process's devices and
# prints the dtypes of its state, accumulator and of every cross-device collective.
_STEP_SCRIPT = r"""
import json, re
import jax, jax.numpy as jnp, numpy as np, optax
from musicrep_jax.models.sample_cnn import SampleCNN
from musicrep_jax.tasks.tagging import TaggingTask
from musicrep_jax.training import mesh as mesh_lib, step as train_step

model = SampleCNN(num_outputs=5, m=3, n=3, channels=(4, 4, 4, 8, 8), dtype=jnp.bfloat16)
task, tx, mesh = TaggingTask(), optax.sgd(0.01, momentum=0.9), mesh_lib.make_mesh()
state = train_step.make_create_state(model, tx, model.input_length, mesh)(jax.random.key(0))
acc = jax.device_put(train_step.LogAccumulator.zeros(task.metric_names + ("grad_norm",)),
                     mesh_lib.replicated(mesh))
rng = np.random.default_rng(0)
batch = jax.device_put(
    {"audio": rng.standard_normal((8, model.input_length, 1), dtype=np.float32),
     "tags": (rng.random((8, 5)) < 0.3).astype(np.float32)}, mesh_lib.batch_sharding(mesh))
step = train_step.make_train_step(model, task, tx, mesh, seed=0)
hlo = step.lower(state, acc, batch).compile().as_text()
collectives = [line for line in hlo.splitlines()
               if re.search(r"= .*\b(all-reduce|reduce-scatter|all-gather)(-start)?\(", line)]
for _ in range(3):
  state, acc = step(state, acc, batch)
dtypes = lambda tree: sorted({str(x.dtype) for x in jax.tree.leaves(tree)})
print(json.dumps({
    "devices": len(jax.devices()), "collectives": len(collectives),
    "bf16_collectives": [c.strip()[:160] for c in collectives if "bf16[" in c],
    "params": dtypes(state.params), "batch_stats": dtypes(state.batch_stats),
    "opt_state": dtypes(state.opt_state), "sums": dtypes(acc.sums),
    "loss": float(acc.sums["loss"] / acc.count), "grad_norm": float(acc.sums["grad_norm"])}))
"""


@pytest.mark.slow
def test_bfloat16_step_keeps_state_metrics_and_gradient_all_reduce_float32():
  """On 2 fake CPU devices: the data-parallel step's collectives (gradient and BatchNorm
  all-reduces) carry no bfloat16, and the state and accumulators stay float32."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  proc = subprocess.run([sys.executable, "-c", _STEP_SCRIPT], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["devices"] == 2 and result["collectives"] > 0
  assert result["bf16_collectives"] == []
  for key in ("params", "batch_stats", "opt_state", "sums"):
    assert result[key] == ["float32"], (key, result[key])
  assert np.isfinite(result["loss"]) and result["grad_norm"] > 0
