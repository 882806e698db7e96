"""The single-label classification task: loss, label checks, class counts (bind). Its metrics:
tests/unit/evaluators/test_classification.py; paper 6's two models learning the embedded corpus's
genre (held-out clips): tests/e2e/test_learning_runs.py."""

from __future__ import annotations

import numpy as np
import pytest

from musicrep_jax.data import shards as shards_lib
from musicrep_jax.errors import UserError
from musicrep_jax.evaluators import classification
from musicrep_jax.tasks.classification import ClassificationTask


def test_loss_is_softmax_cross_entropy_and_labels_are_checked():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(6, 4)).astype(np.float32)
  labels = np.array([0, 3, 1, 1, 2, 0])
  task = ClassificationTask()
  loss, logged = task.loss({"logits": logits}, {"tags": np.eye(4, dtype=np.float32)[labels]})
  log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  assert float(loss) == pytest.approx(float(-log_probs[np.arange(6), labels].mean()), rel=1e-5)
  assert float(logged["accuracy"]) == pytest.approx(float(np.mean(logits.argmax(1) == labels)))
  with pytest.raises(UserError, match="row 1 .* has 2"):
    classification.labels_from_tags(np.array([[0, 1, 0], [1, 1, 0]]), "x")
  with pytest.raises(UserError, match="row 0 .* has 0"):
    classification.labels_from_tags(np.array([[0, 0, 0]]), "x")
  with pytest.raises(UserError, match="class -1, outside 0..2"):
    classification.check_class_ids(np.array([-1, 2]), 3, "x")


def test_bind_counts_the_classes_of_the_shards(tiny_data_dir):
  shards = shards_lib.open_shards(tiny_data_dir)

  def num_outputs(**kwargs):
    return ClassificationTask(**kwargs).bind(shards).model_kwargs()["num_outputs"]

  with pytest.raises(UserError, match="exactly one tag per clip"):
    ClassificationTask().bind(shards)  # The corpus's tags are multi-hot.
  assert num_outputs(label_field="genre") == len(shards.metadata["genre_names"])
  assert num_outputs(label_field="artist", num_classes=30) == 30
  source = shards.source("train")
  artists = [int(source[i]["artist"]) for i in range(len(source))]
  assert num_outputs(label_field="artist") == max(artists) + 1
