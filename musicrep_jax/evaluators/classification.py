"""Classification evaluator: clip-level accuracy, top-k and balanced accuracy (paper 6;
papers.md 7.2, evaluation as in 1.2 and 1.4).

Clip score = mean of the segments' softmax outputs (the papers average the outputs of a clip's
segments); the metrics are clip-level accuracy, top-k accuracy, balanced accuracy (mean
per-class recall over the classes present) and the mean segment cross-entropy.

Top-k ties: classes are ranked by score, ties broken by class index (a stable sort), so top-1
accuracy is exactly ``argmax == label``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.common import clip_means, clip_values, require, segment_mean
from musicrep_jax.registry import EVALUATORS


def labels_from_tags(tags: np.ndarray, where: str) -> np.ndarray:
  """One-hot ``tags`` ``[N, C]`` -> class ids int64 ``[N]``; ``UserError`` on any other row."""
  tags = np.asarray(tags)
  set_per_row = np.sum(tags != 0, axis=-1)
  bad = np.flatnonzero(set_per_row != 1)
  if bad.size:
    raise UserError(
        f"The classification task needs exactly one tag per clip, but row {int(bad[0])} of "
        f"{where} has {int(set_per_row[bad[0]])} ({bad.size} such rows); use a single-label "
        "dataset or set config.task.kwargs.label_field to an integer field (e.g. genre).")
  return np.argmax(tags != 0, axis=-1).astype(np.int64)


def check_class_ids(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
  """int ``[N]`` class ids, checked to lie in ``[0, num_classes)``."""
  labels = np.asarray(labels, np.int64)
  bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if bad.size:
    raise UserError(f"Row {int(bad[0])} of {where} has class {int(labels[bad[0]])}, outside "
                    f"0..{num_classes - 1} ({bad.size} such rows; -1 means unknown).")
  return labels


def class_rank(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Rank of each row's true class (0 = best) by score, ties broken by class index.

  Args:
    scores: float ``[N, C]``. labels: int ``[N]`` in ``[0, C)``.

  Returns:
    int ``[N]``: #classes scoring higher + #classes tied with a lower index (= the position of
    the label in a stable descending sort).
  """
  scores = np.asarray(scores)
  labels = np.asarray(labels, np.int64)
  true = np.take_along_axis(scores, labels[:, None], axis=1)
  lower_index = np.arange(scores.shape[1])[None, :] < labels[:, None]
  return np.sum((scores > true) | ((scores == true) & lower_index), axis=1)


def classification_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: int,
                           top_k: tuple = (5,)) -> dict:
  """Accuracy, top-k accuracy and balanced accuracy of ``N`` scored items.

  Args:
    scores: float ``[N, C]`` (clip-averaged softmax). labels: int ``[N]``.
    num_classes: ``C``.
    top_k: the k of each ``top{k}_accuracy``; k >= C is left out (it would be 1).

  Returns:
    ``accuracy``, ``top{k}_accuracy`` per k, ``balanced_accuracy`` (mean recall over classes
    present among the items) as floats.
  """
  rank = class_rank(scores, labels)
  out = {"accuracy": float(np.mean(rank == 0))}
  for k in top_k:
    if 1 < k < num_classes:
      out[f"top{k}_accuracy"] = float(np.mean(rank < k))
  present = np.unique(labels)
  recalls = [np.mean(rank[labels == c] == 0) for c in present]
  out["balanced_accuracy"] = float(np.mean(recalls))
  return out


@EVALUATORS.register("classification")
def classification(task: Any, segments: dict, num_clips: int, variables: Any = None, *,
                   model: Any = None) -> dict:
  """Segment outputs of a split -> ``accuracy``, ``top{k}_accuracy`` (``task.top_k``),
  ``balanced_accuracy``, mean segment ``loss``, ``clips``.

  Reads ``probs`` ``[S, C]`` (softmax) and ``loss`` ``[S]`` of ``eval_outputs`` and the label
  field ``task.label_field``: one-hot ``tags`` ``[S, C]`` (every evaluated clip must be one-hot,
  a ``UserError`` otherwise) or integer class ids ``[S]``.
  """
  del variables, model
  label_field = getattr(task, "label_field", "tags")
  require(segments, ("probs", "loss", label_field), "classification", task)
  probs, counts = clip_means(segments, "probs", num_clips)
  scored = counts > 0
  num_classes = probs.shape[-1]
  labels = clip_values(segments, label_field, num_clips)[scored]
  where = "the evaluated clips"
  if label_field == "tags":
    labels = labels_from_tags(labels, where)
  labels = check_class_ids(labels, num_classes, where)
  out = classification_metrics(probs[scored], labels, num_classes,
                               tuple(getattr(task, "top_k", (5,))))
  out["loss"] = segment_mean(segments, "loss")
  out["clips"] = int(num_clips)
  return out
