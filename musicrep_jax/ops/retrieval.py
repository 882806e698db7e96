"""Embedding evaluation: example-based retrieval metrics and triplet accuracy (papers 10, 13, 14).

* ``retrieval_metrics``: rank a database by distance to each query; relevance = the labels match
  (``losses.label_match``: the same class id, or at least one shared tag for multi-hot labels).
  Reports precision@k, Recall@K in paper 14's sense (deep metric learning, Song et al. 2016: the
  fraction of queries with at least one relevant item in the top K, also called hit@k in paper
  10), classic IR recall@k (relevant retrieved / all relevant), binary-relevance nDCG@k and mAP.
  Every mean is over the queries that have at least one relevant item in the database
  (``num_queries``); a query without any cannot be scored.
* ``triplet_accuracy`` and ``sample_triplets``: paper 13's triplet prediction, 1 if d(a, p) <
  d(a, n) else 0, averaged; per dimension (genre, mood, instrument, tempo/era) with triplets
  sampled deterministically from that dimension's labels, on the whole embedding or on a
  sub-space (``mask``).

Ranking ties (equal distances) are broken by database index (a stable sort), so the values equal
scikit-learn's whenever distances are distinct. Distances come from ``losses.pairwise_distances``
(jitted); the ranking runs in numpy on the host, because XLA's CPU sort is about 100x slower than
numpy's on these shapes.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.ops.losses import (apply_mask, label_known, label_match, paired_distances,
                                 pairwise_distances)

_SUMMED = ("map", "precision", "recall", "ir_recall", "ndcg")


_distances = jax.jit(pairwise_distances, static_argnames=("metric",))


def ranking_metric_sums(distances, relevant, usable_rows, ks) -> dict:
  """Per-query ranking metrics summed over one block of queries (numpy float64; callers divide
  by ``num_queries``, so blocks add up): AP and, per k, precision, recall (hit), IR recall and
  nDCG; plus the number of usable queries. ``distances`` and
  ``relevant`` are ``[q, N]``; ``usable_rows`` bool ``[q]`` is False on padding rows. Ranking is
  numpy's stable argsort (XLA's CPU sort is ~100x slower on these shapes)."""
  n = distances.shape[1]
  order = np.argsort(distances, axis=1, kind="stable")
  hits = np.take_along_axis(relevant, order, axis=1).astype(np.float64)  # [q, N] by rank
  num_rel = hits.sum(axis=1)
  usable = usable_rows & (num_rel > 0)
  cum = np.cumsum(hits, axis=1)
  ranks = np.arange(1, n + 1, dtype=np.float64)
  ap = (hits * cum / ranks).sum(axis=1) / np.maximum(num_rel, 1.0)
  discounts = 1.0 / np.log2(ranks + 1.0)
  dcg_cum = np.cumsum(hits * discounts, axis=1)
  ideal_cum = np.cumsum(discounts)
  sums = {"map": ap[usable].sum(), "num_queries": float(usable.sum())}
  for k in ks:
    kk = min(k, n) - 1
    top = cum[:, kk]
    ideal = ideal_cum[np.minimum(num_rel, kk + 1).astype(np.int64) - 1]
    per_query = {"precision": top / k, "recall": (top > 0).astype(np.float64),
                 "ir_recall": top / np.maximum(num_rel, 1.0),
                 "ndcg": dcg_cum[:, kk] / ideal}
    for name, value in per_query.items():
      sums[f"{name}@{k}"] = value[usable].sum()
  return sums


def retrieval_metrics(query, database, query_labels, db_labels, *, ks: Sequence[int] = (1, 5, 10),
                      exclude_self: bool = False, metric: str = "cosine",
                      tolerance: Optional[float] = None, block_size: int = 256) -> dict:
  """Example-based retrieval: rank ``database`` ``[N, D]`` for each ``query`` ``[Q, D]``.

  Args:
    query, database: embeddings.
    query_labels, db_labels: int ``[Q]``/``[N]`` (negative = unknown) or multi-hot
      ``[Q, C]``/``[N, C]``; relevance as ``losses.label_match``.
    ks: cut-offs (paper 14: 1, 2, 4, 8; paper 10: 1, 5, 10).
    exclude_self: the query set IS the database (Q = N, same order): each query's own row is
      left out of its ranking (leave-one-out retrieval, paper 14).
    metric: ``"cosine"``, ``"euclidean"`` or ``"squared_euclidean"``.
    tolerance: float labels match within it (see ``label_match``).
    block_size: queries per block: distances by the jitted jnp kernel, ranking by numpy on the
      host (memory ``block_size x N``).

  Returns:
    ``{"map", "precision@k", "recall@k", "ir_recall@k", "ndcg@k" for k in ks, "num_queries"}``,
    floats; ``recall@k`` is paper 14's Recall@K (hit rate), ``ir_recall@k`` the IR one. NaN
    when no query has a relevant item.
  """
  query, database = np.asarray(query, np.float32), np.asarray(database, np.float32)
  query_labels, db_labels = np.asarray(query_labels), np.asarray(db_labels)
  q, n = query.shape[0], database.shape[0]
  if exclude_self and q != n:
    raise ValueError(f"exclude_self needs the query set to be the database; got Q={q}, N={n}")
  if query_labels.shape[0] != q or db_labels.shape[0] != n:
    raise ValueError("labels must have one row per query / database item")
  ks = tuple(int(k) for k in ks)
  if not ks or min(ks) < 1:
    raise ValueError(f"ks must be positive cut-offs; got {ks}")
  block = max(1, min(block_size, q))
  pad = -q % block  # the last block is padded so the distance kernel compiles once
  query_p = np.concatenate([query, np.repeat(query[:1], pad, axis=0)]) if pad else query
  db = jnp.asarray(database)
  totals = None
  for start in range(0, q, block):
    rows = np.arange(start, start + block)
    real = rows < q
    d = np.asarray(_distances(jnp.asarray(query_p[rows]), db, metric=metric))
    relevant = label_match(query_labels[np.minimum(rows, q - 1)], db_labels, tolerance=tolerance)
    if exclude_self:
      is_self = rows[:, None] == np.arange(n)[None, :]
      d, relevant = np.where(is_self, np.inf, d), relevant & ~is_self
    sums = ranking_metric_sums(d, relevant, real, ks)
    totals = sums if totals is None else {k: totals[k] + sums[k] for k in totals}
  count = float(totals.pop("num_queries"))
  out = {k: (float(v) / count if count else float("nan")) for k, v in totals.items()}
  out["num_queries"] = int(count)
  return out


def triplet_accuracy(embeddings, triplets, *, metric: str = "euclidean", mask=None) -> float:
  """Fraction of triplets (anchor, positive, negative) with ``d(a, p) < d(a, n)`` (strict; a
  tie counts 0), paper 13 section 3.3.

  Args:
    embeddings: ``[N, D]`` (song-level embeddings for category triplets in paper 13).
    triplets: int ``[T, 3]`` row indices.
    metric: see ``losses.pairwise_distances`` (Euclidean in paper 13).
    mask: optional ``[D]`` sub-space mask ("sub-dimensions": only the triplet's dimension).
  """
  triplets = np.asarray(triplets)
  if triplets.ndim != 2 or triplets.shape[1] != 3:
    raise ValueError(f"triplets must be [T, 3] (anchor, positive, negative); got {triplets.shape}")
  if triplets.shape[0] == 0:
    return float("nan")
  x = apply_mask(jnp.asarray(embeddings, jnp.float32), mask)
  a, p, n = (x[triplets[:, i]] for i in range(3))
  correct = paired_distances(a, p, metric) < paired_distances(a, n, metric)
  return float(jnp.mean(correct.astype(jnp.float32)))


def sample_triplets(labels, num: int, seed: int, *, tolerance: Optional[float] = None,
                    valid=None, block_rows: int = 1 << 22) -> np.ndarray:
  """``num`` evaluation triplets ``[num, 3]`` (anchor, positive, negative), deterministic in
  ``seed``.

  The anchor is drawn uniformly (with replacement) from the rows that have at least one positive
  (another row whose label matches, ``losses.label_match``) and one negative (a known row that
  does not match); the positive and the negative uniformly from the anchor's positives and
  negatives. Pass one dimension's labels at a time (paper 13: genre / mood / instrument tags as
  multi-hot, tempo as float BPM with ``tolerance=5``). Unknown rows (negative id, no tag, NaN) and
  ``valid=False`` rows are never used. Cost O(N^2 + num * N) label comparisons in blocks of about
  ``block_rows`` entries (host numpy).

  Raises:
    ValueError: when no row has both a positive and a negative.
  """
  labels = np.asarray(labels)
  n = labels.shape[0]
  known = label_known(labels, tolerance)
  if valid is not None:
    known = known & np.asarray(valid, bool)
  if labels.ndim == 1 and tolerance is None and np.issubdtype(labels.dtype, np.integer):
    return _sample_id_triplets(labels, known, num, seed)
  rows_per_block = max(1, block_rows // max(n, 1))

  def masks(rows):
    match = label_match(labels[rows], labels, tolerance=tolerance) & known[None, :]
    negative = known[None, :] & ~match & known[rows][:, None]
    match[np.arange(len(rows)), rows] = False
    return match & known[rows][:, None], negative

  eligible = np.zeros(n, bool)
  for start in range(0, n, rows_per_block):
    rows = np.arange(start, min(start + rows_per_block, n))
    pos, neg = masks(rows)
    eligible[rows] = pos.any(1) & neg.any(1)
  candidates = np.flatnonzero(eligible)
  if candidates.size == 0:
    raise ValueError("no row has both a matching and a non-matching row; cannot sample triplets")
  rng = np.random.default_rng(seed)
  anchors = rng.choice(candidates, size=num)
  picks = rng.random((num, 2))
  out = np.empty((num, 3), np.int64)
  out[:, 0] = anchors
  for start in range(0, num, rows_per_block):
    s = slice(start, start + rows_per_block)
    for column, mask in enumerate(masks(anchors[s]), start=1):
      cum = np.cumsum(mask, axis=1)
      k = np.floor(picks[s, column - 1] * cum[:, -1]).astype(np.int64)
      out[s, column] = np.argmax(cum > k[:, None], axis=1)
  return out


def _sample_id_triplets(labels: np.ndarray, known: np.ndarray, num: int, seed: int) -> np.ndarray:
  """``sample_triplets`` for int ids ``[N]`` without the ``[N, N]`` comparison: rows sorted by
  id, so a row's positives are the other rows of its id's run and its negatives every usable
  row outside the run. ``known`` bool ``[N]``: the usable rows."""
  rows = np.flatnonzero(known)
  ids = labels[rows]
  order = np.argsort(ids, kind="stable")
  rows, ids = rows[order], ids[order]  # Usable rows grouped by id.
  _, first, inverse, count = np.unique(ids, return_index=True, return_inverse=True,
                                       return_counts=True)
  start, size = first[inverse], count[inverse]  # Per sorted row: its run.
  eligible = (size >= 2) & (size < len(rows))
  if not eligible.any():
    raise ValueError("no row has both a matching and a non-matching row; cannot sample triplets")
  rng = np.random.default_rng(seed)
  anchors = rng.choice(np.flatnonzero(eligible), size=num)
  picks = rng.random((num, 2))
  a_start, a_size = start[anchors], size[anchors]
  # Positive: one of the run's other a_size - 1 rows (skip the anchor's own position).
  k = np.floor(picks[:, 0] * (a_size - 1)).astype(np.int64)
  pos = a_start + k + (a_start + k >= anchors)
  # Negative: one of the len(rows) - a_size rows outside the run (skip the run).
  k = np.floor(picks[:, 1] * (len(rows) - a_size)).astype(np.int64)
  neg = k + np.where(k >= a_start, a_size, 0)
  return np.stack([rows[anchors], rows[pos], rows[neg]], axis=1).astype(np.int64)
