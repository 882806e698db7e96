"""Retrieval metrics against scikit-learn and naive loops; triplet accuracy and triplet sampling."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

from musicrep_jax.bench.loss_bench import ref_distance, ref_match
from musicrep_jax.ops import retrieval


def _naive_retrieval(query, database, query_labels, db_labels, ks, exclude_self, metric):
  """Per-query loops: ranking by distance, sklearn AP / nDCG, counts for P@k and recall."""
  all_labels = np.concatenate([query_labels, db_labels])
  q = len(query)
  sums, count = {}, 0
  for i in range(q):
    d = ref_distance(query[i][None], database, metric)
    relevant = ref_match(all_labels, i)[q:]
    keep = np.ones(len(database), bool)
    if exclude_self:
      keep[i] = False
    d, relevant = d[keep], relevant[keep]
    if not relevant.any():
      continue
    count += 1
    order = np.argsort(d, kind="stable")
    values = {"map": average_precision_score(relevant, -d)}
    for k in ks:
      top = relevant[order[:k]].sum()
      values[f"precision@{k}"] = top / k
      values[f"recall@{k}"] = float(top > 0)
      values[f"ir_recall@{k}"] = top / relevant.sum()
      values[f"ndcg@{k}"] = ndcg_score(relevant[None].astype(float), -d[None], k=k)
    for name, v in values.items():
      sums[name] = sums.get(name, 0.0) + v
  return {name: v / count for name, v in sums.items()}, count


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_single_label_leave_one_out_matches_sklearn(metric):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((50, 8))
  labels = rng.integers(-1, 5, 50)  # -1 = unknown: never relevant, scores nothing
  labels[:3] = 7  # class 7 has 3 members; class 9 has 1 member (no relevant item)
  labels[3] = 9
  ks = (1, 5, 10)
  got = retrieval.retrieval_metrics(x, x, labels, labels, ks=ks, exclude_self=True,
                                    metric=metric, block_size=16)
  expected, count = _naive_retrieval(x, x, labels, labels, ks, True, metric)
  assert got["num_queries"] == count == int(np.sum(labels >= 0) - 1)
  for name, value in expected.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_multi_label_queries_against_a_separate_database():
  rng = np.random.default_rng(1)
  query, database = rng.standard_normal((13, 6)), rng.standard_normal((40, 6))
  query_tags = (rng.random((13, 4)) < 0.3).astype(int)
  db_tags = (rng.random((40, 4)) < 0.3).astype(int)
  query_tags[0] = 0  # no tag: not scored
  ks = (1, 2, 4, 8)
  got = retrieval.retrieval_metrics(query, database, query_tags, db_tags, ks=ks,
                                    metric="cosine", block_size=5)
  expected, count = _naive_retrieval(query, database, query_tags, db_tags, ks, False, "cosine")
  assert got["num_queries"] == count and count < 13
  for name, value in expected.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_perfect_embedding_scores_one_and_bad_arguments_raise():
  labels = np.repeat(np.arange(4), 5)
  x = np.eye(4)[labels] + 0.01 * np.random.default_rng(2).standard_normal((20, 4))
  got = retrieval.retrieval_metrics(x, x, labels, labels, ks=(1, 4), exclude_self=True)
  for name in ("map", "precision@1", "precision@4", "recall@4", "ndcg@4", "ir_recall@4"):
    assert got[name] == pytest.approx(1.0), name
  with pytest.raises(ValueError, match="exclude_self"):
    retrieval.retrieval_metrics(x[:5], x, labels[:5], labels, exclude_self=True)
  with pytest.raises(ValueError, match="ks"):
    retrieval.retrieval_metrics(x, x, labels, labels, ks=(0,))


def test_triplet_accuracy_matches_loop_on_whole_space_and_subspace():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((30, 8))
  triplets = rng.integers(0, 30, (200, 3))
  mask = np.r_[np.ones(4), np.zeros(4)]
  for m, xs in ((None, x), (mask, x * mask)):
    expected = np.mean([np.linalg.norm(xs[a] - xs[p]) < np.linalg.norm(xs[a] - xs[n])
                        for a, p, n in triplets])
    assert retrieval.triplet_accuracy(x, triplets, mask=m) == pytest.approx(expected)
  # ties count as wrong (strict inequality)
  assert retrieval.triplet_accuracy(x, np.array([[0, 1, 1]])) == 0.0


@pytest.mark.parametrize("kind", ["ids", "tags", "tempo"])
def test_sample_triplets_are_valid_and_deterministic(kind):
  rng = np.random.default_rng(4)
  n = 60
  if kind == "ids":
    labels, tol = rng.integers(-1, 4, n), None
  elif kind == "tags":
    labels, tol = (rng.random((n, 5)) < 0.25).astype(int), None
  else:
    labels, tol = rng.uniform(60, 180, n), 5.0
    labels[:3] = np.nan
  valid = np.ones(n, bool)
  valid[-5:] = False
  t = retrieval.sample_triplets(labels, 300, seed=0, tolerance=tol, valid=valid, block_rows=500)
  assert t.shape == (300, 3)
  np.testing.assert_array_equal(t, retrieval.sample_triplets(labels, 300, seed=0, tolerance=tol,
                                                             valid=valid))
  assert not np.array_equal(t, retrieval.sample_triplets(labels, 300, seed=1, tolerance=tol,
                                                         valid=valid))
  usable = np.flatnonzero(valid)
  assert np.isin(t, usable).all()
  for a, p, neg in t:
    match = ref_match(labels, a, tol)
    assert a != p and match[p] and not match[neg]
  # Several different positives and negatives per anchor are drawn, not always the first one.
  assert len(np.unique(t[:, 1])) > 10 and len(np.unique(t[:, 2])) > 10


def test_sample_triplets_raises_when_impossible():
  with pytest.raises(ValueError, match="cannot sample"):
    retrieval.sample_triplets(np.array([0, 1, 2, -1]), 5, seed=0)
