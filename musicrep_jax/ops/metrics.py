"""Tagging metrics in jnp: exact per-tag ROC-AUC / PR-AUC with ties, macro means, clip averaging,
thresholded precision / recall / F1 (samples, micro, macro averages); and two host-side (numpy)
helpers of the evaluators: unit rows and a ridge linear probe.

Everything here is vectorized (one sort per tag, ``searchsorted`` and prefix sums, ``vmap`` over
tags; no Python loop over tags or rows), has static output shapes, and runs under ``jax.jit``, so
evaluation can stay on the accelerator with fixed-shape (padded) batches.

Conventions (``N`` rows = clips or segments, ``T`` tags):

* ``scores``: float [N, T], higher = more likely positive (sigmoid outputs or logits; both give
  the same ranking metrics). Computed in float32 (or wider if given wider).
* ``labels``: {0, 1} [N, T] (any dtype; nonzero = positive).
* ``valid``: optional bool [N]. Rows with ``valid=False`` are ignored entirely, whatever their
  scores (NaN included) or labels: the eval pipeline pads its last batch to a fixed shape.
  Scores of valid rows must not be NaN (the ranking is then undefined).

Per-tag values equal scikit-learn's ``roc_auc_score`` / ``average_precision_score`` computed on
that tag's column restricted to the valid rows, ties included:

* ROC-AUC = Mann-Whitney U / (P * Nneg): the fraction of (positive, negative) pairs ranked
  correctly, a tie counting 1/2 (= mid-rank formula). Computed as the sum over positives of
  ``#neg < s + #neg <= s``, over ``2 P Nneg``: nonnegative terms, no ``sum(ranks) - P(P+1)/2``
  cancellation (float32 agrees with scikit-learn's float64 to 1e-6 at N = 50k in the tests).
* AP = (1/P) * sum over positives i of precision(score >= s_i), where precision counts all valid
  items with score >= s_i (tied items are all above the threshold, as in scikit-learn).

A tag whose metric is undefined on the valid rows gets NaN: ROC-AUC needs at least one positive
and one negative, AP at least one positive. The macro means are ``nanmean`` over tags, i.e. they
exclude exactly those tags, as the papers do (ROC-AUC averaged over the tags present in the test
set); ``tagging_metrics`` reports how many tags each mean covers.

Clip-level evaluation (the papers' protocol): a clip's score is the mean of the sigmoid outputs
over its segments (never the max), see ``clip_average`` (the evaluators reach it through
``musicrep_jax.evaluators.common``, which handles the split's ``clip_index`` / ``segment_valid``).
"""

from __future__ import annotations

import functools
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _prepare(scores, labels, valid) -> Tuple[Array, Array, Array]:
  """Checks shapes (static) and returns (scores float [N, T], positive bool [N, T],
  valid bool [N])."""
  scores = jnp.asarray(scores)
  labels = jnp.asarray(labels)
  if scores.ndim != 2 or labels.shape != scores.shape:
    raise ValueError(
        f"scores and labels must both be [N, T]; got {scores.shape} and {labels.shape}")
  n = scores.shape[0]
  if valid is None:
    valid = jnp.ones((n,), bool)
  valid = jnp.asarray(valid)
  if valid.shape != (n,):
    raise ValueError(f"valid must be [N] = ({n},); got {valid.shape}")
  dtype = jnp.promote_types(scores.dtype, jnp.float32)
  return scores.astype(dtype), labels != 0, valid.astype(bool)


def _tag_counts(score: Array, positive: Array, valid: Array) -> Dict[str, Array]:
  """Per-row tie-aware counts for one tag, from one sort.

  Args:
    score: float [N]. positive: bool [N]. valid: bool [N].

  Returns a dict of int32 arrays: ``lt`` / ``le`` [N] (valid rows with score < / <= each row's
  score), ``pos_lt`` / ``pos_le`` [N] (the same among valid positives), and scalars ``n_valid``,
  ``n_pos``. Entries for invalid rows are meaningless (callers mask them).
  """
  n = score.shape[0]
  # Valid rows first (primary key), each group by score: the first n_valid entries are the valid
  # scores in order, whatever the invalid rows hold (NaN, +inf...).
  _, sorted_score, sorted_pos = jax.lax.sort(
      (jnp.logical_not(valid).astype(jnp.int32), score, (positive & valid).astype(jnp.int32)),
      num_keys=2)
  n_valid = jnp.sum(valid, dtype=jnp.int32)
  n_pos = jnp.sum(positive & valid, dtype=jnp.int32)
  # Padding at +inf is never < a query; it can be <= a +inf query, hence the clip to n_valid.
  sorted_score = jnp.where(jnp.arange(n) < n_valid, sorted_score, jnp.inf)
  cum_pos = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(sorted_pos, dtype=jnp.int32)])
  lt = jnp.searchsorted(sorted_score, score, side="left").astype(jnp.int32)
  le = jnp.minimum(jnp.searchsorted(sorted_score, score, side="right").astype(jnp.int32), n_valid)
  return dict(lt=lt, le=le, pos_lt=cum_pos[lt], pos_le=cum_pos[le], n_valid=n_valid, n_pos=n_pos)


def _tag_metrics_one(score: Array, positive: Array, valid: Array) -> Tuple[Array, Array]:
  """ROC-AUC and average precision of one tag from shared counts.

  Args:
    score: float [N]. positive: bool [N]. valid: bool [N].

  Returns:
    (roc_auc, average_precision) scalars; ROC-AUC is NaN without a valid positive or a valid
    negative, AP is NaN without a valid positive.
  """
  c = _tag_counts(score, positive, valid)
  dtype = score.dtype
  scored = positive & valid
  n_pos = c["n_pos"].astype(dtype)
  n_neg = c["n_valid"] - c["n_pos"]
  # ROC-AUC: 2 * (#neg < s + 0.5 * #neg == s) = #neg < s + #neg <= s, an exact integer per
  # positive; summing these nonnegative terms avoids the rank-sum cancellation.
  twice_wins = (c["lt"] - c["pos_lt"]) + (c["le"] - c["pos_le"])
  u2 = jnp.sum(jnp.where(scored, twice_wins, 0).astype(dtype))
  denom = 2.0 * n_pos * n_neg.astype(dtype)
  roc = jnp.where((c["n_pos"] > 0) & (n_neg > 0), u2 / jnp.maximum(denom, 1.0), jnp.nan)
  # AP: precision at each positive's score, counting every valid item tied with it.
  tp_at_or_above = c["n_pos"] - c["pos_lt"]
  at_or_above = jnp.maximum(c["n_valid"] - c["lt"], 1)  # >= 1 for valid rows (the row itself).
  precision = tp_at_or_above.astype(dtype) / at_or_above.astype(dtype)
  total = jnp.sum(jnp.where(scored, precision, 0.0))
  ap = jnp.where(c["n_pos"] > 0, total / jnp.maximum(n_pos, 1.0), jnp.nan)
  return roc, ap


# Jitted as a whole (inlined under an outer jit): eager callers get one compiled program per
# shape instead of op-by-op dispatch.
_per_tag_metrics = jax.jit(jax.vmap(_tag_metrics_one, in_axes=(1, 1, None)))


def roc_auc_per_tag(scores, labels, valid=None) -> Array:
  """Exact ROC-AUC per tag, ties as mid-ranks (= ``sklearn.metrics.roc_auc_score`` per column).

  Args:
    scores: float [N, T]. labels: {0, 1} [N, T]. valid: optional bool [N] (False rows ignored).

  Returns:
    float [T]; NaN for tags without a positive or without a negative among the valid rows.
  """
  return _per_tag_metrics(*_prepare(scores, labels, valid))[0]


def average_precision_per_tag(scores, labels, valid=None) -> Array:
  """Exact average precision per tag (= ``sklearn.metrics.average_precision_score`` per column).

  AP = (1/P) * sum over valid positives i of #positives(score >= s_i) / #valid(score >= s_i).

  Args:
    scores: float [N, T]. labels: {0, 1} [N, T]. valid: optional bool [N] (False rows ignored).

  Returns:
    float [T]; NaN for tags without a positive among the valid rows.
  """
  return _per_tag_metrics(*_prepare(scores, labels, valid))[1]


def macro_roc_auc(scores, labels, valid=None) -> Array:
  """Macro ROC-AUC: mean over tags having both a positive and a negative among valid rows. Scalar.

  NaN if no tag qualifies. ``tagging_metrics`` also reports how many tags were averaged.
  """
  return jnp.nanmean(roc_auc_per_tag(scores, labels, valid))


def macro_pr_auc(scores, labels, valid=None) -> Array:
  """Macro PR-AUC (average precision): mean over tags with a positive among valid rows. Scalar.

  NaN if no tag qualifies. ``tagging_metrics`` also reports how many tags were averaged.
  """
  return jnp.nanmean(average_precision_per_tag(scores, labels, valid))


def tagging_metrics(scores, labels, valid=None) -> Dict[str, Array]:
  """Macro ROC-AUC and PR-AUC with the number of tags each one averages.

  Args:
    scores: float [N, T]. labels: {0, 1} [N, T]. valid: optional bool [N] (False rows ignored).

  Returns:
    dict of scalars: ``roc_auc`` (mean over the ``num_tags_scored`` tags with both a positive and
    a negative among the valid rows), ``pr_auc`` (mean over the ``num_tags_with_positives`` tags
    with a positive; a tag with no negative has AP 1 and is included), ``num_tags_scored`` and
    ``num_tags_with_positives`` (int32). Per-tag values: ``roc_auc_per_tag`` and
    ``average_precision_per_tag``.
  """
  roc, ap = _per_tag_metrics(*_prepare(scores, labels, valid))
  return dict(
      roc_auc=jnp.nanmean(roc),
      pr_auc=jnp.nanmean(ap),
      num_tags_scored=jnp.sum(~jnp.isnan(roc), dtype=jnp.int32),
      num_tags_with_positives=jnp.sum(~jnp.isnan(ap), dtype=jnp.int32),
  )


def clip_average(segment_scores, clip_index, valid, num_clips: int) -> Tuple[Array, Array]:
  """Clip-level scores: the mean of each clip's segment scores (the papers' protocol, never max).

  Pass sigmoid outputs (probabilities), not logits: the papers average probabilities.

  Args:
    segment_scores: float [S, T], one row per segment.
    clip_index: int [S], the clip (in ``[0, num_clips)``) each segment belongs to. Valid segments
      with an index outside that range are dropped (``segment_sum`` semantics).
    valid: bool [S]; False segments (batch padding) are ignored, whatever their scores/indices.
    num_clips: static number of output clips.

  Returns:
    (clip_scores float [num_clips, T], counts int32 [num_clips]): the mean over each clip's valid
    segments and how many there were. A clip with no valid segment has count 0 and NaN scores;
    pass ``valid=counts > 0`` to the metrics above.
  """
  segment_scores = jnp.asarray(segment_scores)
  segment_scores = segment_scores.astype(jnp.promote_types(segment_scores.dtype, jnp.float32))
  valid = jnp.asarray(valid).astype(bool)
  clip_index = jnp.asarray(clip_index)
  if segment_scores.ndim != 2 or clip_index.shape != segment_scores.shape[:1] \
      or valid.shape != clip_index.shape:
    raise ValueError(
        f"expected segment_scores [S, T], clip_index [S], valid [S]; got {segment_scores.shape}, "
        f"{clip_index.shape}, {valid.shape}")
  return _clip_average(segment_scores, clip_index, valid, num_clips=int(num_clips))


@functools.partial(jax.jit, static_argnames="num_clips")
def _clip_average(segment_scores, clip_index, valid, num_clips):
  """``clip_average`` on checked inputs: [S, T], [S], [S] -> ([num_clips, T], [num_clips])."""
  # Invalid segments add 0 to both sums and counts, wherever their (garbage) index points.
  sums = jax.ops.segment_sum(
      jnp.where(valid[:, None], segment_scores, 0.0), clip_index, num_segments=num_clips)
  counts = jax.ops.segment_sum(valid.astype(jnp.int32), clip_index, num_segments=num_clips)
  means = sums / jnp.maximum(counts, 1)[:, None].astype(sums.dtype)
  return jnp.where(counts[:, None] > 0, means, jnp.nan), counts


_F1_AVERAGES = ("samples", "micro", "macro")


def _safe_ratio(num: Array, den: Array) -> Array:
  """``num / den`` with 0 where ``den == 0`` (scikit-learn's ``zero_division`` default)."""
  return jnp.where(den > 0, num / jnp.maximum(den, 1).astype(num.dtype), 0.0)


@functools.partial(jax.jit, static_argnames=("average", "inclusive"))
def _precision_recall_f1(positive, scores, threshold, valid, average, inclusive):
  """``precision_recall_f1`` on checked inputs: bool [N, K], float [N, K], scalar, bool [N]."""
  predicted = (scores >= threshold if inclusive else scores > threshold) & valid[:, None]
  positive = positive & valid[:, None]
  # Counts per row ("samples"), per class ("macro") or in total ("micro").
  axis = {"samples": 1, "macro": 0, "micro": None}[average]
  tp = jnp.sum(predicted & positive, axis=axis).astype(jnp.float32)
  fp = jnp.sum(predicted & ~positive, axis=axis).astype(jnp.float32)
  fn = jnp.sum(~predicted & positive, axis=axis).astype(jnp.float32)
  precision = _safe_ratio(tp, tp + fp)
  recall = _safe_ratio(tp, tp + fn)
  f1 = _safe_ratio(2.0 * tp, 2.0 * tp + fp + fn)  # = 2PR / (P + R) where that is defined.
  if average == "samples":  # Mean over the valid rows only (padding rows are not samples).
    weight = valid.astype(jnp.float32) / jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
    precision, recall, f1 = (jnp.sum(v * weight) for v in (precision, recall, f1))
  elif average == "macro":  # Unweighted mean over all K classes, absent ones included.
    precision, recall, f1 = (jnp.mean(v) for v in (precision, recall, f1))
  return dict(precision=precision, recall=recall, f1=f1)


def precision_recall_f1(labels, scores, threshold: float, average: str = "samples",
                        valid=None, *, inclusive: bool = True) -> Dict[str, Array]:
  """Thresholded multi-label precision, recall and F1 (= scikit-learn's
  ``precision_recall_fscore_support(labels, scores >= threshold, average=average)``).

  The DCASE 2017 task 4 protocol of paper 6's journal code (papers.md section 7): sigmoid clip
  outputs thresholded at 0.1, F1 averaged over samples. Note the argument order (labels first,
  as in scikit-learn), unlike the ranking metrics above.

  Args:
    labels: {0, 1} or bool [N, K] (nonzero = positive).
    scores: float [N, K]; a class is predicted where ``scores >= threshold`` (a score exactly at
      the threshold counts as a prediction), or ``scores > threshold`` with ``inclusive=False``
      (the journal code of paper 6, ``tae-jun/sampleaudio/eval.py``, thresholds with ``>``).
    threshold: scalar decision threshold (may be traced).
    average: ``"samples"``: P/R/F1 of each row (over its K classes), then averaged over rows;
      ``"micro"``: from the counts summed over all rows and classes; ``"macro"``: per class
      (over the rows), then the unweighted mean over all K classes.
    valid: optional bool [N]; False rows (batch padding) are ignored entirely.
    inclusive: whether a score equal to ``threshold`` is a prediction (see ``scores``).

  Returns:
    dict of float32 scalars ``precision``, ``recall``, ``f1``. A 0/0 ratio counts as 0, as with
    scikit-learn's default ``zero_division="warn"`` (without the warning): a row (samples) or a
    class (macro) with no positive and no prediction scores P = R = F1 = 0 and still enters the
    mean. F1 of a row/class is ``2 TP / (2 TP + FP + FN)`` (the harmonic mean of its P and R);
    the averaged F1 is the mean of those F1s, not the harmonic mean of the averaged P and R.
  """
  if average not in _F1_AVERAGES:
    raise ValueError(f"average must be one of {_F1_AVERAGES}; got {average!r}")
  positive = jnp.asarray(labels) != 0
  scores = jnp.asarray(scores)
  if scores.ndim != 2 or positive.shape != scores.shape:
    raise ValueError(
        f"labels and scores must both be [N, K]; got {positive.shape} and {scores.shape}")
  n = scores.shape[0]
  valid = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid).astype(bool)
  if valid.shape != (n,):
    raise ValueError(f"valid must be [N] = ({n},); got {valid.shape}")
  return _precision_recall_f1(positive, scores, jnp.asarray(threshold, scores.dtype), valid,
                              average=average, inclusive=bool(inclusive))


# --- Host-side helpers of the evaluators (numpy) ------------------------------------------------
def unit_rows(x) -> np.ndarray:
  """Rows scaled to unit L2 norm (host numpy; zero rows stay zero): ``[N, D]`` -> float32."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def ridge_probe_scores(x: np.ndarray, targets: np.ndarray, l2: float = 1.0,
                       folds: int = 2) -> np.ndarray:
  """Linear-probe tag scores ``[N, T]`` of embeddings ``x`` ``[N, D]`` for multi-hot
  ``targets`` ``[N, T]`` by ridge regression with ``folds``-fold cross-validation (each clip
  scored by a probe fitted on the other folds; folds are interleaved clips). Auto-tagging from a
  learned embedding (papers 7 and 14; papers.md 8.6, 15.3). Each fold's scores are centred per
  tag: the folds' different label rates would otherwise shift the probes' intercepts and rank
  whole folds against each other (with a few dozen clips that bias pushes the ROC-AUC of an
  uninformative embedding below 0.5)."""
  x = np.concatenate([x, np.ones((x.shape[0], 1), x.dtype)], axis=1).astype(np.float64)
  y = np.asarray(targets, np.float64)
  scores = np.zeros_like(y)
  fold = np.arange(x.shape[0]) % folds
  for f in range(folds):
    train, test = fold != f, fold == f
    gram = x[train].T @ x[train] + l2 * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x[train].T @ y[train])
    fold_scores = x[test] @ weights
    scores[test] = fold_scores - fold_scores.mean(axis=0)
  return scores.astype(np.float32)
