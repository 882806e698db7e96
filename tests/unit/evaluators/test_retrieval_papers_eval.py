"""The retrieval evaluator on paper 13's tempo dimension (float BPM, similar within 5 BPM) and on
an un-normalised model (paper 14's "no L2 norm" classification row); the id-triplet sampler's
distribution (paper 13's 40,000 track triplets over every test segment)."""

import types

import numpy as np
import pytest

from musicrep_jax.evaluators.retrieval import retrieval_evaluator
from musicrep_jax.ops import metrics, retrieval
from musicrep_jax.tasks.metric_learning import TEMPO, MetricLearningTask

SHARDS = types.SimpleNamespace(tag_names=("a", "b"), dataset_dir="/nonexistent",
                               tag_groups={"g0": [0, 1]}, split_sizes={})


def _segments(clip_emb, fields, per_clip=2, seed=0, noise=0.01):
  """Two segments per clip around ``clip_emb`` ``[N, D]`` (Gaussian ``noise``), the clip's
  fields repeated, plus two padding rows."""
  rng = np.random.default_rng(seed)
  n, d = clip_emb.shape
  clip_index = np.repeat(np.arange(n), per_clip)
  emb = clip_emb[clip_index] + noise * rng.normal(size=(len(clip_index), d))
  out = {"embedding": np.r_[emb, np.full((2, d), 1e3)].astype(np.float32),
         "clip_index": np.r_[clip_index, [0, 0]],
         "segment_valid": np.r_[np.ones(len(clip_index), bool), [False, False]],
         "track": np.r_[clip_index, [0, 0]]}
  for name, value in fields.items():
    out[name] = np.concatenate([value[clip_index], value[:2]])
  return out


def test_tempo_label_is_evaluated_with_the_bpm_tolerance():
  rng = np.random.default_rng(1)
  bpm = rng.uniform(60, 180, 40).astype(np.float32)
  bpm[:3] = np.nan  # unknown tempo: neither relevant nor sampled
  # An embedding that orders clips by tempo on a quarter circle (NaN clips anywhere).
  angle = np.where(np.isnan(bpm), rng.uniform(0, 1.5, 40), (bpm - 60) / 120 * 1.5)
  clip_emb = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
  tags = (rng.random((40, 2)) < 0.5).astype(np.float32)
  segments = _segments(clip_emb, {TEMPO: bpm, "tags": tags})
  task = MetricLearningTask(labels=(TEMPO,), eval_labels=(TEMPO, "tag:g0"), eval_triplets=400,
                            retrieval_ks=(1, 2, 4, 8)).bind(SHARDS)
  got = retrieval_evaluator(task, segments, 40)

  unit = metrics.unit_rows(segments["embedding"][:80].reshape(40, 2, 2).mean(1))
  expected = retrieval.retrieval_metrics(unit, unit, bpm, bpm, ks=(1, 2, 4, 8),
                                         exclude_self=True, metric="cosine", tolerance=5.0)
  for key in ("map", "recall@1", "recall@8", "precision@2"):
    assert got[f"{TEMPO}/{key}"] == pytest.approx(expected[key], abs=1e-6), key
  known = bpm[3:]
  close = np.abs(known[:, None] - known[None]) <= 5.0
  np.fill_diagonal(close, False)
  has = close.any(1)
  assert got[f"{TEMPO}/chance"] == pytest.approx((close.sum(1) / 39)[has].mean())
  assert got[f"{TEMPO}/triplet_acc"] > 0.9  # tempo order is in the embedding
  assert got[f"{TEMPO}/map"] > 2 * got[f"{TEMPO}/chance"]
  # The overall mean covers the tag label and the tempo label (paper 13's four dimensions).
  assert got["overall/triplet_acc"] == pytest.approx(
      (got[f"{TEMPO}/triplet_acc"] + got["tag:g0/triplet_acc"]) / 2)
  assert np.isfinite(got["loss"]) and got["loss"] >= 0.0


def test_unnormalised_task_ranks_the_raw_embedding():
  """Directions carry the class, norms are random: the normalised evaluation finds the class,
  the un-normalised one (raw Euclidean) does much worse."""
  rng = np.random.default_rng(2)
  artist = np.arange(48) % 16
  norms = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), (48, 1)))
  clip_emb = (np.eye(16)[artist] + 0.05 * rng.normal(size=(48, 16))) * norms
  segments = _segments(clip_emb.astype(np.float32), {"artist": artist}, noise=0.0)
  common = dict(labels=("artist",), eval_labels=("artist",), eval_triplets=300,
                retrieval_ks=(1, 2), metric="euclidean")
  normed = retrieval_evaluator(MetricLearningTask(normalize=True, **common).bind(SHARDS),
                               segments, 48)
  raw = retrieval_evaluator(MetricLearningTask(normalize=False, **common).bind(SHARDS),
                            segments, 48)
  means = segments["embedding"][:96].reshape(48, 2, 16).mean(1)
  expected = retrieval.retrieval_metrics(means, means, artist, artist, ks=(1, 2),
                                         exclude_self=True, metric="euclidean")
  assert raw["artist/map"] == pytest.approx(expected["map"], abs=1e-6)
  assert normed["artist/recall@1"] > 0.95 and raw["artist/recall@1"] < 0.8


def test_id_triplets_follow_the_papers_sampling_distribution():
  """Int ids take the sorted-run sampler: anchors uniform over the rows with a positive and a
  negative, the positive uniform over the anchor's other rows, the negative over the rows of
  other ids; unknown (-1) and invalid rows never appear."""
  labels = np.array([0, 0, 0, 1, 1, 2, -1, 3, 3, 3, 3])
  valid = np.ones(11, bool)
  valid[10] = False
  t = retrieval.sample_triplets(labels, 80_000, seed=0, valid=valid)
  eligible = [0, 1, 2, 3, 4, 7, 8, 9]  # 5 is alone, 6 unknown, 10 invalid
  counts = np.bincount(t[:, 0], minlength=11)
  assert set(np.flatnonzero(counts)) == set(eligible)
  np.testing.assert_allclose(counts[eligible] / 80_000, 1 / 8, atol=0.006)
  assert (labels[t[:, 0]] == labels[t[:, 1]]).all() and (t[:, 0] != t[:, 1]).all()
  assert (labels[t[:, 2]] != labels[t[:, 0]]).all() and valid[t].all() and (labels[t] >= 0).all()
  of_zero = t[t[:, 0] == 0]
  np.testing.assert_allclose(np.bincount(of_zero[:, 1], minlength=3)[1:] / len(of_zero), 0.5,
                             atol=0.03)
  negatives = np.bincount(of_zero[:, 2], minlength=10)[[3, 4, 5, 7, 8, 9]] / len(of_zero)
  np.testing.assert_allclose(negatives, 1 / 6, atol=0.03)
