"""The loss kernels of musicrep_jax/ops/losses.py on 8 fake CPU devices, in a subprocess: global
mining over the sharded batch equals one device, and ``losses.per_shard`` equals the mean of the
kernel on each shard (values and gradients). (Single-device checks:
tests/unit/ops/test_losses.py.)"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers import REPO


# --- Global vs per-device mining on 8 fake devices -----------------------------------------------
_SHARDED_SCRIPT = textwrap.dedent("""
    import functools, json
    import jax, jax.numpy as jnp, numpy as np
    from musicrep_jax.ops import losses
    from musicrep_jax.training import mesh as sharding
    assert len(jax.devices()) == 8
    mesh = sharding.make_mesh()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    ids = rng.integers(0, 3, 32)
    tags = (rng.random((32, 5)) < 0.4).astype(np.float32)
    proxies = rng.standard_normal((5, 6)).astype(np.float32)
    valid = rng.random(32) < 0.9
    put = lambda a: jax.device_put(a, sharding.batch_sharding(mesh))
    out = {}
    def check(name, fn, sharded, replicated_args=()):
      rest = lambda v: (v, *sharded[1:], *replicated_args)
      shards = lambda v: [[a[4 * s:4 * s + 4] for a in (v, *sharded[1:])] for s in range(8)]
      local_fn = losses.per_shard(fn, mesh)
      # global: jit over the sharded batch == one device
      single = jax.jit(lambda v: fn(*rest(v))[0])(x)
      glob = jax.jit(lambda *a: fn(*a)[0])(*[put(a) for a in sharded], *replicated_args)
      # local: per_shard == mean over the 8 shards of the kernel on each shard (by hand)
      local, g_local = jax.jit(jax.value_and_grad(lambda v: local_fn(*rest(v))[0]))(put(x))
      by_hand, g_hand = jax.jit(jax.value_and_grad(lambda v: sum(
          fn(*a, *replicated_args)[0] for a in shards(v)) / 8))(jnp.asarray(x))
      out[name] = dict(single=float(single), glob=float(glob), local=float(local),
                       by_hand=float(by_hand),
                       grad_err=float(np.max(np.abs(np.asarray(g_local) - np.asarray(g_hand)))),
                       grad_scale=float(np.max(np.abs(np.asarray(g_hand)))))
    for mining in losses.MINING:
      fn = functools.partial(losses.triplet_loss, margin=0.5, mining=mining)
      check("triplet " + mining, lambda v, l, m, fn=fn: fn(v, l, valid=m), (x, ids, valid))
    # proxies are replicated (per_shard's default replicated=("proxies",)), not split
    check("proxy_nca", losses.proxy_nca_loss, (x, tags), (jnp.asarray(proxies),))
    print("RESULT", json.dumps(out))
""")


@pytest.mark.slow
def test_global_mining_equals_one_device_and_per_shard_equals_mean_of_shards():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SHARDED_SCRIPT], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  import json
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  results = json.loads(line[len("RESULT "):])
  assert len(results) == 4
  for name, r in results.items():
    np.testing.assert_allclose(r["glob"], r["single"], rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(r["local"], r["by_hand"], rtol=1e-5, atol=1e-6, err_msg=name)
    # Mining within 4-row shards is a different loss from mining over 32 rows.
    assert abs(r["local"] - r["glob"]) > 1e-3, name
    assert r["grad_scale"] > 0 and r["grad_err"] <= 1e-5 * max(1.0, r["grad_scale"]), name
