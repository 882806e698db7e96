"""The papers' optimizer schedules and updates, and bfloat16 compute with float32 parameters."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from musicrep_jax import cli
from musicrep_jax.errors import UserError
from musicrep_jax.training import optimizers


def _opt(**kw):
  base = dict(name="sgd", learning_rate=0.01, momentum=0.9, nesterov=True, schedule="keras_decay",
              decay=1e-6, stage_boundaries=(), stage_factor=0.2, warmup_steps=0,
              weight_decay=0.0, grad_clip_norm=0.0)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_keras_decay_schedule_is_lr_over_one_plus_decay_t():
  schedule = optimizers.make_schedule(_opt(decay=1e-3), 100)
  for t in (0, 1, 10, 1000):
    assert float(schedule(t)) == pytest.approx(0.01 / (1 + 1e-3 * t), rel=1e-6)


def test_staged_schedule_multiplies_by_the_factor_and_restarts_the_decay():
  schedule = optimizers.make_schedule(
      _opt(schedule="staged", decay=1e-3, stage_boundaries=(100, 200)), 300)
  assert float(schedule(99)) == pytest.approx(0.01 / (1 + 1e-3 * 99), rel=1e-6)
  assert float(schedule(100)) == pytest.approx(0.002, rel=1e-6)   # decay counter restarts
  assert float(schedule(250)) == pytest.approx(0.0004 / (1 + 1e-3 * 50), rel=1e-6)


def test_sgd_nesterov_matches_the_update_rule():
  tx = optimizers.make_optimizer(_opt(schedule="constant", learning_rate=0.1), 10)
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([0.5, 0.25])}
  state = tx.init(params)
  velocity = np.zeros(2)
  w = np.array([1.0, -2.0])
  for _ in range(3):
    updates, state = tx.update(grads, state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
    velocity = 0.9 * velocity + np.array([0.5, 0.25])
    w = w - 0.1 * (np.array([0.5, 0.25]) + 0.9 * velocity)
  np.testing.assert_allclose(params["w"], w, rtol=1e-6)


def test_unknown_optimizer_or_schedule_is_a_user_error():
  with pytest.raises(UserError, match="config.optimizer.schedule='linear'"):
    optimizers.make_optimizer(_opt(schedule="linear"), 10)
  with pytest.raises(UserError, match="config.optimizer.name='lamb'"):
    optimizers.make_optimizer(_opt(name="lamb"), 10)


def test_bfloat16_compute_trains_with_float32_params(tmp_path, tiny_data_dir, capsys):
  from tests.helpers import TINY_CONFIG

  code = cli.main(["train", "--config", TINY_CONFIG, "--workdir", str(tmp_path),
                   "--data-dir", str(tiny_data_dir), "--config.compute_dtype=bfloat16",
                   "--config.num_train_steps=5", "--config.eval_every=5"])
  assert code == 0
  from musicrep_jax.training.checkpoints import load_state_as_numpy

  state = load_state_as_numpy(tmp_path / "checkpoints" / "5" / "state")
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state["params"]))
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert np.isfinite(result["loss"])
