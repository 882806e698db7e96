"""Configs load and their `:runlocal` variants train; the papers' optimizer schedules; bf16."""

import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from musicrep_jax import cli, config_loading, optimizers
from musicrep_jax.errors import UserError

CONFIGS = sorted((pathlib.Path(__file__).resolve().parent.parent / "configs").glob("*.py"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_and_runlocal_uses_the_embedded_corpus(path):
  full = config_loading.load_config(str(path))
  local = config_loading.load_config(f"{path}:runlocal")
  assert local.data.name == "synthetic"
  assert local.num_train_steps <= full.num_train_steps
  with pytest.raises(ValueError):
    config_loading.load_config(f"{path}:nonsense")


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_runlocal_config_trains_through_the_cli(path, tmp_path, capsys):
  code = cli.main(["train", "--config", f"{path}:runlocal", "--workdir", str(tmp_path),
                   "--config.num_train_steps=4", "--config.eval_every=4",
                   "--config.checkpoint_every=4", "--config.progress_bar=false"])
  assert code == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["step"] == 4 and 0.0 <= result["roc_auc"] <= 1.0


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
  from tests.conftest import TINY_CONFIG

  code = cli.main(["train", "--config", TINY_CONFIG, "--workdir", str(tmp_path),
                   "--data-dir", str(tiny_data_dir), "--config.compute_dtype=bfloat16",
                   "--config.num_train_steps=5", "--config.eval_every=5"])
  assert code == 0
  from musicrep_jax.checkpointing import load_state_as_numpy

  state = load_state_as_numpy(tmp_path / "checkpoints" / "5" / "state")
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state["params"]))
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert np.isfinite(result["loss"])
