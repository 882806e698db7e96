"""Plateau stages (training/plateau.py): the decision after each evaluation (the papers' Keras
re-training rule and ReduceLROnPlateau + EarlyStopping), the rate of each step, the checks of
``config.plateau``, the saved progress, and the stage scale in the optimizer state (one
compilation for every stage). A real run: tests/e2e/test_plateau_stages.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.configs.common import plateau_stages
from musicrep_jax.errors import UserError
from musicrep_jax.training import optimizers, plateau
from tests.configs import tiny as tiny_config


def _config(**plateau_fields):
  c = tiny_config.get_config()
  c.optimizer.schedule = "keras_decay"
  c.optimizer.decay = 1e-3
  c.optimizer.learning_rate = 0.01
  c.plateau = plateau_fields
  return c


def _run(stages, values, first_step=10, every=10):
  """Feeds ``values`` (one per evaluation) -> [(step, action, progress)]."""
  progress, out = plateau.Progress(), []
  for i, value in enumerate(values):
    step = first_step + i * every
    progress, action = stages.observe(progress, value, step)
    out.append((step, action, progress))
  return out


def test_retraining_rule_restarts_each_stage_and_ends_after_the_last():
  """Papers 1, 5, 6: patience 2, 3 stages; each stage's first evaluation counts as an
  improvement (a fresh Keras EarlyStopping), a plateau of the last stage ends the run."""
  stages = plateau.Stages(_config(**plateau_stages(3, 2)))
  values = [1.0, 0.9, 0.95, 0.9,   # 0.9 again is no improvement (strictly better only)
            1.2, 1.3, 1.3,         # stage 1: 1.2 is its best although worse than 0.9
            1.0, 0.8, 0.85, 0.81]  # stage 2: plateau -> stop
  out = _run(stages, values)
  actions = [a for _, a, _ in out]
  assert actions == ["continue"] * 3 + ["next_stage"] + ["continue"] * 2 + ["next_stage"] + \
      ["continue"] * 3 + ["stop"]
  step, _, p = out[3]
  assert (p.stage, p.best, p.wait, p.optimizer_start, p.run_best) == (1, None, 0, step, 0.9)
  _, _, p = out[4]
  assert (p.best, p.wait, p.run_best, p.run_wait) == (1.2, 0, 0.9, 3)
  step, _, p = out[6]
  assert (p.stage, p.optimizer_start) == (2, step)
  _, _, p = out[-1]
  assert p.finished and p.stage == 2 and p.best == 0.8 and p.run_best == 0.8
  assert "training ends" in stages.describe(p, "stop", 110)
  assert stages.describe(out[3][2], "next_stage", 40, best_step=20) == (
      "step 40: plateau: loss did not improve for 2 evaluations; stage 2 of 3 at learning rate "
      "x0.2, from the best checkpoint (step 20) with a fresh optimizer state.")


def test_reduce_on_plateau_keeps_the_best_and_early_stopping_ends_the_run():
  """Paper 10: x0.2 after 2 (here) evaluations, rate floored, best kept across reductions, the
  last stage's plateaus do not stop; 4 evaluations without a new best of the run do."""
  c = _config(**plateau_stages(2, 2, reload_best=False, stop_patience=4,
                               min_learning_rate=0.005))
  stages = plateau.Stages(c)
  out = _run(stages, [1.0, 1.1, 1.05, 1.02, 0.99, 0.995, 1.0, 1.0, 1.0])
  actions = [a for _, a, _ in out]
  assert actions == ["continue", "continue", "next_stage", "continue", "continue", "continue",
                     "continue", "continue", "stop"]
  _, _, p = out[3]  # 1.02 after the reduction: no improvement on the kept best 1.0.
  assert (p.stage, p.best, p.wait, p.optimizer_start) == (1, 1.0, 1, 0)
  _, _, p = out[-1]
  assert p.finished and p.run_best == 0.99 and p.run_wait == 4
  assert "no new best loss for 4 evaluations" in stages.describe(p, "stop", 90)
  assert stages.scale(1) == pytest.approx(0.5)  # max(0.2, 0.005 / 0.01)


def test_max_mode_and_nan_is_no_improvement():
  c = _config(**plateau_stages(2, 2))
  c.checkpoint.best_metric, c.checkpoint.best_mode = "roc_auc", "max"
  out = _run(plateau.Stages(c), [0.5, float("nan"), 0.6, 0.55, 0.58])
  assert [a for _, a, _ in out] == ["continue"] * 4 + ["next_stage"]
  assert (out[1][2].wait, out[2][2].best, out[3][2].run_best) == (1, 0.6, 0.6)


def test_learning_rate_is_the_schedule_from_the_stage_start_times_the_scale():
  stages = plateau.Stages(_config(**plateau_stages(5, 3)))
  assert stages.learning_rate(plateau.Progress(), 1) == pytest.approx(0.01)
  assert stages.learning_rate(plateau.Progress(), 101) == pytest.approx(0.01 / 1.1)
  moved = plateau.Progress(stage=2, optimizer_start=100)
  assert stages.learning_rate(moved, 101) == pytest.approx(0.01 * 0.04)
  assert stages.learning_rate(moved, 201) == pytest.approx(0.01 * 0.04 / 1.1)
  off = plateau.Stages(_config())  # No stages: the optimizer's schedule alone.
  assert not off.enabled and off.learning_rate(plateau.Progress(), 101) == pytest.approx(
      0.01 / 1.1)


@pytest.mark.parametrize("fields,words", [
    (dict(num_stages=2, patience=0), "config.plateau.patience=0"),
    (dict(num_stages=2, factor=-1.0), "config.plateau.factor=-1.0"),
    (dict(num_stages=2, patiense=2), "no field 'patiense'"),
])
def test_bad_settings_are_one_line(fields, words):
  with pytest.raises(UserError, match=words.replace("(", r"\(")):
    plateau.settings(_config(**fields))


def test_fixed_stages_and_plateau_stages_are_not_combined():
  c = _config(**plateau_stages(5, 3))
  c.optimizer.schedule = "staged"
  with pytest.raises(UserError, match="schedule='staged'"):
    plateau.enabled(c)
  c.plateau.num_stages = 0  # The fixed-boundary schedule alone stays available.
  assert not plateau.enabled(c)


def test_progress_round_trips_and_bad_json_is_refused():
  p = plateau.Progress(stage=1, best=0.5, wait=2, run_best=0.4, run_wait=3,
                       optimizer_start=70, finished=False)
  assert plateau.Progress.from_json(p.to_json(), "x") == p
  with pytest.raises(UserError, match="does not hold plateau progress"):
    plateau.Progress.from_json({"stage": 1}, "ckpt/7")
  with pytest.raises(UserError, match="stage=-1 is not a count"):
    plateau.Progress.from_json(dict(p.to_json(), stage=-1), "ckpt/7")
  with pytest.raises(UserError, match="best='0.5' is not a number"):
    plateau.Progress.from_json(dict(p.to_json(), best="0.5"), "ckpt/7")


def test_stage_scale_gives_the_scaled_rate_and_compiles_once():
  """SGD-Nesterov with the stage scale s follows the update rule at rate lr * s; scale 1 is the
  plain optimizer; changing the scale (a state leaf) does not recompile."""
  opt = _config().optimizer
  opt.schedule = "constant"
  plain = optimizers.make_optimizer(opt, 10)
  scaled = optimizers.make_optimizer(opt, 10, with_stage_scale=True)
  params = {"w": jnp.array([1.0, -2.0, 0.5])}
  grads = {"w": jnp.array([0.5, 0.25, -1.0])}
  update = jax.jit(scaled.update)

  state_a, state_b = plain.init(params), scaled.init(params)
  for _ in range(3):
    ua, state_a = jax.jit(plain.update)(grads, state_a, params)
    ub, state_b = update(grads, state_b, params)
    np.testing.assert_allclose(ua["w"], ub["w"], rtol=1e-7)

  state = optimizers.set_stage_scale(scaled.init(params), 0.2)
  velocity = np.zeros(3)
  for _ in range(3):
    u, state = update(grads, state, params)
    velocity = 0.9 * velocity + np.asarray(grads["w"])
    np.testing.assert_allclose(u["w"], -0.01 * 0.2 * (grads["w"] + 0.9 * velocity), rtol=1e-6)
  assert update._cache_size() == 1


def test_a_workdir_from_before_config_plateau_resumes_and_a_changed_plateau_is_refused(tmp_path):
  """A workdir's config.json written before the field existed (no ``plateau``) is a run
  without stages: resuming it with stages off is allowed, turning them on is not."""
  import json

  from musicrep_jax import config_loading
  from musicrep_jax.training import trainer

  config = tiny_config.get_config()
  old = json.loads(config_loading.to_json(config))
  del old["plateau"]
  (tmp_path / "config.json").write_text(json.dumps(old))
  info = {"data_dir": None}
  trainer._check_resume(tmp_path, config, info, ())
  config.plateau.num_stages = 5
  with pytest.raises(UserError, match=r"plateau.num_stages: 0 -> 5"):
    trainer._check_resume(tmp_path, config, info, ())
