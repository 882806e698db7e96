"""data.placement="device" trains as the host pipeline does: on 8 fake CPU devices the tiny config
(tests/configs/tiny.py) run with the split resident on the devices and its crops gathered inside
the jitted step (device_resident.fuse_train_step) gives the host pipeline's losses step by step
and the same trained parameters (the batches are bit-identical; only the reduction order inside
the two compiled programs may differ), compiles once, and resumes from the index iterator's state
onto the uninterrupted run's losses."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

STEPS = 10
_RUN = textwrap.dedent("""
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    from musicrep_jax.config_loading import load_config_file
    from musicrep_jax.data import pipeline as ip
    from musicrep_jax.training import device_resident as dr, mesh as mesh_lib, trainer
    from musicrep_jax.training.run_data import resolve_shards

    data_dir, steps = sys.argv[1], int(sys.argv[2])
    c = load_config_file(sys.argv[3])
    run = trainer.build_run(c, resolve_shards(c, data_dir))
    assert run.mesh.devices.size == 8
    source = trainer.train_source(c, run.shards)
    sharding = mesh_lib.batch_sharding(run.mesh)
    T, kw = run.input_length, dict(global_batch_size=c.batch_size, seed=c.seed)
    ds = dr.load(source, run.mesh, crop_length=T, fields=run.task.fields, budget_mb=64)
    fused = dr.fuse_train_step(run.train_step, ds, T)

    def train(step_fn, it, state, n):
      acc, losses = trainer._fresh_accumulator(run), []
      for _ in range(n):
        state, acc = step_fn(state, acc, ip.to_global_batch(next(it), sharding))
        losses.append(trainer._read_accumulator(acc)[0]["loss"])
        acc = trainer._fresh_accumulator(run)
      return state, losses

    def params(state):
      return [x.tolist() for x in jax.tree.leaves(jax.device_get(state.params))]

    fresh = lambda: run.create_state(jax.random.key(c.seed))
    out = {}
    host_it = ip.train_iterator(source, crop_length=T, fields=run.task.fields, **kw)
    state, out["host"] = train(run.train_step, host_it, fresh(), steps)
    out["host_params"] = params(state)
    it = dr.index_iterator(ds, crop_length=T, **kw)
    state, out["device"] = train(fused, it, fresh(), steps)
    out["device_params"] = params(state)
    out["compilations"] = fused._cache_size()
    # Resume: half the steps, the iterator's state through JSON, a fresh iterator and step.
    it = dr.index_iterator(ds, crop_length=T, **kw)
    state, first = train(fused, it, fresh(), steps // 2)
    saved = json.loads(json.dumps(it.get_state()))
    it = dr.index_iterator(ds, crop_length=T, **kw)
    it.set_state(saved)
    state, second = train(fused, it, state, steps - steps // 2)
    out["resumed"] = first + second
    print("RESULT " + json.dumps(out))
""")


def test_device_placement_trains_like_host_on_8_devices(tiny_data_dir):
  config = str(REPO / "tests" / "configs" / "tiny.py")
  proc = subprocess.run([sys.executable, "-c", _RUN, str(tiny_data_dir), str(STEPS), config],
                        cwd=REPO, capture_output=True, text=True, timeout=600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
  out = json.loads(lines[-1][len("RESULT "):])
  assert out["compilations"] == 1
  assert len(out["host"]) == STEPS and np.isfinite(out["host"]).all()
  np.testing.assert_allclose(out["device"], out["host"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["resumed"], out["device"], rtol=1e-5, atol=1e-6)
  assert len(out["host_params"]) == len(out["device_params"]) > 0
  for host, device in zip(out["host_params"], out["device_params"]):
    np.testing.assert_allclose(device, host, rtol=1e-4, atol=1e-6)
