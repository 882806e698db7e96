"""The retrieval / triplet evaluator (papers 4, 9, 13, 14) on a bound metric-learning task:
leave-one-out retrieval of clip-averaged embeddings, chance, overall means, the probe, the
held-out hinge loss."""

import types

import numpy as np
import pytest

from musicrep_jax.evaluators.retrieval import retrieval_evaluator
from musicrep_jax.ops import metrics, retrieval
from musicrep_jax.tasks.metric_learning import MetricLearningTask

SHARDS = types.SimpleNamespace(tag_names=("a", "b", "c"), dataset_dir="/nonexistent",
                               tag_groups={"g0": [0, 1], "g1": [2]}, split_sizes={})


def _segments(num_clips=24, per_clip=2, pad=3, seed=0):
  """Clips of 6 artists (4 each) whose embedding points to their artist, plus padding rows."""
  rng = np.random.default_rng(seed)
  artist = np.arange(num_clips) % 6
  tags = np.stack([artist % 2 == 0, artist % 2 == 1, artist < 3], 1).astype(np.float32)
  clip_index = np.repeat(np.arange(num_clips), per_clip)
  n = len(clip_index)
  emb = np.eye(8, dtype=np.float32)[artist[clip_index]] + 0.1 * rng.normal(size=(n, 8))
  return {
      "embedding": np.r_[emb, np.full((pad, 8), 1e6)].astype(np.float32),
      "artist": np.r_[artist[clip_index], np.zeros(pad, int)],
      "tags": np.r_[tags[clip_index], np.ones((pad, 3), np.float32)],
      "track": np.r_[clip_index, np.zeros(pad, int)],
      "clip_index": np.r_[clip_index, np.zeros(pad, int)],
      "segment_valid": np.r_[np.ones(n, bool), np.zeros(pad, bool)],
  }, artist


def test_retrieval_metrics_of_clip_embeddings():
  segments, artist = _segments()
  task = MetricLearningTask(labels=("artist",), eval_labels=("artist", "tag:g0"),
                            retrieval_ks=(1, 2), eval_triplets=200).bind(SHARDS)
  got = retrieval_evaluator(task, segments, 24)
  means = segments["embedding"][:48].reshape(24, 2, 8).mean(1)
  unit = metrics.unit_rows(means)
  hot = np.eye(6, dtype=np.float32)[artist]
  expected = retrieval.retrieval_metrics(unit, unit, hot, hot, ks=(1, 2), exclude_self=True,
                                         metric="cosine")
  assert got["artist/map"] == pytest.approx(float(expected["map"]), abs=1e-5)
  assert got["artist/map"] > 0.95 and got["artist/triplet_acc"] > 0.95
  assert got["artist/chance"] == pytest.approx(3 / 23)
  assert got["overall/map"] == got["tag:g0/map"]  # The one tag label.
  assert got["track/triplet_acc"] > 0.9 and got["clips"] == 24
  assert got["probe_roc_auc"] == got["roc_auc"] and 0.0 <= got["probe_pr_auc"] <= 1.0
  assert np.isfinite(got["loss"]) and got["loss"] >= 0.0
  assert "artist/sub_map" not in got  # Not disentangled.
