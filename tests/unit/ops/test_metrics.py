"""Tests of musicrep_jax.ops.metrics against scikit-learn and brute-force pure-Python references."""

import itertools

import jax
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from musicrep_jax.ops import metrics

TOL = 1e-6


def _pairwise_auc(scores, labels):
  """O(N^2) reference: fraction of (positive, negative) pairs ranked right, a tie counting 1/2."""
  pos = [s for s, y in zip(scores, labels) if y]
  neg = [s for s, y in zip(scores, labels) if not y]
  wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p, q in itertools.product(pos, neg))
  return wins / (len(pos) * len(neg))


def _brute_ap(scores, labels):
  """O(N^2) reference from the definition: mean over positives of precision at their score."""
  precisions = []
  for s, y in zip(scores, labels):
    if y:
      above = [yy for ss, yy in zip(scores, labels) if ss >= s]
      precisions.append(sum(above) / len(above))
  return sum(precisions) / len(precisions)


def _tied_data(rng, n, t, kind):
  """scores float32 [n, t] with heavy ties, labels int [n, t] with both classes in every column."""
  if kind == "int":
    scores = rng.integers(0, 4, size=(n, t)).astype(np.float32)
  else:
    scores = np.round(rng.random((n, t)), 1).astype(np.float32)
  rates = rng.uniform(0.1, 0.9, size=t)
  labels = (rng.random((n, t)) < rates).astype(np.int32)
  labels[0], labels[1] = 1, 0
  # Make scores informative so AUCs are not all ~0.5.
  scores = scores + (labels * rng.integers(0, 2, size=(n, t))).astype(np.float32)
  return scores, labels


@pytest.mark.parametrize("n,t,kind",
                         [(2, 3, "int"), (9, 4, "dec"), (64, 5, "int"), (517, 6, "dec")])
def test_per_tag_matches_sklearn_with_ties(n, t, kind):
  rng = np.random.default_rng(n)
  scores, labels = _tied_data(rng, n, t, kind)
  roc = np.asarray(metrics.roc_auc_per_tag(scores, labels))
  ap = np.asarray(metrics.average_precision_per_tag(scores, labels))
  assert roc.shape == ap.shape == (t,)
  for j in range(t):
    assert roc[j] == pytest.approx(roc_auc_score(labels[:, j], scores[:, j]), abs=TOL)
    assert ap[j] == pytest.approx(average_precision_score(labels[:, j], scores[:, j]), abs=TOL)


def test_per_tag_matches_pairwise_and_brute_force_references():
  rng = np.random.default_rng(1)
  for n in (2, 3, 11, 40):
    scores, labels = _tied_data(rng, n, 3, "int")
    roc = np.asarray(metrics.roc_auc_per_tag(scores, labels))
    ap = np.asarray(metrics.average_precision_per_tag(scores, labels))
    for j in range(3):
      assert roc[j] == pytest.approx(_pairwise_auc(scores[:, j], labels[:, j]), abs=TOL)
      assert ap[j] == pytest.approx(_brute_ap(scores[:, j], labels[:, j]), abs=TOL)


def test_hand_computed_values():
  # pos scores {2, 1}, neg scores {1, 0}: pairs (2>1, 2>0, 1=1, 1>0) -> 3.5 / 4.
  scores = np.array([[2.0], [1.0], [1.0], [0.0]], np.float32)
  labels = np.array([[1], [1], [0], [0]])
  assert float(metrics.roc_auc_per_tag(scores, labels)[0]) == pytest.approx(0.875)
  # Precision at s=2: 1/1; at s=1: 2/3 (the tied negative counts) -> AP = (1 + 2/3) / 2.
  assert float(metrics.average_precision_per_tag(scores, labels)[0]) == pytest.approx(5 / 6)


def test_infinite_scores_and_all_tied():
  scores = np.array([[np.inf, 0.0], [np.inf, 0.0], [-np.inf, 0.0], [1.0, 0.0], [-np.inf, 0.0]],
                    np.float32)
  labels = np.array([[1, 1], [0, 0], [1, 0], [0, 1], [0, 0]])
  valid = np.array([True, True, True, True, False])
  roc = np.asarray(metrics.roc_auc_per_tag(scores, labels, valid))
  ap = np.asarray(metrics.average_precision_per_tag(scores, labels, valid))
  for j in range(2):
    assert roc[j] == pytest.approx(_pairwise_auc(scores[:4, j], labels[:4, j]), abs=TOL)
    assert ap[j] == pytest.approx(_brute_ap(scores[:4, j], labels[:4, j]), abs=TOL)
  assert roc[1] == 0.5  # All tied: every pair counts 1/2.
  assert ap[1] == pytest.approx(0.5)  # Base rate.


def test_valid_mask_equals_sliced_arrays_and_ignores_garbage():
  rng = np.random.default_rng(2)
  n, t, pad = 50, 4, 14
  scores, labels = _tied_data(rng, n, t, "dec")
  # Padding rows anywhere (not just at the end) holding garbage: NaN, +-inf, flipped labels.
  garbage = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.5, 0.0, 1.0], np.float32), (pad, t))
  padded_scores = np.concatenate([scores, garbage])
  padded_labels = np.concatenate([labels, rng.integers(0, 2, size=(pad, t))])
  valid = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
  perm = rng.permutation(n + pad)
  padded_scores, padded_labels, valid = padded_scores[perm], padded_labels[perm], valid[perm]

  for fn in (metrics.roc_auc_per_tag, metrics.average_precision_per_tag):
    np.testing.assert_allclose(
        np.asarray(fn(padded_scores, padded_labels, valid)), np.asarray(fn(scores, labels)),
        rtol=0, atol=TOL)
  got = metrics.tagging_metrics(padded_scores, padded_labels, valid)
  want = metrics.tagging_metrics(scores, labels)
  for key in want:
    assert float(got[key]) == pytest.approx(float(want[key]), abs=TOL)
  assert float(want["roc_auc"]) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
  assert float(want["pr_auc"]) == pytest.approx(average_precision_score(labels, scores), abs=TOL)


def test_degenerate_tags_are_nan_and_excluded_from_macro():
  rng = np.random.default_rng(3)
  n = 40
  scores, labels = _tied_data(rng, n, 6, "dec")
  valid = np.ones(n, bool)
  valid[-5:] = False
  labels[:, 1] = 0  # No positive at all.
  labels[:, 2] = 1  # No negative: AUC undefined, AP = 1.
  labels[:, 4] = 0
  labels[-1, 4] = 1  # Its only positive is in a padding row.

  roc = np.asarray(metrics.roc_auc_per_tag(scores, labels, valid))
  ap = np.asarray(metrics.average_precision_per_tag(scores, labels, valid))
  np.testing.assert_array_equal(np.isnan(roc), [False, True, True, False, True, False])
  np.testing.assert_array_equal(np.isnan(ap), [False, True, False, False, True, False])
  assert ap[2] == 1.0

  v_scores, v_labels = scores[valid], labels[valid]
  roc_tags, ap_tags = [0, 3, 5], [0, 2, 3, 5]
  want_roc = roc_auc_score(v_labels[:, roc_tags], v_scores[:, roc_tags], average="macro")
  want_ap = average_precision_score(v_labels[:, ap_tags], v_scores[:, ap_tags], average="macro")
  assert float(metrics.macro_roc_auc(scores, labels, valid)) == pytest.approx(want_roc, abs=TOL)
  assert float(metrics.macro_pr_auc(scores, labels, valid)) == pytest.approx(want_ap, abs=TOL)
  out = metrics.tagging_metrics(scores, labels, valid)
  assert float(out["roc_auc"]) == pytest.approx(want_roc, abs=TOL)
  assert float(out["pr_auc"]) == pytest.approx(want_ap, abs=TOL)
  assert int(out["num_tags_scored"]) == 3
  assert int(out["num_tags_with_positives"]) == 4


def test_no_scorable_tag_gives_nan_macro():
  out = metrics.tagging_metrics(np.zeros((3, 2), np.float32), np.zeros((3, 2), np.int32))
  assert np.isnan(float(out["roc_auc"])) and np.isnan(float(out["pr_auc"]))
  assert int(out["num_tags_scored"]) == 0 and int(out["num_tags_with_positives"]) == 0


def test_runs_under_jit_and_matches_eager():
  rng = np.random.default_rng(4)
  scores, labels = _tied_data(rng, 33, 5, "int")
  valid = rng.random(33) < 0.8
  valid[:2] = True
  jitted = jax.jit(metrics.tagging_metrics)(scores, labels, valid)
  eager = metrics.tagging_metrics(scores, labels, valid)
  for key in eager:
    assert float(jitted[key]) == pytest.approx(float(eager[key]), abs=TOL)
  per_tag = jax.jit(metrics.roc_auc_per_tag)(scores, labels, valid)
  np.testing.assert_allclose(per_tag, metrics.roc_auc_per_tag(scores, labels, valid), atol=TOL)
  np.testing.assert_allclose(
      jax.jit(metrics.average_precision_per_tag)(scores, labels),
      [average_precision_score(labels[:, j], scores[:, j]) for j in range(5)], atol=TOL)
  clip_fn = jax.jit(metrics.clip_average, static_argnames="num_clips")
  means, counts = clip_fn(scores, np.arange(33) % 4, valid, num_clips=4)
  assert means.shape == (4, 5) and counts.shape == (4,)


def test_large_n_float32_precision():
  """N = 50k with ties and near-1 AUC: still within 1e-6 of scikit-learn (float64)."""
  rng = np.random.default_rng(5)
  n = 50_000
  labels = (rng.random((n, 2)) < [[0.5, 0.02]]).astype(np.int32)
  scores = np.round(rng.random((n, 2)) * 0.3 + 0.7 * labels, 3).astype(np.float32)
  roc = np.asarray(jax.jit(metrics.roc_auc_per_tag)(scores, labels))
  ap = np.asarray(jax.jit(metrics.average_precision_per_tag)(scores, labels))
  for j in range(2):
    assert roc[j] == pytest.approx(roc_auc_score(labels[:, j], scores[:, j]), abs=TOL)
    assert ap[j] == pytest.approx(average_precision_score(labels[:, j], scores[:, j]), abs=TOL)


def test_clip_average_matches_numpy_loop():
  rng = np.random.default_rng(6)
  s, t, num_clips = 60, 3, 7
  seg = rng.random((s, t)).astype(np.float32)
  clip = rng.integers(0, num_clips - 1, size=s)  # The last clip gets no segment.
  valid = rng.random(s) < 0.8
  # Padding segments hold garbage: NaN scores, out-of-range or negative indices.
  seg[~valid] = np.nan
  clip[~valid] = rng.choice([-1, 0, num_clips, 3], size=(~valid).sum())

  means, counts = metrics.clip_average(seg, clip, valid, num_clips)
  want_means = np.full((num_clips, t), np.nan)
  want_counts = np.zeros(num_clips, int)
  for c in range(num_clips):
    rows = [i for i in range(s) if valid[i] and clip[i] == c]
    want_counts[c] = len(rows)
    if rows:
      want_means[c] = np.mean(seg[rows], axis=0)
  np.testing.assert_array_equal(np.asarray(counts), want_counts)
  np.testing.assert_allclose(np.asarray(means), want_means, rtol=1e-6, atol=1e-7)
  assert want_counts[-1] == 0 and np.isnan(np.asarray(means)[-1]).all()


def test_clip_average_feeds_metrics_with_count_mask():
  seg = np.array([[0.9], [0.7], [0.2], [0.4], [0.0]], np.float32)
  clip = np.array([0, 0, 1, 1, 0])
  valid = np.array([True, True, True, True, False])
  means, counts = metrics.clip_average(seg, clip, valid, num_clips=3)
  np.testing.assert_allclose(np.asarray(means)[:2, 0], [0.8, 0.3], rtol=1e-6)
  clip_labels = np.array([[1], [0], [1]])  # Clip 2 is empty (NaN score): masked out by counts.
  assert float(metrics.macro_roc_auc(means, clip_labels, counts > 0)) == 1.0


def test_shape_errors():
  with pytest.raises(ValueError):
    metrics.roc_auc_per_tag(np.zeros((4, 2)), np.zeros((4, 3)))
  with pytest.raises(ValueError):
    metrics.average_precision_per_tag(np.zeros((4, 2)), np.zeros((4, 2)), np.ones(3, bool))
  with pytest.raises(ValueError):
    metrics.clip_average(np.zeros((4, 2)), np.zeros(5, int), np.ones(4, bool), 2)


def test_unit_rows_and_zero_rows():
  x = np.array([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(metrics.unit_rows(x), [[0.6, 0.8], [0.0, 0.0]])
  assert metrics.unit_rows(x).dtype == np.float32


def test_ridge_probe_ranks_a_linearly_decodable_tag():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(80, 6)).astype(np.float32)
  tags = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0.5], 1).astype(np.float32)
  scores = metrics.ridge_probe_scores(x, tags)
  for t in range(2):  # Held-out folds: positives score above negatives on average.
    assert scores[tags[:, t] == 1, t].mean() > scores[tags[:, t] == 0, t].mean() + 0.3
  noise = metrics.ridge_probe_scores(rng.normal(size=(80, 6)).astype(np.float32), tags)
  assert abs(roc_auc_score(tags[:, 0], noise[:, 0]) - 0.5) < 0.2
