"""Metric-learning and classification loss kernels in jnp (papers 4, 7, 9, 10, 13, 14).

Every kernel is vectorized (no Python loop over the batch), has static shapes and runs under
``jax.jit``. Every loss returns ``(loss scalar, stats dict of scalars)`` so a task can log the
stats next to the loss.

Labels (see ``label_match``): int ``[N]`` class ids, a negative id meaning "unknown" (never matches
anything, never a negative either); or multi-hot ``[N, C]`` (two rows match when they share at
least one positive entry; a row with no positive entry is unknown); or, with ``tolerance=``, float
``[N]`` values that match when within the tolerance (paper 13's tempo: within 5 BPM; NaN =
unknown). Negatives of an anchor are the known rows that do not match it.

Padding: ``valid`` (bool ``[B]``) marks real rows; a ``valid=False`` row is ignored entirely (as
anchor, positive and negative) and gets a zero gradient, whatever its (finite) values. Padding
must not be NaN/inf: the distance matmul would carry it into the gradients of real rows.

Distances (``pairwise_distances``): ``"squared_euclidean"``, ``"euclidean"`` or ``"cosine"``
(= 1 - cosine similarity). A cosine-similarity hinge ``max(0, m - s(a, p) + s(a, n))`` (papers 4,
7, 10) equals ``max(0, m + d(a, p) - d(a, n))`` with the cosine distance, so every triplet kernel
covers both forms.

Reductions: ``"mean"`` (alias ``"all"``) averages over every counted term (triplet, pair, row);
``"positive"`` over the terms with a positive loss only (Hermans et al.'s batch-all variant);
``"sum"`` sums them (the Keras ``K.sum`` of papers 4, 7, 10, whose learning rates were tuned
against summed losses, papers.md 1.5). With no counted term the loss is 0.

Global vs per-device mining: under ``jax.jit`` with the batch sharded over a mesh, these kernels
mine over the GLOBAL batch (XLA inserts the all-gathers). That is the default. ``per_shard``
wraps any kernel with ``jax.shard_map`` so each device mines in its own shard (LOCAL scope), and
the loss and stats are the mean of the per-shard values.
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

Array = jax.Array
METRICS = ("squared_euclidean", "euclidean", "cosine")
REDUCTIONS = ("mean", "all", "positive", "sum")
MINING = ("all", "batch_hard", "semi_hard")
_EPS = 1e-12


# --- Distances -----------------------------------------------------------------------------------
def l2_normalize(x, axis: int = -1, eps: float = _EPS) -> Array:
  """``x / max(||x||, eps)`` along ``axis`` (a zero vector stays zero, finite gradient)."""
  x = jnp.asarray(x)
  sq = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def safe_sqrt(x) -> Array:
  """``sqrt(max(x, 0))`` whose gradient is 0 (not inf/NaN) where ``x <= 0``."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _check_metric(metric: str) -> None:
  if metric not in METRICS:
    raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")


def pairwise_distances(a, b, metric: str = "squared_euclidean", *,
                       precision=jax.lax.Precision.HIGHEST) -> Array:
  """All distances between rows of ``a`` ``[N, D]`` and rows of ``b`` ``[M, D]`` -> ``[N, M]``.

  One matmul: ``|a|^2 + |b|^2 - 2 a.b`` clamped at 0 (``"squared_euclidean"``), its safe square
  root (``"euclidean"``; zero gradient at distance 0), or ``1 - cos(a, b)`` (``"cosine"``; zero
  rows count as cosine 0). Computed in float32 or wider.
  """
  _check_metric(metric)
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
  if metric == "cosine":
    return 1.0 - jnp.matmul(l2_normalize(a), l2_normalize(b).T, precision=precision)
  sq = (jnp.sum(jnp.square(a), -1)[:, None] + jnp.sum(jnp.square(b), -1)[None, :]
        - 2.0 * jnp.matmul(a, b.T, precision=precision))
  sq = jnp.maximum(sq, 0.0)
  return safe_sqrt(sq) if metric == "euclidean" else sq


def paired_distances(a, b, metric: str = "squared_euclidean") -> Array:
  """Distances between matching rows, ``a`` and ``b`` broadcastable ``[..., D]`` -> ``[...]``."""
  _check_metric(metric)
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
  if metric == "cosine":
    return 1.0 - jnp.sum(l2_normalize(a) * l2_normalize(b), -1)
  sq = jnp.sum(jnp.square(a - b), -1)
  return safe_sqrt(sq) if metric == "euclidean" else sq


def apply_mask(x, mask) -> Array:
  """Paper 13's conditional-similarity mask: ``x o m_s`` (Hadamard), ``mask`` ``[D]`` or
  broadcastable to ``x``; ``None`` keeps ``x``."""
  return x if mask is None else x * jnp.asarray(mask, jnp.result_type(x, jnp.float32))


# --- Labels --------------------------------------------------------------------------------------
def _xp(*arrays):
  """numpy for numpy inputs (host-side sampling), jnp as soon as one input is a jax array."""
  return jnp if any(isinstance(x, jax.Array) for x in arrays) else np


def label_known(labels, tolerance: Optional[float] = None):
  """bool ``[N]``: the row has a usable label (id >= 0; a positive multi-hot entry; a finite
  value when ``tolerance`` is given)."""
  xp = _xp(labels)
  labels = xp.asarray(labels)
  if labels.ndim == 2:
    return xp.any(labels > 0, axis=1)
  if labels.ndim != 1:
    raise ValueError(f"labels must be [N] or multi-hot [N, C]; got shape {labels.shape}")
  return xp.isfinite(labels) if tolerance is not None else labels >= 0


def label_match(labels_a, labels_b, *, tolerance: Optional[float] = None):
  """bool ``[N, M]``: row i of ``labels_a`` and row j of ``labels_b`` are similar.

  Int ``[N]``: equal ids, both >= 0 (negative = unknown, never matches). Multi-hot ``[N, C]``:
  at least one shared positive entry. With ``tolerance``: float values with
  ``|a - b| <= tolerance`` (NaN never matches). Works on numpy (host) and jnp (inside jit).
  """
  xp = _xp(labels_a, labels_b)
  a, b = xp.asarray(labels_a), xp.asarray(labels_b)
  if a.ndim != b.ndim or (a.ndim == 2 and a.shape[1] != b.shape[1]):
    raise ValueError(f"labels of different kinds: {a.shape} and {b.shape}")
  if a.ndim == 2:
    return xp.matmul((a > 0).astype(xp.float32), (b > 0).astype(xp.float32).T) > 0
  known = label_known(a, tolerance)[:, None] & label_known(b, tolerance)[None, :]
  if tolerance is not None:
    return known & (xp.abs(a[:, None] - b[None, :]) <= tolerance)
  return known & (a[:, None] == b[None, :])


def _valid_rows(valid, n: int) -> Array:
  if valid is None:
    return jnp.ones((n,), bool)
  valid = jnp.asarray(valid).astype(bool)
  if valid.shape != (n,):
    raise ValueError(f"valid must be [B] = ({n},); got {valid.shape}")
  return valid


def pair_masks(labels, valid=None, *, tolerance: Optional[float] = None) -> tuple[Array, Array]:
  """(positive, negative) bool ``[B, B]`` pair masks: positive = a different valid row with a
  matching label; negative = a valid known row whose label does not match."""
  labels = jnp.asarray(labels)
  n = labels.shape[0]
  known = label_known(labels, tolerance) & _valid_rows(valid, n)
  both = known[:, None] & known[None, :]
  match = label_match(labels, labels, tolerance=tolerance)
  return match & both & ~jnp.eye(n, dtype=bool), both & ~match


# --- Reductions and stats ------------------------------------------------------------------------
def _finish(total, count, active, reduction: str) -> tuple[Array, dict]:
  """Loss from the sum of the counted terms, their number and how many are positive."""
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
  count, active = jnp.asarray(count, jnp.float32), jnp.asarray(active, jnp.float32)
  if reduction == "sum":
    loss = total
  else:
    loss = total / jnp.maximum(active if reduction == "positive" else count, 1.0)
  return loss, {"num_terms": count, "active_fraction": active / jnp.maximum(count, 1.0)}


def _reduce(losses, weights, reduction: str) -> tuple[Array, dict]:
  """Reduces the counted (``weights``) terms of ``losses`` (same shape); masked terms may hold
  anything, even inf, and get no gradient."""
  losses = jnp.where(weights, losses, 0.0)
  return _finish(jnp.sum(losses), jnp.sum(weights), jnp.sum(weights & (losses > 0)), reduction)


def _masked_mean(x, mask) -> Array:
  return jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(jnp.sum(mask, dtype=jnp.float32), 1.0)


def _distance_stats(d_pos, pos_mask, d_neg, neg_mask) -> dict:
  return {"pos_dist": _masked_mean(d_pos, pos_mask), "neg_dist": _masked_mean(d_neg, neg_mask)}


# --- Triplet losses ------------------------------------------------------------------------------
def _sorted_negatives(d, neg) -> tuple[Array, Array]:
  """Each anchor's negative distances in increasing order ``[B, B]`` (the non-negatives are
  +inf, at the end) and its number of negatives ``[B]``. Differentiable in ``d``."""
  key = jnp.where(neg, d, jnp.inf)
  order = jnp.argsort(jax.lax.stop_gradient(key), axis=1)
  return jnp.take_along_axis(key, order, axis=1), jnp.sum(neg, axis=1)


def _count_below(sorted_rows, values, side: str) -> Array:
  """Per row r, how many entries of ``sorted_rows[r]`` are < (``side="left"``) or <=
  (``"right"``) each of ``values[r]`` (int ``[B, M]``, no gradient)."""
  search = jax.vmap(lambda row, v: jnp.searchsorted(row, v, side=side))
  return search(jax.lax.stop_gradient(sorted_rows), jax.lax.stop_gradient(values))


def _all_triplets(d, pos, neg, margin, reduction) -> tuple[Array, dict]:
  """Batch-all in O(B^2 log B) instead of a ``[B, B, B]`` tensor: for a positive pair (a, p), the
  negatives with a positive loss are those with ``d(a, n) < margin + d(a, p)``, a prefix of a's
  sorted negatives, so their summed loss is ``count * (margin + d(a, p)) - prefix_sum[count]``."""
  b = d.shape[0]
  sorted_neg, num_neg = _sorted_negatives(d, neg)
  in_range = jnp.arange(b)[None, :] < num_neg[:, None]
  prefix = jnp.cumsum(jnp.where(in_range, sorted_neg, 0.0), axis=1)
  prefix = jnp.concatenate([jnp.zeros((b, 1), prefix.dtype), prefix], axis=1)  # [B, B + 1]
  threshold = margin + d  # [a, p]
  count = _count_below(sorted_neg, threshold, side="left")
  sums = count * threshold - jnp.take_along_axis(prefix, count, axis=1)
  total = jnp.sum(jnp.where(pos, sums, 0.0))
  num_terms = jnp.sum(jnp.where(pos, num_neg[:, None], 0))
  return _finish(total, num_terms, jnp.sum(jnp.where(pos, count, 0)), reduction)


def triplet_loss(embeddings, labels, *, margin: float, mining: str = "all",
                 metric: str = "squared_euclidean", valid=None, reduction: str = "mean",
                 tolerance: Optional[float] = None, mask=None) -> tuple[Array, dict]:
  """Triplet margin loss mined inside the batch, ``max(0, margin + d(a, p) - d(a, n))``.

  Args:
    embeddings: float ``[B, D]`` (L2-normalise first for papers 13/14).
    labels: int ``[B]``, multi-hot ``[B, C]`` or (with ``tolerance``) float ``[B]``, see
      ``label_match``.
    margin: the margin (paper 13: 0.1 with Euclidean distance on unit vectors).
    mining: ``"all"``: every triplet (a, p, n) with a != p matching and n not matching a
      (summed exactly through each anchor's sorted negatives, O(B^2 log B), no ``[B, B, B]``
      tensor). ``"batch_hard"`` (Hermans et al. 2017):
      per anchor, its farthest positive and nearest negative; anchors without a positive or a
      negative are skipped. ``"semi_hard"`` (FaceNet, Schroff et al. 2015, as in TF-Addons'
      ``triplet_semihard_loss``): per positive pair (a, p), the nearest negative farther than
      ``d(a, p)``; when there is none, the farthest negative.
    metric: see ``pairwise_distances``. Paper 13 writes the Euclidean distance; whether squared
      is ambiguous (papers.md 14.3), so it is a choice: squared by default (smooth at 0).
    valid: optional bool ``[B]``, padding rows are ignored.
    reduction: ``"mean"``/``"all"`` over the mined triplets (the papers' choice: Keras averages
      the loss over the randomly sampled triplets of a batch, papers 13/14), ``"positive"`` over
      the triplets with a positive loss (Hermans et al.'s batch-all), or ``"sum"``.
    tolerance: for float labels (tempo within ``tolerance`` BPM).
    mask: optional ``[D]`` CSN mask (paper 13) applied to every embedding before distances.

  Returns:
    ``(loss, stats)``; stats: ``num_terms`` (triplets counted), ``active_fraction`` (of them
    with a positive loss), ``pos_dist`` / ``neg_dist`` (mean distance over all positive /
    negative pairs of the batch).
  """
  if mining not in MINING:
    raise ValueError(f"mining must be one of {MINING}; got {mining!r}")
  x = apply_mask(jnp.asarray(embeddings), mask)
  d = pairwise_distances(x, x, metric)
  pos, neg = pair_masks(labels, valid, tolerance=tolerance)
  has_neg = jnp.any(neg, axis=1)
  if mining == "all":
    loss, stats = _all_triplets(d, pos, neg, margin, reduction)
  elif mining == "batch_hard":
    weights = jnp.any(pos, axis=1) & has_neg
    hardest_pos = jnp.max(jnp.where(pos, d, -jnp.inf), axis=1)
    hardest_neg = jnp.min(jnp.where(neg, d, jnp.inf), axis=1)
    losses = jax.nn.relu(margin + jnp.where(weights, hardest_pos - hardest_neg, 0.0))
  else:  # semi_hard: per (a, p) the first sorted negative > d(a, p), else the farthest one
    sorted_neg, num_neg = _sorted_negatives(d, neg)
    first_outside = _count_below(sorted_neg, d, side="right")  # [a, p]
    last = jnp.maximum(num_neg - 1, 0)[:, None]
    nearest_outside = jnp.take_along_axis(sorted_neg, jnp.minimum(first_outside, last), axis=1)
    farthest = jnp.take_along_axis(sorted_neg, last, axis=1)
    d_an = jnp.where(first_outside < num_neg[:, None], nearest_outside, farthest)
    weights = pos & has_neg[:, None]
    losses = jax.nn.relu(margin + jnp.where(weights, d - d_an, 0.0))
  if mining != "all":
    loss, stats = _reduce(losses, weights, reduction)
  return loss, {**stats, **_distance_stats(d, pos, d, neg)}


def triplet_margin_loss(anchor, positive, negatives, *, margin: float, metric: str = "cosine",
                        valid=None, negative_valid=None, reduction: str = "mean",
                        form: str = "hinge", mask=None) -> tuple[Array, dict]:
  """Hinge over explicitly sampled triplets: ``mean_{b,k} max(0, margin + d(a_b, p_b) - d(a_b,
  n_bk))``.

  With ``metric="cosine"`` this is the cosine-similarity hinge ``max(0, margin - s(a, p) +
  s(a, n_k))`` of paper 4 (margin 0.4, 4 negatives), paper 7 (user anchor, margin 0.2, 20
  negatives) and paper 10 (tag anchor, margin 0.4, 1 negative); those papers SUM over the batch
  and negatives (``reduction="sum"``). With ``metric="euclidean"`` and ``mask`` it is paper 13's
  (masked) triplet loss (margin 0.1, mean over triplets).

  Args:
    anchor, positive: float ``[B, D]``.
    negatives: float ``[B, K, D]`` (or ``[B, D]`` for K = 1).
    margin: the margin.
    metric: see ``pairwise_distances``.
    valid: optional bool ``[B]`` (padding rows ignored).
    negative_valid: optional bool ``[B, K]`` (padded negatives ignored).
    reduction: ``"mean"``, ``"positive"`` or ``"sum"`` over the (b, k) terms.
    form: ``"hinge"``, or ``"bpr"``: ``1 - sigmoid(s(a, p) - s(a, n))`` (paper 10's alternative).
    mask: optional CSN mask ``[D]`` or ``[B, D]`` (paper 13's subspace of each triplet).

  Returns:
    ``(loss, stats)`` as ``triplet_loss``.
  """
  if form not in ("hinge", "bpr"):
    raise ValueError(f"form must be 'hinge' or 'bpr'; got {form!r}")
  negatives = jnp.asarray(negatives)
  if negatives.ndim == 2:
    negatives = negatives[:, None, :]
  b, k = negatives.shape[:2]
  mask = None if mask is None else jnp.asarray(mask)
  a, p = apply_mask(jnp.asarray(anchor), mask), apply_mask(jnp.asarray(positive), mask)
  n = apply_mask(negatives, mask[:, None, :] if mask is not None and mask.ndim == 2 else mask)
  d_ap = paired_distances(a, p, metric)  # [B]
  d_an = paired_distances(a[:, None, :], n, metric)  # [B, K]
  rows = _valid_rows(valid, b)
  weights = rows[:, None] & (jnp.ones((b, k), bool) if negative_valid is None
                             else jnp.asarray(negative_valid).astype(bool))
  gap = d_ap[:, None] - d_an
  losses = jax.nn.relu(margin + gap) if form == "hinge" else 1.0 - jax.nn.sigmoid(-gap)
  loss, stats = _reduce(losses, weights, reduction)
  return loss, {**stats, **_distance_stats(d_ap, rows, d_an, weights)}


def contrastive_loss(embeddings, labels, *, margin: float, metric: str = "euclidean",
                     valid=None, reduction: str = "mean",
                     tolerance: Optional[float] = None) -> tuple[Array, dict]:
  """Classic Siamese contrastive loss (Hadsell, Chopra, LeCun 2006) over all pairs i != j.

  ``L = 1/2 d^2`` for matching pairs and ``1/2 max(0, margin - d)^2`` for non-matching pairs,
  with ``d`` the ``metric`` distance (Euclidean in Hadsell et al.). Paper 4's Siamese network is
  NOT this loss: it is the cosine hinge with one positive and N sampled negatives, see
  ``triplet_margin_loss(..., metric="cosine")``.

  Returns ``(loss, stats)``; ``num_terms`` counts ordered pairs.
  """
  x = jnp.asarray(embeddings)
  d = pairwise_distances(x, x, metric)
  pos, neg = pair_masks(labels, valid, tolerance=tolerance)
  losses = 0.5 * jnp.where(pos, jnp.square(d), jnp.square(jax.nn.relu(margin - d)))
  loss, stats = _reduce(losses, pos | neg, reduction)
  return loss, {**stats, **_distance_stats(d, pos, d, neg)}


# --- Proxy and classification losses -------------------------------------------------------------
def class_positives(labels, num_classes: int) -> Array:
  """bool ``[B, C]``: int ids -> one-hot (negative id -> no positive); multi-hot -> ``> 0``."""
  labels = jnp.asarray(labels)
  if labels.ndim == 1:
    return jax.nn.one_hot(labels, num_classes, dtype=jnp.int32) > 0
  if labels.ndim != 2 or labels.shape[1] != num_classes:
    raise ValueError(f"labels must be [B] ids or [B, {num_classes}] multi-hot; "
                     f"got {labels.shape}")
  return labels > 0


def _set_softmax_loss(logits, positives, denominator, valid) -> tuple[Array, dict]:
  """Mean over usable rows of ``-log(sum_pos exp(l) / sum_denominator exp(l))``.

  A row is usable when valid, with at least one positive and a non-empty denominator. Stats:
  ``accuracy`` (the top logit is a positive) over usable rows, ``num_terms``.
  """
  def lse(mask):
    return jax.nn.logsumexp(jnp.where(mask, logits, -jnp.inf), axis=-1)

  rows = (_valid_rows(valid, logits.shape[0]) & jnp.any(positives, -1)
          & jnp.any(denominator, -1))
  safe_pos = jnp.where(rows[:, None], positives, True)
  safe_den = jnp.where(rows[:, None], denominator, True)
  losses = lse(safe_den) - lse(safe_pos)
  top = jnp.take_along_axis(positives, jnp.argmax(logits, -1)[:, None], -1)[:, 0]
  loss, _ = _reduce(losses, rows, "mean")
  count = jnp.sum(rows, dtype=jnp.float32)
  return loss, {"num_terms": count, "accuracy": _masked_mean(top.astype(jnp.float32), rows)}


def softmax_cross_entropy(logits, labels_int, valid=None) -> tuple[Array, dict]:
  """Softmax cross-entropy ``[B, C]`` logits vs int ``[B]`` ids (negative id = ignored row),
  mean over usable rows (paper 4's basic artist classifier). Stats: ``accuracy``."""
  logits = jnp.asarray(logits)
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  labels_int = jnp.asarray(labels_int)
  if labels_int.ndim != 1:
    raise ValueError(f"labels_int must be [B] class ids; got shape {labels_int.shape}")
  positives = class_positives(labels_int, logits.shape[-1])
  return _set_softmax_loss(logits, positives, jnp.ones_like(positives), valid)


def sigmoid_cross_entropy_rows(logits, multi_hot) -> Array:
  """Binary cross-entropy with logits per row: ``[B, C]`` logits vs {0, 1} ``[B, C]`` -> the
  mean over classes, float32 ``[B]`` (Keras ``binary_crossentropy`` of one example, papers.md
  1.4). The one sigmoid cross-entropy of the package (``sigmoid_cross_entropy`` averages it over
  rows); numerically stable: ``relu(l) - l * y + log1p(exp(-|l|))``, computed in float32 or
  wider whatever the logits' dtype."""
  logits = jnp.asarray(logits)
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  targets = jnp.asarray(multi_hot).astype(logits.dtype)
  per_class = jax.nn.relu(logits) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
  return jnp.mean(per_class, -1)


def sigmoid_cross_entropy(logits, multi_hot, valid=None) -> tuple[Array, dict]:
  """Binary cross-entropy with logits ``[B, C]`` vs {0, 1} ``[B, C]``: mean over classes, then
  over valid rows (Keras ``binary_crossentropy``, papers 1-3, 5, 6, 14; papers.md 1.4).
  Stats: ``num_terms`` (valid rows). Per row: ``sigmoid_cross_entropy_rows``."""
  rows = _valid_rows(valid, jnp.shape(logits)[0])
  loss, _ = _reduce(sigmoid_cross_entropy_rows(logits, multi_hot), rows, "mean")
  return loss, {"num_terms": jnp.sum(rows, dtype=jnp.float32)}


def cosine_logits(embeddings, proxies, *, temperature: float = 1.0) -> Array:
  """``cos(x_i, p_c) / temperature`` ``[B, C]`` for embeddings ``[B, D]`` and proxies ``[C, D]``."""
  return (1.0 - pairwise_distances(embeddings, proxies, "cosine")) / temperature


def proxy_nca_loss(embeddings, labels, proxies, *, valid=None,
                   temperature: float = 1.0) -> tuple[Array, dict]:
  """ProxyNCA (Movshovitz-Attias et al. 2017) with one learned proxy per class/tag.

  Embeddings and proxies are L2-normalised; ``l_c = -||x - p_c||^2 / temperature``; per row
  ``-log(sum_{c in P} exp(l_c) / sum_{c not in P} exp(l_c))`` where ``P`` is the row's positive
  set (one class for int labels, the row's tags for multi-hot: paper 14's multi-label proxies).
  The positives are NOT in the denominator (NCA), so the loss can be negative. Rows with no
  positive or no negative class are skipped.

  Args:
    embeddings: ``[B, D]``; labels: int ``[B]`` or multi-hot ``[B, C]``; proxies: ``[C, D]``.
    valid: optional bool ``[B]``.
    temperature: divides the squared distances (1 = the original; ProxyNCA++ uses 1/9).

  Returns ``(loss, stats)``; stats ``accuracy`` (nearest proxy is a positive), ``num_terms``.
  """
  proxies = jnp.asarray(proxies)
  d = pairwise_distances(l2_normalize(embeddings), l2_normalize(proxies), "squared_euclidean")
  positives = class_positives(labels, proxies.shape[0])
  return _set_softmax_loss(-d / temperature, positives, ~positives, valid)


def normalized_softmax_loss(embeddings, labels, proxies, *, temperature: float = 0.05,
                            valid=None, multi_label: str = "softmax") -> tuple[Array, dict]:
  """Normalised-softmax (proxy) classification on cosine logits ``cos(x, p_c) / temperature``.

  Zhai & Wu (2018) / paper 14's proxy model (b): L2-normalised embedding dotted with normalised
  class proxies. Int labels: softmax cross-entropy. Multi-hot labels, ``multi_label``:
  ``"softmax"``: ``-log`` of the softmax mass on the row's positive set (rows without a
  positive skipped); ``"sigmoid"``: binary cross-entropy on every cosine logit (paper 14's
  "multi-label classification loss" in its natural reading, papers.md 15.2). Paper 14's
  temperature is unknown: 0.05 follows Zhai & Wu.

  Returns ``(loss, stats)``.
  """
  proxies = jnp.asarray(proxies)
  logits = cosine_logits(embeddings, proxies, temperature=temperature)
  labels = jnp.asarray(labels)
  if labels.ndim == 2 and multi_label == "sigmoid":
    return sigmoid_cross_entropy(logits, labels, valid)
  if multi_label not in ("softmax", "sigmoid"):
    raise ValueError(f"multi_label must be 'softmax' or 'sigmoid'; got {multi_label!r}")
  positives = class_positives(labels, proxies.shape[0])
  return _set_softmax_loss(logits, positives, jnp.ones_like(positives), valid)


# --- Per-device (local) scope --------------------------------------------------------------------
def _is_array(x) -> bool:
  return isinstance(x, (jax.Array, np.ndarray))


def per_shard(loss_fn: Callable, mesh: Mesh, axis: Union[str, Sequence[str], None] = None, *,
              replicated: Sequence[str] = ("proxies",)) -> Callable:
  """Wraps a loss kernel so each device mines and reduces within its own batch shard.

  The returned function takes the kernel's arguments. Array arguments are split along their
  leading (batch) axis over ``axis`` (default: the mesh's batch axes among ``("data",
  "fsdp")``), except those named in ``replicated`` (e.g. ``proxies``), which every shard sees
  whole; other arguments (margins, strings, ``None``) are passed through as they are. The loss
  and every stat are the mean over shards (``lax.pmean``) of the per-shard values, so a shard
  with no counted term contributes 0. Without this wrapper the kernels mine over the GLOBAL batch
  (the default scope).
  """
  if axis is None:
    axis = tuple(a for a in ("data", "fsdp") if a in mesh.axis_names)
  signature = inspect.signature(loss_fn)

  def wrapped(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    names = [k for k, v in bound.arguments.items() if _is_array(v)]
    static = {k: v for k, v in bound.arguments.items() if not _is_array(v)}
    specs = tuple(P() if k in replicated else P(axis) for k in names)

    def local(*arrays):
      out = loss_fn(**static, **dict(zip(names, arrays)))
      return jax.lax.pmean(out, axis)

    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())(
        *[bound.arguments[k] for k in names])

  return wrapped
