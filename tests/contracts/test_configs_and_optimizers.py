"""Configs load and their `:runlocal` variants train; the papers' optimizer schedules; bf16."""

import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from musicrep_jax import cli, config_loading
from musicrep_jax.training import optimizers
from musicrep_jax.errors import UserError
from tests.helpers import REPO

CONFIGS = sorted(p for p in (REPO / "configs").glob("*.py") if "def get_config" in p.read_text())


# Configs that are not trainer configs say which command runs them (``config.command``); each
# such command is run here with overrides that shrink it to seconds.
TINY_COMMANDS = {
    "word2vec": lambda out: ["--out", str(out), "--config.skipgram.epochs=1",
                             "--config.music.repeats=1", "--config.general_text=none"],
    # [unverified runtime] the owner of configs/multiscale_mtat.py may tune these.
    "multiscale": lambda out: ["--workdir", str(out), "--config.sweep=false",
                               "--config.classifier.max_epochs=2", "--config.classifier.trials=1",
                               *(f"--config.extractors.frames{n}.{key}=4" for n in (18, 27, 54)
                                 for key in ("num_train_steps", "eval_every",
                                             "checkpoint_every"))],
}
# Keys of `musicrep train`'s JSON line that are not metrics of the test split.
RUN_KEYS = ("step", "best_step", "compilations", "split", "workdir")


def command_of(config) -> str:
  """``config.command``, ``train`` for trainer configs; a config that is neither fails."""
  if "command" in config:
    return config.command
  if not all(k in config for k in ("model", "task", "num_train_steps")):
    pytest.fail(f"{config.config_file} is not a trainer config (no model/task/num_train_steps): "
                f"give it a `command` field naming the musicrep command that runs it, and add "
                f"that command to TINY_COMMANDS.")
  return "train"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_and_runlocal_uses_the_embedded_corpus(path):
  full = config_loading.load_config_file(str(path))
  local = config_loading.load_config_file(f"{path}:runlocal")
  if command_of(local) == "train":
    config_loading.validate(full)
    config_loading.validate(local)
    assert local.data.name == "synthetic"
    assert local.num_train_steps <= full.num_train_steps
  else:
    assert command_of(full) == command_of(local) in TINY_COMMANDS
  with pytest.raises((ValueError, UserError)):
    config_loading.load_config_file(f"{path}:nonsense")


def _numbers(result: dict) -> dict:
  return {k: v for k, v in result.items()
          if k not in RUN_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_runlocal_config_runs_through_its_command(path, tmp_path, capsys):
  """Trainer configs train 4 steps; other configs run their own command, shrunk. Whatever the
  task, its test metrics (or the command's summary numbers) exist and are finite."""
  command = command_of(config_loading.load_config_file(f"{path}:runlocal"))
  if command == "train":
    args = ["train", "--config", f"{path}:runlocal", "--workdir", str(tmp_path),
            "--config.num_train_steps=4", "--config.eval_every=4",
            "--config.checkpoint_every=4"]
  else:
    args = [command, "--config", f"{path}:runlocal", *TINY_COMMANDS[command](tmp_path)]
  code = cli.main(args + ["--config.progress_bar=false"])
  assert code == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  if command == "train":
    assert result["step"] == 4 and result["split"] == "test"
  numbers = _numbers(result)
  assert numbers, result
  assert all(np.isfinite(v) for v in numbers.values()), numbers


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
