"""Metric-learning systems (papers 4, 9, 13, 14): the embedding model's subspaces and the task's
losses. (Real training on the embedded corpus with held-out retrieval / triplet metrics:
tests/e2e/test_learning_runs.py.)"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import musicrep_jax.models  # noqa: F401  (registers models)
from musicrep_jax.configs import metric_learning as metric_configs
from musicrep_jax.models.embedding import EmbeddingNet, disjoint_masks, subspace_masks
from musicrep_jax.tasks.base import UnboundTaskError
from musicrep_jax.tasks.metric_learning import MetricLearningTask

TINY_BACKBONE = dict(metric_configs.TINY_DCNN)
GROUPS = ((0, 3), (1, 4, 5), (2,))
FAKE_SHARDS = types.SimpleNamespace(
    tag_names=("a", "b", "c", "d", "e", "f"), dataset_dir="/nonexistent",
    tag_groups={"g0": [0, 3], "g1": [1, 4, 5], "g2": [2]}, split_sizes={})


def test_disjoint_masks_partition_the_embedding():
  masks = disjoint_masks(4, 10)
  np.testing.assert_array_equal(masks.sum(0), np.ones(10))  # Every dimension exactly once.
  assert set(masks.sum(1)) == {2.0, 3.0}
  for row in masks:  # Contiguous blocks.
    ones = np.flatnonzero(row)
    np.testing.assert_array_equal(ones, np.arange(ones[0], ones[-1] + 1))
  assert subspace_masks({}, 4, 10).tolist() == masks.tolist()
  learned = subspace_masks({"mask_weights": np.array([[-1.0, 2.0]])}, 1, 2)
  np.testing.assert_array_equal(learned, [[0.0, 2.0]])


@pytest.mark.parametrize("head", ["dense", "proxy"])
def test_disentangled_head_reads_only_its_subspace(head):
  model = EmbeddingNet(backbone_kwargs=TINY_BACKBONE, sample_rate=8000, embedding_dim=9,
                       num_subspaces=3, head=head, disentangled=True, num_outputs=6,
                       head_groups=GROUPS)
  audio = jax.random.normal(jax.random.key(0), (2, model.input_length, 1)) * 0.1
  variables = jax.jit(model.init)(jax.random.key(1), audio)
  apply = jax.jit(lambda v: model.apply(v, audio)["logits"])
  base = apply(variables)
  for g, group in enumerate(GROUPS):
    outside = np.ones(9, bool)
    outside[3 * g:3 * g + 3] = False  # disjoint_masks(3, 9): blocks of 3.
    params = jax.tree.map(lambda x: x, variables["params"])
    kernel = params["projection"]["kernel"]
    params["projection"]["kernel"] = kernel.at[:, outside].add(1.0)
    logits = apply(dict(variables, params=params))
    others = [t for t in range(6) if t not in group]
    np.testing.assert_allclose(logits[:, list(group)], base[:, list(group)], atol=1e-5)
    assert np.abs(logits[:, others] - base[:, others]).max() > 1e-3


def _loss_grad(task, embedding, batch):
  outputs = {"embedding": embedding, "masks": jnp.asarray(disjoint_masks(3, 9))}
  return jax.jit(jax.grad(lambda e: task.loss(dict(outputs, embedding=e), batch)[0]))(embedding)


@pytest.mark.parametrize("disentangled", [False, True])
def test_triplet_blocks_train_their_subspace(disentangled):
  labels = ("tag:g0", "tag:g1", "tag:g2")
  task = MetricLearningTask(approach="triplet", disentangled=disentangled, labels=labels,
                            eval_labels=labels, classes_per_batch=2, samples_per_class=2,
                            track_weight=0.5, margin=0.5).bind(FAKE_SHARDS)
  rng = np.random.default_rng(0)
  n = 4 * len(task.blocks)
  tags = np.zeros((n, 6), np.float32)
  for block, columns in enumerate([[0, 3], [1, 4], [2, 2], None]):
    rows = slice(4 * block, 4 * block + 4)
    if columns is not None:  # Slot 0 has the first tag, slot 1 the second.
      tags[rows, columns[0]] = [1, 1, 0, 0]
      tags[rows, columns[1]] = np.maximum(tags[rows, columns[1]], [0, 0, 1, 1])
  batch = {"tags": jnp.asarray(tags), "track": jnp.asarray(np.repeat(np.arange(n // 2), 2))}
  grad = np.asarray(_loss_grad(task, jnp.asarray(rng.normal(size=(n, 9)), jnp.float32), batch))
  for block in range(2):  # g2 has one tag: no negatives, no gradient.
    rows = grad[4 * block:4 * block + 4]
    inside = np.zeros(9, bool)
    inside[3 * block:3 * block + 3] = True
    assert np.abs(rows[:, inside]).max() > 0
    assert (np.abs(rows[:, ~inside]).max() == 0) == disentangled
  assert np.abs(grad[12:]).max() > 0  # The track block sees the whole embedding.


def test_siamese_loss_matches_paper4_formula():
  task = MetricLearningTask(approach="triplet", labels=("artist",), eval_labels=("artist",),
                            classes_per_batch=3, samples_per_class=2, negatives=2, margin=0.4,
                            metric="cosine", reduction="sum", normalize=False).bind(FAKE_SHARDS)
  x = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
  batch = {"artist": jnp.asarray([7, 7, 3, 3, 9, 9])}
  loss, _ = jax.jit(task.loss)({"embedding": jnp.asarray(x)}, batch)
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  expected = 0.0
  for slot, k in np.ndindex(3, 2):
    a = unit[2 * slot + k]
    p = unit[2 * slot + (k + 1) % 2]
    for j in (1, 2):
      n = unit[2 * ((slot + j) % 3) + k]
      expected += max(0.0, 0.4 - a @ p + a @ n)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_bind_returns_a_new_task_with_the_tag_columns_and_head_groups():
  labels = ("tag:g0", "tag:g1")
  task = MetricLearningTask(approach="classification", disentangled=True, labels=labels,
                            eval_labels=labels + ("tag:g2",))
  bound = task.bind(FAKE_SHARDS)
  assert bound is not task and task.bound is None and bound == task
  assert {k: v.tolist() for k, v in bound.data.tag_columns.items()} == {
      "tag:g0": [0, 3], "tag:g1": [1, 4, 5], "tag:g2": [2]}
  kwargs = bound.model_kwargs()
  assert kwargs["num_outputs"] == 6 and kwargs["head_groups"] == ((0, 3), (1, 4, 5))
  assert set(vars(bound)) == {f.name for f in dataclasses.fields(bound)}  # No hidden state.
  batch = {"tags": jnp.zeros((2, 6)), "artist": jnp.zeros(2, jnp.int32)}
  with pytest.raises(UnboundTaskError, match="not bound"):
    task.loss({"embedding": jnp.zeros((2, 9)), "logits": jnp.zeros((2, 6))}, batch)
  with pytest.raises(UnboundTaskError):
    task.model_kwargs()
