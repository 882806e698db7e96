"""``optimizer.kernel_l2``: Keras' ``kernel_regularizer=l2(lambda)`` on convolution kernels only
(papers 4, 9, 10: L2 1e-5 on conv kernels; papers.md 5.2, 11.3), applied to the gradient as the
loss term ``lambda * ||W||^2`` would be."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from musicrep_jax.training import optimizers


class _Net(nn.Module):
  """A conv, a BatchNorm and a Dense head: the parameter kinds of the papers' models."""

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(4, (3,), name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, name="bn")(x)
    return nn.Dense(3, name="dense")(x.mean(axis=1))


def _opt(name, kernel_l2, **kw):
  return ml_collections.ConfigDict(dict(
      name=name, learning_rate=0.1, momentum=0.0, nesterov=False, schedule="constant", decay=0.0,
      stage_boundaries=(), stage_factor=0.2, warmup_steps=0, weight_decay=0.0, grad_clip_norm=0.0,
      kernel_l2=kernel_l2, **kw))


def _params():
  return _Net().init(jax.random.key(0), jnp.ones((2, 8, 5)))["params"]


def test_kernel_l2_touches_conv_kernels_only_by_twice_lambda_w():
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  tx = optimizers.make_optimizer(_opt("sgd", 1e-2), 10)
  updates, _ = tx.update(zeros, tx.init(params), params)
  # SGD without momentum: update = -lr * (2 * lambda * W) on the conv kernel, 0 elsewhere.
  np.testing.assert_allclose(updates["conv"]["kernel"], -0.1 * 2e-2 * params["conv"]["kernel"],
                             rtol=1e-6)
  for path, leaf in jax.tree_util.tree_leaves_with_path(updates):
    if path[0].key != "conv" or path[-1].key != "kernel":
      assert not np.asarray(leaf).any(), jax.tree_util.keystr(path)
  assert {p[-1].key for p, _ in jax.tree_util.tree_leaves_with_path(params)} >= {
      "kernel", "bias", "scale"}


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_kernel_l2_equals_keras_l2_in_the_loss(name):
  """Updates from gradients ``g`` with ``kernel_l2`` equal those of the plain optimizer on
  ``g + grad(lambda * ||W_conv||^2)``: L2 in the loss, as Keras, for Adam too."""
  params = _params()
  grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(p.size), p.shape), params)
  lam = 3e-3
  penalty = lambda p: lam * jnp.sum(p["conv"]["kernel"] ** 2)
  tx, plain = (optimizers.make_optimizer(_opt(name, l2), 10) for l2 in (lam, 0.0))
  state, plain_state = tx.init(params), plain.init(params)
  for _ in range(3):
    got, state = tx.update(grads, state, params)
    with_loss_term = jax.tree.map(jnp.add, grads, jax.grad(penalty)(params))
    want, plain_state = plain.update(with_loss_term, plain_state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), got, want)
    params = jax.tree.map(jnp.add, params, got)
