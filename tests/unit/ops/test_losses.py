"""The loss kernels of musicrep_jax/losses.py against the per-sample numpy references of
bench/loss_bench.py: values, gradients (finite differences of the float64 reference), unknown
labels, multi-label masks, padding rows. (Global vs per-device mining on 8 fake devices:
tests/e2e/test_sharded_losses.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.bench import loss_bench as ref
from musicrep_jax.ops import losses

B, D, C = 10, 5, 6


def _data(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((B, D)).astype(np.float32)
  ids = rng.integers(-1, 3, B)  # some unknown (-1) labels
  ids[:4] = [0, 0, 1, 1]  # at least two positive pairs
  tags = (rng.random((B, C)) < 0.3).astype(np.float32)
  tags[-1] = 0  # a row with no tag: unknown
  valid = np.ones(B, bool)
  valid[[2, 7]] = False
  return rng, x, ids, tags, valid


def _assert_grad_matches_reference(kernel, reference, x, seed=0, eps=1e-5):
  """Directional derivatives of the jnp kernel (jax.grad) equal central finite differences of
  the float64 numpy reference along random directions."""
  grad = np.asarray(jax.grad(lambda v: kernel(v)[0])(jnp.asarray(x)), np.float64)
  assert np.all(np.isfinite(grad))
  rng = np.random.default_rng(seed)
  x64 = np.asarray(x, np.float64)
  for _ in range(2):
    v = rng.standard_normal(x.shape)
    fd = (reference(x64 + eps * v) - reference(x64 - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.sum(grad * v), fd, rtol=2e-3, atol=2e-4)


# --- Distances and labels ------------------------------------------------------------------------
@pytest.mark.parametrize("metric", losses.METRICS)
def test_pairwise_and_paired_distances_match_numpy(metric):
  rng = np.random.default_rng(1)
  a, b = rng.standard_normal((7, D)), rng.standard_normal((4, D))
  expected = np.stack([ref.ref_distance(a[i][None], b, metric) for i in range(7)])
  np.testing.assert_allclose(losses.pairwise_distances(a, b, metric), expected, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(losses.paired_distances(a[:4], b, metric),
                             ref.ref_distance(a[:4], b, metric), rtol=1e-5, atol=1e-5)


def test_euclidean_distance_gradient_is_finite_at_zero():
  x = jnp.asarray(np.random.default_rng(2).standard_normal((3, D)), jnp.float32)
  x = x.at[1].set(x[0])  # rows 0 and 1 identical: distance 0
  g = jax.grad(lambda v: jnp.sum(losses.pairwise_distances(v, v, "euclidean")))(x)
  g_paired = jax.grad(lambda v: jnp.sum(losses.paired_distances(v[0], v[1], "euclidean")))(x)
  assert np.all(np.isfinite(g)) and np.all(np.isfinite(g_paired))
  np.testing.assert_array_equal(g_paired, 0.0)


def test_label_match_int_multi_hot_and_tolerance():
  ids = np.array([0, 1, 0, -1, -1])
  expected = np.array([[ref.ref_match(ids, i)[j] for j in range(5)] for i in range(5)])
  np.testing.assert_array_equal(losses.label_match(ids, ids), expected)
  assert not losses.label_match(ids, ids)[3, 3]  # unknown never matches, not even itself
  np.testing.assert_array_equal(losses.label_match(jnp.asarray(ids), jnp.asarray(ids)), expected)
  tags = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
  np.testing.assert_array_equal(
      losses.label_match(tags, tags),
      [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
  bpm = np.array([100.0, 104.0, 106.0, np.nan])
  np.testing.assert_array_equal(
      losses.label_match(bpm, bpm, tolerance=5.0),
      [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])


# --- In-batch triplet mining ---------------------------------------------------------------------
@pytest.mark.parametrize("mining", losses.MINING)
@pytest.mark.parametrize("metric, reduction", [("squared_euclidean", "mean"),
                                               ("euclidean", "positive"), ("cosine", "sum")])
def test_triplet_loss_matches_per_anchor_reference(mining, metric, reduction):
  _, x, ids, tags, valid = _data()
  kw = dict(margin=0.5, mining=mining, metric=metric, reduction=reduction)
  for labels in (ids, tags):
    got, stats = jax.jit(lambda v: losses.triplet_loss(v, labels, valid=valid, **kw))(x)
    expected = ref.ref_triplet_loss(x, labels, valid=valid, **kw)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert stats["num_terms"] > 0 and 0 <= stats["active_fraction"] <= 1
  _assert_grad_matches_reference(
      lambda v: losses.triplet_loss(v, ids, valid=valid, **kw),
      lambda v: ref.ref_triplet_loss(v, ids, valid=valid, **kw), x)


def test_triplet_loss_all_reduction_alias_tolerance_labels_and_mask():
  rng, x, *_ = _data(3)
  bpm = rng.uniform(90, 110, B)
  mask = np.array([1, 1, 0, 0, 1], np.float32)
  kw = dict(margin=0.2, tolerance=5.0, mask=mask)
  got, _ = losses.triplet_loss(x, bpm, reduction="all", **kw)
  np.testing.assert_allclose(got, ref.ref_triplet_loss(x, bpm, **kw), rtol=1e-4)
  got_mean, _ = losses.triplet_loss(x, bpm, reduction="mean", **kw)
  assert float(got) == float(got_mean)


def test_triplet_loss_stats_count_triplets():
  x = np.eye(4, dtype=np.float32)
  labels = np.array([0, 0, 1, 1])
  _, stats = losses.triplet_loss(x, labels, margin=0.1)
  # 4 anchors x 1 positive x 2 negatives
  assert stats["num_terms"] == 8
  np.testing.assert_allclose(stats["pos_dist"], 2.0)
  np.testing.assert_allclose(stats["neg_dist"], 2.0)
  np.testing.assert_allclose(stats["active_fraction"], 1.0)


@pytest.mark.parametrize("mining", losses.MINING)
def test_padding_rows_are_ignored_and_get_no_gradient(mining):
  rng, x, ids, _, valid = _data(4)
  kernel = lambda v: losses.triplet_loss(v, ids, margin=0.3, mining=mining, valid=valid)[0]
  moved = x.copy()
  moved[~valid] = rng.standard_normal((int((~valid).sum()), D)) * 10
  np.testing.assert_allclose(kernel(x), kernel(moved), rtol=1e-6)
  np.testing.assert_array_equal(jax.grad(kernel)(jnp.asarray(x))[~valid], 0.0)


def test_no_triplet_gives_zero_loss_and_finite_zero_gradient():
  x = jnp.asarray(np.random.default_rng(5).standard_normal((4, D)), jnp.float32)
  no_positive, no_negative, unknown = [0, 1, 2, 3], [0, 0, 0, 0], [-1, -1, 0, 1]
  for mining in losses.MINING:
    fn = jax.jit(jax.value_and_grad(lambda v, labels: losses.triplet_loss(
        v, labels, margin=0.2, mining=mining, metric="euclidean")[0]))
    for labels in (no_positive, no_negative, unknown):
      value, grad = fn(x, jnp.asarray(labels))
      assert float(value) == 0.0
      np.testing.assert_array_equal(grad, 0.0)


def test_bad_options_raise():
  x, labels = np.zeros((2, 3), np.float32), np.array([0, 1])
  with pytest.raises(ValueError, match="mining"):
    losses.triplet_loss(x, labels, margin=0.1, mining="hard")
  with pytest.raises(ValueError, match="metric"):
    losses.pairwise_distances(x, x, "manhattan")
  with pytest.raises(ValueError, match="reduction"):
    losses.triplet_loss(x, labels, margin=0.1, reduction="max")
  with pytest.raises(ValueError, match="valid"):
    losses.triplet_loss(x, labels, margin=0.1, valid=np.ones(3, bool))


# --- Sampled triplets, pairs, proxies, classification -------------------------------------------
@pytest.mark.parametrize("metric, form, reduction", [("cosine", "hinge", "sum"),
                                                     ("euclidean", "hinge", "mean"),
                                                     ("cosine", "bpr", "mean")])
def test_triplet_margin_loss_matches_reference(metric, form, reduction):
  rng, x, _, _, valid = _data(6)
  pos, neg = rng.standard_normal((B, D)), rng.standard_normal((B, 3, D))
  kw = dict(margin=0.4, metric=metric, form=form, reduction=reduction)
  got, stats = losses.triplet_margin_loss(x, pos, neg, valid=valid, **kw)
  np.testing.assert_allclose(got, ref.ref_triplet_margin_loss(x, pos, neg, valid=valid, **kw),
                             rtol=1e-5, atol=1e-6)
  assert stats["num_terms"] == 3 * valid.sum()
  _assert_grad_matches_reference(
      lambda v: losses.triplet_margin_loss(v, pos, neg, valid=valid, **kw),
      lambda v: ref.ref_triplet_margin_loss(v, pos, neg, valid=valid, **kw), x)


def test_triplet_margin_loss_one_negative_and_csn_mask():
  rng, x, *_ = _data(7)
  pos, neg = rng.standard_normal((B, D)), rng.standard_normal((B, D))
  mask = np.array([0, 0, 1, 1, 1], np.float32)
  got, _ = losses.triplet_margin_loss(x, pos, neg, margin=0.1, metric="euclidean", mask=mask)
  np.testing.assert_allclose(
      got, ref.ref_triplet_margin_loss(x * mask, pos * mask, neg[:, None] * mask, margin=0.1,
                                       metric="euclidean"), rtol=1e-5)
  per_row = np.tile(mask, (B, 1))
  got_rows, _ = losses.triplet_margin_loss(x, pos, neg, margin=0.1, metric="euclidean",
                                           mask=per_row)
  np.testing.assert_allclose(got_rows, got, rtol=1e-6)


def test_contrastive_loss_matches_reference():
  _, x, ids, tags, valid = _data(8)
  for labels in (ids, tags):
    got, _ = losses.contrastive_loss(x, labels, margin=3.0, valid=valid)
    np.testing.assert_allclose(got, ref.ref_contrastive_loss(x, labels, margin=3.0, valid=valid),
                               rtol=1e-4)
  _assert_grad_matches_reference(
      lambda v: losses.contrastive_loss(v, ids, margin=3.0, valid=valid),
      lambda v: ref.ref_contrastive_loss(v, ids, margin=3.0, valid=valid), x)


def test_proxy_losses_match_reference_single_and_multi_label():
  rng, x, _, tags, valid = _data(9)
  ids = rng.integers(-1, C, B)
  proxies = rng.standard_normal((C, D)).astype(np.float32)
  cases = [(losses.proxy_nca_loss, ref.ref_proxy_nca_loss, dict(temperature=0.5)),
           (losses.normalized_softmax_loss, ref.ref_normalized_softmax_loss,
            dict(temperature=0.1)),
           (losses.normalized_softmax_loss, ref.ref_normalized_softmax_loss,
            dict(temperature=0.1, multi_label="sigmoid"))]
  for kernel, reference, kw in cases:
    for labels in (ids, tags):
      got, _ = kernel(x, labels, proxies, valid=valid, **kw)
      np.testing.assert_allclose(got, reference(x, labels, proxies, valid=valid, **kw),
                                 rtol=1e-4, atol=1e-5)
    _assert_grad_matches_reference(lambda v: kernel(v, tags, proxies, valid=valid, **kw),
                                   lambda v: reference(v, tags, proxies, valid=valid, **kw), x)
  # Gradient with respect to the proxies too.
  _assert_grad_matches_reference(
      lambda p: losses.proxy_nca_loss(x, tags, p, valid=valid),
      lambda p: ref.ref_proxy_nca_loss(x, tags, p, valid=valid), proxies)


def test_classification_losses_match_reference():
  rng, _, _, tags, valid = _data(10)
  logits = (rng.standard_normal((B, C)) * 3).astype(np.float32)
  ids = rng.integers(-1, C, B)
  got, stats = losses.softmax_cross_entropy(logits, ids, valid=valid)
  np.testing.assert_allclose(got, ref.ref_softmax_cross_entropy(logits, ids, valid), rtol=1e-5)
  usable = valid & (ids >= 0)
  np.testing.assert_allclose(stats["accuracy"],
                             np.mean(np.argmax(logits, 1)[usable] == ids[usable]))
  got, _ = losses.sigmoid_cross_entropy(logits, tags, valid=valid)
  np.testing.assert_allclose(got, ref.ref_sigmoid_cross_entropy(logits, tags, valid), rtol=1e-5)
  _assert_grad_matches_reference(lambda v: losses.softmax_cross_entropy(v, ids, valid),
                                 lambda v: ref.ref_softmax_cross_entropy(v, ids, valid), logits)
  _assert_grad_matches_reference(lambda v: losses.sigmoid_cross_entropy(v, tags, valid),
                                 lambda v: ref.ref_sigmoid_cross_entropy(v, tags, valid), logits)


def test_sigmoid_cross_entropy_rows_is_optax_bce_per_row_in_float32():
  """The one sigmoid cross-entropy: per row the mean over classes of optax's BCE (large logits
  included), and bfloat16 logits are computed in float32."""
  import optax

  rng, _, _, tags, valid = _data(11)
  logits = (rng.standard_normal((B, C)) * 30).astype(np.float32)
  rows = losses.sigmoid_cross_entropy_rows(logits, tags)
  expected = np.mean(np.asarray(optax.sigmoid_binary_cross_entropy(logits, tags)), axis=-1)
  assert rows.shape == (B,) and rows.dtype == jnp.float32
  np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-6)
  loss, _ = losses.sigmoid_cross_entropy(logits, tags, valid=valid)
  np.testing.assert_allclose(loss, expected[valid].mean(), rtol=1e-5)
  half = losses.sigmoid_cross_entropy_rows(jnp.asarray(logits, jnp.bfloat16), tags)
  assert half.dtype == jnp.float32


@pytest.mark.parametrize("reduction", ["mean", "positive"])
def test_triplet_mining_matches_reference_on_a_p_by_k_batch(reduction):
  """P x K batches (8 classes x 8) as the samplers build them, unit-norm embeddings."""
  rng = np.random.default_rng(11)
  x = rng.standard_normal((64, 16)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  ids = np.repeat(np.arange(8), 8)
  for mining in losses.MINING:
    kw = dict(margin=0.2, mining=mining, metric="euclidean", reduction=reduction)
    got, stats = jax.jit(lambda v: losses.triplet_loss(v, ids, **kw))(x)
    np.testing.assert_allclose(got, ref.ref_triplet_loss(x, ids, **kw), rtol=1e-4, err_msg=mining)
  assert stats["num_terms"] == 64 * 7  # semi-hard: one term per positive pair
