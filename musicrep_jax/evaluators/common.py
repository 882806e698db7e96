"""Segment outputs of a split -> clips (written once for every evaluator), and running the
evaluators a config names.

An evaluator is a function registered in ``registry.EVALUATORS``::

    @EVALUATORS.register("tagging")
    def tagging(task, segments, num_clips, variables=None, *, model=None) -> dict: ...

* ``task``: the bound task (its settings and ``task.data``);
* ``segments``: numpy, one row per evaluated segment of the split (eval batches are padded, so
  some rows are padding): the task's ``eval_outputs``, its record ``fields``, ``clip_index``
  int ``[S]`` (the clip's position in the split) and ``segment_valid`` bool ``[S]`` (False for
  padding rows);
* ``num_clips``: clips in the split;
* ``variables``: the model's ``{"params", "batch_stats"}``; ``model``: the Flax module, for
  evaluators that need more than the segment outputs (the recommendation evaluator embeds users
  and the training tracks);

and returns ``{metric: float or int}``.

Clips (the papers' protocol, papers.md 1.4): a clip's output is the mean over its valid segments
(``clip_means``, via ``ops.metrics.clip_average``); its labels are those its segments carry
(``clip_values``); ``present_clips`` marks the clips with a valid segment. ``segment_mean``
averages a per-segment value over the valid rows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.ops import metrics
from musicrep_jax.registry import EVALUATORS


def _rows(segments: dict) -> tuple[np.ndarray, np.ndarray]:
  """``(valid bool [S], clip_index int [S])`` of a split's segments."""
  return (np.asarray(segments["segment_valid"], bool), np.asarray(segments["clip_index"]))


def require(segments: dict, keys: Sequence[str], evaluator: str, task: Any) -> None:
  """``UserError`` naming the evaluator and task when ``segments`` lack one of ``keys``."""
  missing = [k for k in keys if k not in segments]
  if missing:
    raise UserError(f"config.evals: evaluator {evaluator!r} needs the per-segment "
                    f"{', '.join(missing)} that task {type(task).__name__} does not output.")


def clip_means(segments: dict, key: Any, num_clips: int) -> tuple[np.ndarray, np.ndarray]:
  """Mean of a per-segment value ``[S, ...]`` over each clip's valid segments.

  Args:
    segments: the split's segments (module docstring).
    key: a key of ``segments``, or an array ``[S, ...]`` aligned with them.
    num_clips: clips in the split.

  Returns:
    ``(means float [num_clips, ...], counts int32 [num_clips])``: NaN rows (and count 0) for a
    clip without a valid segment; the means are float32 for float32 (or narrower) inputs.
  """
  valid, clip_index = _rows(segments)
  values = np.asarray(segments[key] if isinstance(key, str) else key)
  flat = values.reshape(values.shape[0], -1)
  means, counts = metrics.clip_average(flat, clip_index, valid, num_clips)
  return np.asarray(means).reshape((num_clips,) + values.shape[1:]), np.asarray(counts)


def clip_values(segments: dict, key: str, num_clips: int, fill: Any = 0) -> np.ndarray:
  """Per clip, the value of a field its segments share (labels, ids): ``[num_clips, ...]`` in
  the field's dtype, ``fill`` for a clip without a valid segment."""
  valid, clip_index = _rows(segments)
  values = np.asarray(segments[key])
  out = np.full((num_clips,) + values.shape[1:], fill, values.dtype)
  out[clip_index[valid]] = values[valid]
  return out


def present_clips(segments: dict, num_clips: int) -> np.ndarray:
  """bool ``[num_clips]``: the clips with at least one valid segment."""
  valid, clip_index = _rows(segments)
  return np.isin(np.arange(num_clips), clip_index[valid])


def segment_mean(segments: dict, key: str) -> float:
  """Mean of a per-segment scalar ``segments[key]`` ``[S]`` over the valid segments (0 when
  there is none)."""
  valid, _ = _rows(segments)
  values = np.asarray(segments[key], np.float64)
  return float(np.sum(np.where(valid, values, 0.0)) / max(int(valid.sum()), 1))


def valid_segments(segments: dict, key: str) -> np.ndarray:
  """``segments[key]`` of the valid segments only."""
  valid, _ = _rows(segments)
  return np.asarray(segments[key])[valid]


# --- Which evaluators run ------------------------------------------------------------------------
def evaluator_names(evals: Any, task: Any) -> tuple[str, ...]:
  """``config.evals`` (a name or a sequence of names; empty: the task's ``default_evals``) ->
  checked names (each registered, none twice)."""
  names = (evals,) if isinstance(evals, str) else tuple(evals or ())
  names = names or tuple(task.default_evals)
  if not names:
    raise UserError(f"config.evals is empty and task {type(task).__name__} names no default "
                    f"evaluator; set config.evals to some of {', '.join(EVALUATORS.names())}.")
  for name in names:
    EVALUATORS.get(name)
  if len(set(names)) != len(names):
    raise UserError(f"config.evals names an evaluator twice: {names}.")
  return names


def _same(a: Any, b: Any) -> bool:
  """Equal values (NaN equal to NaN)."""
  if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
    return True
  return a == b


def run_evaluators(names: Sequence[str], task: Any, segments: dict, num_clips: int,
                   variables: Any = None, *, model: Any = None) -> dict:
  """The metrics of every evaluator in ``names`` merged into one dict (in order).

  A key that two evaluators report is kept once when they agree (``clips``, or the same mean
  segment ``loss``); two different values under one key are a ``UserError``.
  """
  out, owner = {}, {}
  for name in names:
    result = EVALUATORS.get(name)(task, segments, num_clips, variables, model=model)
    for key, value in result.items():
      if key in out and not _same(out[key], value):
        raise UserError(f"config.evals: evaluators {owner[key]!r} and {name!r} both report "
                        f"{key!r} ({out[key]} and {value}); keep one of them.")
      out[key] = value
      owner.setdefault(key, name)
  return out
