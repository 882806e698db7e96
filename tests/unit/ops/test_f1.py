"""Tests of musicrep_jax.ops.metrics.precision_recall_f1: hand-computed values and scikit-learn."""

import numpy as np
import pytest

from musicrep_jax.ops import metrics

# 3 rows x 3 classes, threshold 0.5 (0.5 itself counts as predicted: >=).
LABELS = np.array([[1, 0, 1],
                   [0, 1, 0],
                   [0, 0, 0]])
SCORES = np.array([[0.9, 0.5, 0.2],    # pred 1 1 0: TP 1, FP 1, FN 1
                   [0.1, 0.7, 0.3],    # pred 0 1 0: TP 1
                   [0.0, 0.4, 0.49]])  # pred 0 0 0: nothing true, nothing predicted -> 0, 0, 0


def test_hand_computed_samples_micro_macro():
  got = {a: {k: float(v) for k, v in metrics.precision_recall_f1(LABELS, SCORES, 0.5, a).items()}
         for a in ("samples", "micro", "macro")}
  # samples: rows (P, R, F1) = (1/2, 1/2, 1/2), (1, 1, 1), (0, 0, 0).
  assert got["samples"] == pytest.approx(dict(precision=0.5, recall=0.5, f1=0.5))
  # micro: TP 2, FP 1, FN 1.
  assert got["micro"] == pytest.approx(dict(precision=2 / 3, recall=2 / 3, f1=2 / 3))
  # macro: class 0 (1, 1, 1); class 1 TP 1 FP 1 -> (1/2, 1, 2/3); class 2 FN 1 -> (0, 0, 0).
  assert got["macro"] == pytest.approx(dict(precision=0.5, recall=2 / 3, f1=5 / 9))


def test_threshold_is_inclusive_and_valid_rows_mask_padding():
  # Raising the threshold just above 0.5 drops row 0's false positive: row 0 -> (1, 1/2, 2/3).
  above = metrics.precision_recall_f1(LABELS, SCORES, np.nextafter(np.float32(0.5), 1))
  assert float(above["precision"]) == pytest.approx((1 + 1 + 0) / 3)
  assert float(above["f1"]) == pytest.approx((2 / 3 + 1 + 0) / 3)
  # Padding rows (garbage scores, NaN included) are ignored: same as the first two rows alone.
  padded_labels = np.concatenate([LABELS[:2], np.ones((2, 3))])
  padded_scores = np.concatenate([SCORES[:2], np.full((2, 3), np.nan)])
  valid = np.array([True, True, False, False])
  for average in ("samples", "micro", "macro"):
    want = metrics.precision_recall_f1(LABELS[:2], SCORES[:2], 0.5, average)
    got = metrics.precision_recall_f1(padded_labels, padded_scores, 0.5, average, valid=valid)
    for key in want:
      assert float(got[key]) == pytest.approx(float(want[key])), (average, key)


@pytest.mark.parametrize("average", ["samples", "micro", "macro"])
def test_matches_sklearn_on_random_multilabel(average):
  sk = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(0)
  labels = (rng.random((200, 17)) < 0.12).astype(np.int32)
  labels[:20] = 0  # rows with no event (some also without prediction: the 0/0 convention)
  scores = np.round(rng.random((200, 17)) * 0.3 + 0.2 * labels, 2).astype(np.float32)
  threshold = 0.1 * 2  # on the 0.01 grid: exact ties at the threshold occur
  assert np.any(scores == np.float32(threshold))
  got = metrics.precision_recall_f1(labels, scores, threshold, average)
  pred = scores >= np.float32(threshold)
  p, r, f, _ = sk.precision_recall_fscore_support(labels, pred, average=average, zero_division=0)
  assert float(got["precision"]) == pytest.approx(p, abs=1e-6)
  assert float(got["recall"]) == pytest.approx(r, abs=1e-6)
  assert float(got["f1"]) == pytest.approx(f, abs=1e-6)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="average"):
    metrics.precision_recall_f1(LABELS, SCORES, 0.5, "weighted")
  with pytest.raises(ValueError, match=r"\[N, K\]"):
    metrics.precision_recall_f1(LABELS, SCORES[:, :2], 0.5)


def test_exclusive_threshold_drops_scores_equal_to_it():
  # With ">" the 0.5 in row 0 is no longer predicted: row 0 -> TP 1, FN 1 -> (1, 1/2, 2/3).
  got = metrics.precision_recall_f1(LABELS, SCORES, 0.5, "samples", inclusive=False)
  assert float(got["precision"]) == pytest.approx(2 / 3)
  assert float(got["recall"]) == pytest.approx(0.5)
  assert float(got["f1"]) == pytest.approx((2 / 3 + 1) / 3)
