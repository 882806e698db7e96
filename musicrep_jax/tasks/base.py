"""What a task is: the part of a run between a batch of shards and its loss (sampling and loss).

Lifecycle. A task is a frozen dataclass registered in ``TASKS``; ``config.task.kwargs`` are its
fields. ``task.bind(shards)`` returns a NEW task of the same type whose ``bound`` field carries
everything derived from the data (tag columns, class counts and tables, interaction splits,
side-information vectors); ``trainer.build_run`` calls it once, before building the model. The
unbound task only knows its settings: anything that needs the data (``model_kwargs``,
``init_inputs``, ``forward``, ``loss``, ``train_iterator``) reads ``task.data``, which raises
``UnboundTaskError`` on an unbound task. Nothing is ever stored on a task after construction, and
the Flax model is passed in (``forward(model, ...)``), never kept.

The trainer (``musicrep_jax.training.trainer``) talks to a bound task only through the methods
below; the defaults fit "random crops of a clip -> model(audio) -> per-segment outputs", so a new
task usually overrides ``bind``, ``model_kwargs``, ``loss`` and ``eval_outputs``. A task that
needs other batches (P x K metric-learning batches, users with sampled negatives) overrides
``train_iterator``; one whose model takes more than audio overrides ``init_inputs`` and
``forward``.

Metrics are not the task's: the per-segment arrays of ``eval_outputs`` (gathered over a split,
with ``clip_index``, ``segment_valid`` and the task's record ``fields``) go to the evaluators
named by ``config.evals``, or to the task's ``default_evals`` when that is empty
(``musicrep_jax.evaluators``, big_vision's split between objectives and evaluators).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.errors import UserError


class UnboundTaskError(RuntimeError):
  """A task's data-derived state was needed before ``task.bind(shards)``."""


@dataclasses.dataclass(frozen=True)
class Task:
  """Defaults shared by every task. Subclasses are frozen dataclasses.

  Attributes:
    bound: what ``bind`` derived from the data (a task-specific frozen dataclass); None on an
      unbound task. Set only by ``bind`` (keyword-only, not a config key).
  """

  bound: Any = dataclasses.field(default=None, kw_only=True, repr=False, compare=False)

  # Record fields (besides audio) that batches carry, e.g. ("tags",) or ("artist",).
  fields = ()
  # Scalars ``loss`` returns, averaged between log steps (the trainer adds ``grad_norm``).
  metric_names = ("loss",)
  # Evaluation keys whose larger value is better.
  higher_is_better = ()
  # Names in ``registry.EVALUATORS`` used when ``config.evals`` is empty.
  default_evals = ()

  # --- Lifecycle -------------------------------------------------------------------------------
  def bind(self, shards) -> "Task":
    """A new task of the same type carrying what ``shards`` determine in ``bound``
    (``dataclasses.replace(self, bound=...)``); ``UserError`` when the data does not fit."""
    raise NotImplementedError

  @property
  def data(self) -> Any:
    """``bound``, or ``UnboundTaskError`` on a task that ``bind`` did not return."""
    if self.bound is None:
      raise UnboundTaskError(
          f"{type(self).__name__} is not bound to a dataset: use the task that "
          f"task.bind(shards) returns (trainer.build_run binds it once).")
    return self.bound

  # --- Model -----------------------------------------------------------------------------------
  def model_kwargs(self) -> dict:
    """Model constructor arguments that come from the data (bound task; default: none)."""
    return {}

  def init_inputs(self, input_length: int) -> tuple:
    """Positional model inputs for ``model.init``: default one ``[1, input_length, 1]`` crop."""
    return (jnp.zeros((1, input_length, 1), jnp.float32),)

  def forward(self, model, variables: dict, batch: dict, *, train: bool, **apply_kwargs):
    """``model.apply`` on a batch; returns what ``model.apply`` returns (with ``mutable``, the
    pair ``(outputs, updates)``). Default: the model sees ``batch["audio"]`` ``[B, T, 1]``."""
    return model.apply(variables, batch["audio"], train=train, **apply_kwargs)

  # --- Data ------------------------------------------------------------------------------------
  def train_iterator(self, source, *, crop_length: int, global_batch_size: int, seed: int,
                     num_workers: int,
                     segments: input_pipeline.TrainSegments = input_pipeline.TrainSegments()):
    """This process's slice of each global training batch (a checkpointable Grain iterator).

    ``segments`` (``TrainSegments.from_data_config(config.data)``): random crops or the papers'
    segment grid. A task whose batches are not windows of shuffled clips (P x K, DCUE) raises
    ``UserError`` for the grid rather than ignore it (:func:`require_random_segments`)."""
    return input_pipeline.train_iterator(
        source, crop_length=crop_length, global_batch_size=global_batch_size, seed=seed,
        fields=self.fields, num_workers=num_workers, segments=segments)

  # --- Loss ------------------------------------------------------------------------------------
  def loss(self, outputs: dict, batch: dict) -> tuple[jnp.ndarray, dict]:
    """``(scalar loss, {name: scalar for name in metric_names})``, inside the jitted step."""
    raise NotImplementedError

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    """Per-segment arrays ``[batch, ...]`` kept for the evaluators (inside the jitted eval
    step)."""
    raise NotImplementedError


def require_random_segments(task: Task, segments: input_pipeline.TrainSegments) -> None:
  """``UserError`` unless ``segments`` are random crops: for a ``train_iterator`` whose sampler
  draws its own crops (P x K batches, DCUE's users and negatives) and has no segment grid."""
  if segments.mode != "random":
    raise UserError(
        f"{type(task).__name__} draws its own training crops and has no segment grid: set "
        f"config.data.train_segments=random (got {segments.mode!r}).")


@dataclasses.dataclass(frozen=True)
class OutputCount:
  """Bound data of a task whose only data-derived setting is the model's output count."""

  num_outputs: int
