"""Plateau stages (``config.plateau``): learning-rate stages that each end when the validation
metric stops improving; the papers' "re-training" recipe (papers.md 1.5; paper 1: 2.4, paper 5:
6.3, paper 6: 7.2) and Keras' ``ReduceLROnPlateau`` with ``EarlyStopping`` (paper 10: 11.5,
paper 13: 14.4).

Monitored: ``config.checkpoint.best_metric`` in ``config.checkpoint.best_mode`` on the validation
split, the metric the best checkpoint is chosen by, so "the best weights" a stage restarts from
are the best checkpoint. Its default is ``loss``, which every evaluator reports (the mean segment
loss of the split: tagging BCE, classification cross-entropy, the metric-learning hinge on
held-out triplets), i.e. the papers' validation loss. The run evaluates every
``config.eval_every`` steps (one epoch in the paper configs).

After each evaluation (``Stages.observe``) a value strictly better than the best is an
improvement (Keras' ``min_delta=0``); ``wait`` counts the evaluations since the last one. When
``wait`` reaches ``patience``:

- If a next stage exists, stage ``k + 1`` (of ``num_stages``, counted from 0) trains at
  ``max(lr * factor ** (k + 1), min_learning_rate)``: the optimizer's own schedule (the Keras
  decay, say) times the stage's scale (``lr``: ``config.optimizer.learning_rate``). With
  ``reload_best`` (papers 1, 5, 6) it restarts from the best checkpoint (weights and BatchNorm
  statistics) with a fresh optimizer state, so the momentum and the Keras decay counter restart,
  and its best starts unset: each stage of the code is a new Keras ``fit`` with a new
  ``EarlyStopping``, whose first evaluation always counts as an improvement. Without
  ``reload_best`` (Keras ``ReduceLROnPlateau``) the weights, the optimizer state and the best
  carry on; only the rate drops.
- In the last stage the run ends (the final test uses the best checkpoint, as without stages),
  unless ``stop_patience`` > 0: then only ``stop_patience`` evaluations without a new best of the
  whole run end it (Keras ``EarlyStopping`` beside ``ReduceLROnPlateau``, whose rate stays at its
  floor once the reductions run out).

``config.num_train_steps`` remains a cap. Choices (the papers' code is Keras): ``patience``
counts as Keras 2.2+ does (the stage ends at the ``patience``-th evaluation without improvement;
Keras 1 ended it one evaluation later); the best checkpoint a stage restarts from is the best of
the whole run (the code's ``find_best_checkpoint`` over this and the previous stage's folders);
no cooldown.

Resuming: the progress (``Progress``: stage, best, wait...) is saved as JSON in every latest
checkpoint (``Checkpoints.save(..., json_items={"plateau": ...})``), and with stages every
evaluation is followed by a checkpoint, written once the best checkpoint of that evaluation has
committed, so a run killed anywhere resumes into the same curve. The scale is a leaf of the
optimizer state (``optimizers.stage_scale``): the train step compiles once for every stage; a
stage change runs one small jitted function (``make_stage_change``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import jax
import ml_collections

from musicrep_jax.configs.common import PLATEAU_OFF
from musicrep_jax.errors import UserError
from musicrep_jax.training import optimizers

CONTINUE, NEXT_STAGE, STOP = "continue", "next_stage", "stop"
JSON_ITEM = "plateau"  # The name of the progress in a latest checkpoint.


def settings(config: ml_collections.ConfigDict) -> dict:
  """``config.plateau`` checked (``UserError`` naming the field), with ``PLATEAU_OFF``'s values
  for missing fields (configs written before the field existed: no stages)."""
  given = dict(config.get("plateau", None) or {})
  unknown = sorted(set(given) - set(PLATEAU_OFF))
  if unknown:
    raise UserError(f"config.plateau has no field {unknown[0]!r}; its fields: "
                    f"{', '.join(PLATEAU_OFF)}.")
  p = dict(PLATEAU_OFF, **given)
  checks = (("num_stages", p["num_stages"] >= 0), ("patience", p["patience"] >= 1),
            ("factor", p["factor"] > 0), ("min_learning_rate", p["min_learning_rate"] >= 0),
            ("stop_patience", p["stop_patience"] >= 0))
  for name, ok in checks:
    if not ok:
      raise UserError(f"config.plateau.{name}={p[name]!r} is out of range (num_stages, "
                      f"stop_patience >= 0; patience >= 1; factor > 0; min_learning_rate >= 0).")
  if p["num_stages"] and config.optimizer.schedule == "staged":
    raise UserError("config.plateau.num_stages > 0 and config.optimizer.schedule='staged' both "
                    "lower the rate in stages; set config.optimizer.schedule=keras_decay (or "
                    "constant), or config.plateau.num_stages=0.")
  if p["num_stages"] and config.checkpoint.best_mode not in ("min", "max"):
    raise UserError(f"config.checkpoint.best_mode={config.checkpoint.best_mode!r} is not 'min' "
                    f"or 'max'.")
  return p


def enabled(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config`` trains in plateau stages (``config.plateau.num_stages`` > 0)."""
  return settings(config)["num_stages"] > 0


@dataclasses.dataclass
class Progress:
  """Where a run is in its stages; saved as JSON with every latest checkpoint.

  ``stage``: 0-based; ``best`` / ``wait``: the stage's best monitored value (None: no evaluation
  yet) and the evaluations since it improved; ``run_best`` / ``run_wait``: the same over the
  whole run (``stop_patience``); ``optimizer_start``: the step after which the optimizer state
  was last made fresh (the schedule's step 0); ``finished``: the stages ended the run (a resume
  goes straight to the final test).
  """

  stage: int = 0
  best: Optional[float] = None
  wait: int = 0
  run_best: Optional[float] = None
  run_wait: int = 0
  optimizer_start: int = 0
  finished: bool = False

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: Any, where: str) -> "Progress":
    """The progress saved in a checkpoint (plain JSON: nothing runs); ``UserError`` naming
    ``where`` when it is not one."""
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    if not isinstance(data, dict) or set(data) != set(fields):
      raise UserError(f"{where} does not hold plateau progress (fields "
                      f"{', '.join(fields)}); train into a new --workdir.")
    for name in ("best", "run_best"):
      if data[name] is not None and not isinstance(data[name], (int, float)):
        raise UserError(f"{where}: plateau progress field {name}={data[name]!r} is not a number.")
    for name in ("stage", "wait", "run_wait", "optimizer_start"):
      if not isinstance(data[name], int) or isinstance(data[name], bool) or data[name] < 0:
        raise UserError(f"{where}: plateau progress field {name}={data[name]!r} is not a count.")
    return cls(**{k: (float(v) if k in ("best", "run_best") and v is not None else v)
                  for k, v in data.items()})


class Stages:
  """The stages of ``config`` (``settings``): the decision after each evaluation and the
  learning rate of each step. With ``num_stages`` 0 (off) ``observe`` is never called and the
  rate is the optimizer's schedule."""

  def __init__(self, config: ml_collections.ConfigDict):
    p = settings(config)
    self.num_stages = int(p["num_stages"])
    self.patience = int(p["patience"])
    self.factor = float(p["factor"])
    self.min_learning_rate = float(p["min_learning_rate"])
    self.reload_best = bool(p["reload_best"])
    self.stop_patience = int(p["stop_patience"])
    self.metric = config.checkpoint.best_metric
    self.mode = config.checkpoint.best_mode
    self.base_learning_rate = float(config.optimizer.learning_rate)
    self.schedule = optimizers.make_schedule(config.optimizer, config.num_train_steps)

  @property
  def enabled(self) -> bool:
    return self.num_stages > 0

  def scale(self, stage: int) -> float:
    """``factor ** stage``, floored so that the rate stays >= ``min_learning_rate``."""
    scale = self.factor ** stage
    if self.base_learning_rate > 0 and self.min_learning_rate > 0:
      scale = max(scale, self.min_learning_rate / self.base_learning_rate)
    return scale

  def learning_rate(self, progress: Progress, step: int) -> float:
    """The rate of the update of ``step`` (1-based; the optimizer's schedule counts from 0 at
    the step after ``progress.optimizer_start``)."""
    return float(self.schedule(step - 1 - progress.optimizer_start)) * self.scale(progress.stage)

  def _improves(self, value: float, best: Optional[float]) -> bool:
    if best is None:
      return not math.isnan(value)
    return value < best if self.mode == "min" else value > best

  def observe(self, progress: Progress, value: float, step: int) -> tuple[Progress, str]:
    """The progress after an evaluation at ``step`` whose monitored value is ``value``, and what
    to do: ``CONTINUE``, ``NEXT_STAGE`` (the returned progress is the new stage's) or ``STOP``
    (the returned progress is ``finished``)."""
    p = dataclasses.replace(progress)
    if self._improves(value, p.run_best):
      p.run_best, p.run_wait = value, 0
    else:
      p.run_wait += 1
    if self._improves(value, p.best):
      p.best, p.wait = value, 0
    else:
      p.wait += 1
    if self.stop_patience and p.run_wait >= self.stop_patience:
      return dataclasses.replace(p, finished=True), STOP
    if p.wait < self.patience:
      return p, CONTINUE
    if p.stage + 1 < self.num_stages:
      p.stage += 1
      p.wait = 0
      if self.reload_best:
        p.best, p.optimizer_start = None, step
      return p, NEXT_STAGE
    if self.stop_patience:  # The last rate stays (ReduceLROnPlateau at its floor).
      return p, CONTINUE
    return dataclasses.replace(p, finished=True), STOP

  def describe(self, progress: Progress, action: str, step: int,
               best_step: Optional[int] = None) -> str:
    """The one log line of a stage change or of the end of the stages."""
    if action == STOP:
      if self.stop_patience and progress.run_wait >= self.stop_patience:
        why = f"no new best {self.metric} for {progress.run_wait} evaluations"
      else:
        why = (f"{self.metric} did not improve for {progress.wait} evaluations in the last "
               f"stage ({self.num_stages} of {self.num_stages})")
      return f"step {step}: plateau: {why}; training ends, the final test uses the best checkpoint."
    line = (f"step {step}: plateau: {self.metric} did not improve for {self.patience} "
            f"evaluations; stage {progress.stage + 1} of {self.num_stages} at learning rate x"
            f"{self.scale(progress.stage):g}")
    if self.reload_best:
      line += f", from the best checkpoint (step {best_step}) with a fresh optimizer state"
    return line + "."


def make_stage_change(tx, state_sharding):
  """``(restart, rescale)``, jitted with the state's layout ``state_sharding``:
  ``restart(state, best, scale)``: ``best``'s weights and BatchNorm statistics with a fresh
  optimizer state whose stage scale is ``scale``, at ``state``'s step; ``rescale(state, scale)``:
  ``state`` with its stage scale set to ``scale`` (float32 ``[]``, an argument: one compilation
  for every stage)."""

  def restart(state, best, scale):
    opt_state = optimizers.set_stage_scale(tx.init(best.params), scale)
    return state.replace(params=best.params, batch_stats=best.batch_stats, opt_state=opt_state)

  def rescale(state, scale):
    return state.replace(opt_state=optimizers.set_stage_scale(state.opt_state, scale))

  return (jax.jit(restart, out_shardings=state_sharding),
          jax.jit(rescale, out_shardings=state_sharding))
