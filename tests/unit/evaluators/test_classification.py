"""The classification evaluator (paper 6): clip-level accuracy, top-k and balanced accuracy
against naive loops, softmax averaged over segments, padding ignored, labels checked."""

from __future__ import annotations

import numpy as np
import pytest

from musicrep_jax.errors import UserError
from musicrep_jax.evaluators import classification
from musicrep_jax.tasks.classification import ClassificationTask


def naive_top_k(scores, labels, k):
  """Fraction of rows whose label is among the first k of a stable descending sort."""
  hits = [label in np.argsort(-row, kind="stable")[:k] for row, label in zip(scores, labels)]
  return float(np.mean(hits))


def test_classification_metrics_match_naive_with_ties():
  rng = np.random.default_rng(0)
  scores = rng.integers(0, 4, size=(300, 7)).astype(np.float32)  # Many ties.
  labels = rng.integers(0, 7, size=300)
  got = classification.classification_metrics(scores, labels, 7, top_k=(3, 5, 7))
  assert got["accuracy"] == pytest.approx(float(np.mean(np.argmax(scores, 1) == labels)))
  assert got["top3_accuracy"] == pytest.approx(naive_top_k(scores, labels, 3))
  assert got["top5_accuracy"] == pytest.approx(naive_top_k(scores, labels, 5))
  assert "top7_accuracy" not in got  # k >= classes is always 1.
  recalls = [np.mean(np.argmax(scores[labels == c], 1) == c) for c in range(7)]
  assert got["balanced_accuracy"] == pytest.approx(float(np.mean(recalls)))


@pytest.mark.parametrize("label_field", ["tags", "genre"])
def test_evaluator_averages_softmax_over_segments(label_field):
  """Clip score = mean of the segments' softmax; padding rows are ignored whatever they hold."""
  rng = np.random.default_rng(1)
  num_clips, per_clip, classes = 20, 3, 5
  clip_labels = rng.integers(0, classes, num_clips)
  clip_index = np.repeat(np.arange(num_clips), per_clip)
  probs = rng.dirichlet(np.ones(classes), size=len(clip_index)).astype(np.float32)
  loss = rng.uniform(0, 3, len(clip_index))
  pad = 4
  valid = np.r_[np.ones(len(clip_index), bool), np.zeros(pad, bool)]
  labels = np.r_[clip_labels[clip_index], np.zeros(pad, int)]
  segments = {
      "probs": np.r_[probs, np.full((pad, classes), np.nan, np.float32)],
      "loss": np.r_[loss, np.full(pad, 1e9)],
      "clip_index": np.r_[clip_index, np.zeros(pad, int)],
      "segment_valid": valid,
      label_field: np.eye(classes)[labels] if label_field == "tags" else labels,
  }
  if label_field == "tags":
    segments["tags"][~valid] = 1.0  # Padding rows are not one-hot: must not matter.
  task = ClassificationTask(label_field=label_field, top_k=(2,))
  got = classification.classification(task, segments, num_clips)
  clip_probs = np.stack([probs[clip_index == c].mean(0) for c in range(num_clips)])
  assert got["accuracy"] == pytest.approx(float(np.mean(clip_probs.argmax(1) == clip_labels)))
  assert got["top2_accuracy"] == pytest.approx(naive_top_k(clip_probs, clip_labels, 2))
  assert got["loss"] == pytest.approx(float(loss.mean()))
  assert got["clips"] == num_clips


def test_evaluated_clips_must_be_one_hot():
  segments = {"probs": np.full((2, 3), 1 / 3, np.float32), "loss": np.zeros(2),
              "clip_index": np.array([0, 1]), "segment_valid": np.ones(2, bool),
              "tags": np.array([[0, 1, 0], [1, 1, 0]], np.float32)}
  with pytest.raises(UserError, match="row 1 of the evaluated clips has 2"):
    classification.classification(ClassificationTask(), segments, 2)
  segments.pop("tags")
  with pytest.raises(UserError, match="'classification' needs the per-segment tags"):
    classification.classification(ClassificationTask(), segments, 2)
