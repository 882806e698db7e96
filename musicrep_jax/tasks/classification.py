"""Single-label classification with a softmax (paper 6: keyword spotting and acoustic scenes;
papers.md 7.2, evaluation as in 1.2 and 1.4).

Training: softmax cross entropy (the Keras ``categorical_crossentropy``), averaged over the
global batch; every segment inherits its clip's class. Evaluation: clip score = mean of the
softmax outputs over the clip's segments (the papers average the outputs of the clip's segments,
papers.md 1.2 and 7.2); metrics are clip-level accuracy, top-k accuracy, balanced accuracy (mean
per-class recall) and the mean segment loss.

Where the label comes from (``label_field``):

* ``"tags"`` (default): builders of single-label datasets (Speech Commands, DCASE 2017 scenes)
  store the class as a one-hot ``tags`` vector, so ``tag_names`` are the class names and the
  shared shard schema is unchanged. Every row must be exactly one-hot: a dataset marked
  ``metadata["single_label"] = True`` by its builder is trusted at start-up, any other is checked
  on its first records of the train split, and every evaluated segment is checked on the host
  (a ``UserError`` otherwise, naming the row).
* an integer field (``genre`` or ``artist`` on the embedded corpus, ``artist`` of a folder
  dataset): the class is the value; the class count is ``len(metadata["<field>_names"])`` when
  the builder wrote names, else ``num_classes`` when set, else the largest id of the train split
  + 1 (one pass over the split). Negative (unknown) ids are an error.

Top-k ties: classes are ranked by score, ties broken by class index (a stable sort), so top-1
accuracy is exactly ``argmax == label``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from musicrep_jax.ops import metrics
from musicrep_jax.errors import UserError
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import Task

# Records of the train split checked for one-hot tags at start-up (datasets not marked
# single_label by their builder).
ONE_HOT_CHECK_RECORDS = 64


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


@TASKS.register("classification")
@dataclasses.dataclass(frozen=True)
class ClassificationTask(Task):
  """Batch -> softmax cross entropy -> clip-level accuracy.

  Batches carry ``label_field``: ``tags`` float32 ``[batch, C]`` one-hot, or an int64 ``[batch]``
  class id. Model outputs carry ``logits`` float32 ``[batch, C]``.

  Attributes:
    label_field: ``"tags"`` (one-hot) or an integer record field (``genre``, ``artist``...).
    num_classes: class count for an integer field without ``<field>_names`` metadata (0: from
      the data).
    top_k: k values of the ``top{k}_accuracy`` metrics.
  """

  label_field: str = "tags"
  num_classes: int = 0
  top_k: tuple = (5,)
  metric_names: tuple = ("loss", "accuracy")
  higher_is_better: tuple = ("accuracy", "balanced_accuracy", "top5_accuracy")

  @property
  def fields(self) -> tuple:
    return (self.label_field,)

  # --- Classes --------------------------------------------------------------------------------
  def num_outputs(self, shards) -> int:
    source = shards.source("train" if "train" in shards.split_sizes else shards.splits[0])
    if self.label_field == "tags":
      if not shards.tag_names:
        raise UserError(f"The shards at {shards.data_dir} have no tags to classify; set "
                        "config.task.kwargs.label_field to an integer field.")
      if not shards.metadata.get("single_label", False):
        count = min(len(source), ONE_HOT_CHECK_RECORDS)
        labels_from_tags(np.stack([source[i]["tags"] for i in range(count)]),
                         f"the first {count} records of {source.split!r} in {shards.data_dir}")
      return len(shards.tag_names)
    names = shards.metadata.get(f"{self.label_field}_names") or []
    if names:
      return len(names)
    if self.num_classes > 0:
      return int(self.num_classes)
    ids = np.asarray([source[i][self.label_field] for i in range(len(source))], np.int64)
    check_class_ids(ids, np.iinfo(np.int64).max, f"split {source.split!r}")
    return int(ids.max()) + 1

  def _labels(self, batch: dict) -> jnp.ndarray:
    """Class ids int32 ``[batch]`` from the batch (argmax of one-hot ``tags``)."""
    value = batch[self.label_field]
    if self.label_field == "tags":
      return jnp.argmax(value, axis=-1).astype(jnp.int32)
    return value.astype(jnp.int32)

  # --- Losses and metrics ----------------------------------------------------------------------
  def loss(self, outputs: dict, batch: dict) -> tuple[jnp.ndarray, dict]:
    """Mean softmax cross entropy over the batch, and the batch's segment accuracy."""
    labels = self._labels(batch)
    logits = outputs["logits"]
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
    return loss, {"loss": loss, "accuracy": accuracy}

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    """Per segment: softmax ``probs`` ``[batch, C]`` and cross entropy ``loss`` ``[batch]``."""
    logits = outputs["logits"]
    labels = self._labels(batch)
    return {"probs": jax.nn.softmax(logits, axis=-1),
            "loss": optax.softmax_cross_entropy_with_integer_labels(logits, labels)}

  def clip_metrics(self, segments: dict, num_clips: int, variables: Any = None) -> dict:
    """Segment outputs of a whole split -> clip-level accuracy metrics and mean segment loss.

    Args:
      segments: numpy, one row per segment: ``probs`` ``[S, C]`` and ``loss`` ``[S]`` (from
        ``eval_outputs``), the label field (``[S, C]`` or ``[S]``), ``clip_index`` ``[S]``,
        ``segment_valid`` ``[S]`` (False for padding rows).
      num_clips: clips in the split.
      variables: unused.
    """
    del variables
    valid = np.asarray(segments["segment_valid"], bool)
    clip_index = np.asarray(segments["clip_index"])
    probs = np.asarray(segments["probs"])
    num_classes = probs.shape[-1]
    where = "the evaluated segments"
    if self.label_field == "tags":
      seg_labels = labels_from_tags(np.asarray(segments["tags"])[valid], where)
    else:
      seg_labels = np.asarray(segments[self.label_field])[valid]
    seg_labels = check_class_ids(seg_labels, num_classes, where)
    clip_labels = np.full((num_clips,), -1, np.int64)
    clip_labels[clip_index[valid]] = seg_labels
    clip_probs, counts = metrics.clip_average(probs, clip_index, valid, num_clips)
    scored = np.asarray(counts) > 0
    out = classification_metrics(np.asarray(clip_probs)[scored], clip_labels[scored],
                                 num_classes, self.top_k)
    out["loss"] = float(np.mean(np.asarray(segments["loss"], np.float64)[valid]))
    out["clips"] = int(num_clips)
    return out
