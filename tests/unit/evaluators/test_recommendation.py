"""The recommendation evaluator (paper 7): per-user ranking metrics against a reference, and the
clip vectors of segment heads."""

import numpy as np
import pytest

from musicrep_jax.evaluators import recommendation


def test_ranking_metrics_match_a_per_user_reference():
  from sklearn.metrics import roc_auc_score

  rng = np.random.default_rng(0)
  num_users, num_items, ks = 7, 12, (3, 5)
  scores = rng.normal(size=(num_users, num_items)).round(1)  # rounding makes ties
  pos_u, pos_i = np.nonzero(rng.random((num_users, num_items)) < 0.3)
  exc_u, exc_i = np.nonzero(rng.random((num_users, num_items)) < 0.2)
  keep = ~np.isin(exc_u * 100 + exc_i, pos_u * 100 + pos_i)
  exc_u, exc_i = exc_u[keep], exc_i[keep]
  got = recommendation.ranking_metrics(lambda a, b: scores[a:b], num_users, num_items,
                                      (pos_u, pos_i), (exc_u, exc_i), ks, block_size=3)
  aucs, recall, ndcg = [], {k: [] for k in ks}, {k: [] for k in ks}
  for u in range(num_users):
    cand = np.ones(num_items, bool)
    cand[exc_i[exc_u == u]] = False
    rel = np.zeros(num_items, bool)
    rel[pos_i[pos_u == u]] = True
    if not rel.any():
      continue
    s, r = scores[u][cand], rel[cand]
    if (~r).any():
      aucs.append(roc_auc_score(r, s))
    order = np.argsort(-s, kind="stable")
    for k in ks:
      hits = r[order][:k]
      recall[k].append(hits.sum() / r.sum())
      ideal = sum(1 / np.log2(i + 2) for i in range(min(k, r.sum())))
      ndcg[k].append(sum(h / np.log2(i + 2) for i, h in enumerate(hits)) / ideal)
  assert got["users"] == len(recall[3])
  assert got["auc"] == pytest.approx(np.mean(aucs), abs=1e-6)
  for k in ks:
    # Ties at the cut go to the lower item index in both (top_k and a stable sort).
    assert got[f"recall@{k}"] == pytest.approx(np.mean(recall[k]), abs=1e-6)
    assert got[f"ndcg@{k}"] == pytest.approx(np.mean(ndcg[k]), abs=1e-6)


def test_clip_vectors_average_each_head_over_valid_segments():
  rng = np.random.default_rng(0)
  heads = (rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=(7, 2)).astype(np.float32))
  clip_index = np.array([0, 0, 2, 2, 2, 0, 1])
  valid = np.array([True, True, True, True, True, False, False])  # Clip 1: padding only.
  segments = {"item_heads": heads, "clip_index": clip_index, "segment_valid": valid,
              "clip_id": np.array([10, 10, 12, 12, 12, 99, 99])}
  unit, clip_ids, raw = recommendation.clip_vectors(segments, 3)
  np.testing.assert_array_equal(clip_ids, [10, 12])
  for h, head in enumerate(heads):
    means = np.stack([head[:2].mean(0), head[2:5].mean(0)])
    np.testing.assert_allclose(unit[h], means / np.linalg.norm(means, axis=1, keepdims=True),
                               rtol=1e-5)
  np.testing.assert_allclose(raw, np.stack([heads[0][:2].mean(0), heads[0][2:5].mean(0)]),
                             rtol=1e-6)
