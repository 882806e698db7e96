"""What a task is: the part of a run between a batch of shards and its losses and metrics.

The trainer (``musicrep_jax.training.trainer``) talks to a task only through the methods below; the
defaults fit "random crops of a clip -> model(audio) -> per-segment outputs -> clip metrics",
so a new task usually overrides ``loss``, ``eval_outputs`` and ``clip_metrics``. A task that
needs other batches (P x K metric-learning batches, users with sampled negatives) overrides
``train_iterator``; one whose model takes more than audio overrides ``init_inputs`` and
``forward``.

A task is a frozen dataclass registered in ``TASKS``; ``config.task.kwargs`` are its fields.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from musicrep_jax.data import pipeline as input_pipeline


class Task:
  """Defaults shared by every task. Subclasses are frozen dataclasses."""

  # Record fields (besides audio) that batches carry, e.g. ("tags",) or ("artist",).
  fields: tuple = ()
  # Scalars ``loss`` returns, averaged between log steps (the trainer adds ``grad_norm``).
  metric_names: tuple = ("loss",)
  # Evaluation keys whose larger value is better.
  higher_is_better: tuple = ()

  # --- Model -----------------------------------------------------------------------------------
  def num_outputs(self, shards) -> int:
    raise NotImplementedError

  def model_kwargs(self, shards) -> dict:
    """Model constructor arguments that come from the data (default: ``num_outputs``)."""
    return {"num_outputs": self.num_outputs(shards)}

  def init_inputs(self, input_length: int) -> tuple:
    """Positional model inputs for ``model.init``: default one ``[1, input_length, 1]`` crop."""
    return (jnp.zeros((1, input_length, 1), jnp.float32),)

  def forward(self, model, variables: dict, batch: dict, *, train: bool, **apply_kwargs):
    """``model.apply`` on a batch; returns what ``model.apply`` returns (with ``mutable``, the
    pair ``(outputs, updates)``). Default: the model sees ``batch["audio"]`` ``[B, T, 1]``."""
    return model.apply(variables, batch["audio"], train=train, **apply_kwargs)

  # --- Data ------------------------------------------------------------------------------------
  def train_iterator(self, source, *, crop_length: int, global_batch_size: int, seed: int,
                     num_workers: int, shards: Any = None):
    """This process's slice of each global training batch (a checkpointable Grain iterator)."""
    del shards
    return input_pipeline.train_iterator(
        source, crop_length=crop_length, global_batch_size=global_batch_size, seed=seed,
        fields=self.fields, num_workers=num_workers)

  # --- Losses and metrics ----------------------------------------------------------------------
  def loss(self, outputs: dict, batch: dict) -> tuple[jnp.ndarray, dict]:
    """``(scalar loss, {name: scalar for name in metric_names})``, inside the jitted step."""
    raise NotImplementedError

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    """Per-segment arrays ``[batch, ...]`` kept for ``clip_metrics`` (inside the eval step)."""
    raise NotImplementedError

  def clip_metrics(self, segments: dict, num_clips: int, variables: Any = None) -> dict:
    """A whole split's segment outputs (numpy, with ``clip_index``, ``segment_valid`` and the
    task's fields) -> ``{metric: float}``. ``variables`` are the model's variables
    (``{"params", "batch_stats"}``), for tasks whose metrics need more than per-segment outputs
    (e.g. user embeddings)."""
    raise NotImplementedError
