"""Mixed precision in every registered model (training/precision.py): with ``dtype=bfloat16``
the convolutions compute in bfloat16, while parameters, BatchNorm statistics, the outputs and the
gradient are float32, and the outputs stay close to the float32 model's."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import musicrep_jax.models  # noqa: F401  (registers the models)
from musicrep_jax.registry import MODELS

_MEL = dict(sample_rate=8000, n_fft=256, hop_length=128, n_mels=8)
_SAMPLE_CNN = dict(m=3, n=3, channels=(4, 4, 4, 8, 8))
# Tiny constructor kwargs and extra positional inputs (after the audio) of every registered
# model; a new model needs an entry (test_every_registered_model_has_a_tiny_case).
TINY = {
    "sample_cnn": (dict(num_outputs=3, **_SAMPLE_CNN), ()),
    "resemul": (dict(num_outputs=3, block="rese2", n=3, channels=(4, 4, 8, 8)), ()),
    "sample_level_fixed_input": (dict(num_outputs=3, block="rese2", n=3, channels=(4, 4, 8, 8),
                                      input_samples=81), ()),
    "mel_dcnn": (dict(num_outputs=3, num_frames=16, channels=(4, 4, 4, 4, 6),
                      pool_sizes=(2, 2, 2, 2, 1), dropout_rate=0.5, **_MEL), ()),
    "mel_frame_cnn": (dict(num_outputs=3, num_frames=18, channels=(4, 6, 8), hidden_units=5,
                           **_MEL), ()),
    "inception": (dict(num_outputs=3, num_frames=16, stem_features=8, num_blocks=1,
                       stride_branches=(8, 8, 8), normal_branches=(8, 8, 8, 8, 8, 8),
                       embed_features=8, **_MEL), ()),
    "mel_cnn2d": (dict(num_outputs=3, num_frames=16, channels=(3, 5),
                       pools_mel_time=((2, 4), (4, 4)), **_MEL), ()),
    "dcue": (dict(num_users=5, num_frames=16, channels=(4, 4, 4, 4, 4),
                  pool_sizes=(2, 2, 1, 1, 1), dim=6, user_hidden=4, multi=True, batch_norm=True,
                  **_MEL), (jnp.array([0, 4]),)),
    "zero_shot": (dict(num_frames=16, channels=(4, 4, 4, 4, 6), pool_sizes=(2, 2, 2, 2, 1),
                       **_MEL), (jnp.ones((3, 5)),)),
    "embedding_net": (dict(backbone="sample_cnn", backbone_kwargs=_SAMPLE_CNN, embedding_dim=6,
                           num_subspaces=2, head="dense", num_outputs=3), ()),
}


def test_every_registered_model_has_a_tiny_case():
  assert sorted(TINY) == sorted(MODELS.names())


def _float_leaves(tree):
  return [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]


def _build(name, dtype):
  kwargs, extra = TINY[name]
  model = MODELS.get(name)(**kwargs, dtype=dtype)
  audio = 0.1 * jax.random.normal(jax.random.key(0), (2, model.input_length, 1))
  return model, (audio, *extra)


def _layer_recorder(calls):
  """An interceptor appending ``(module type, output dtype, module)`` of every Conv, Dense and
  BatchNorm call to ``calls`` (at trace time)."""

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and isinstance(
        context.module, (nn.Conv, nn.Dense, nn.BatchNorm)):
      calls.append((type(context.module).__name__, out.dtype, context.module))
    return out

  return interceptor


@pytest.mark.parametrize("name", sorted(TINY))
def test_bfloat16_compute_keeps_params_statistics_outputs_and_gradients_float32(name):
  """Traced only (``jax.eval_shape``, nothing compiled): the dtypes of one training step."""
  model, inputs = _build(name, jnp.bfloat16)
  variables = jax.eval_shape(lambda key: model.init({"params": key}, *inputs, train=False),
                             jax.random.key(2))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables["params"]))
  calls = []

  def loss(params, batch_stats):
    """A float32 scalar of every output of one training-mode pass (dropout on)."""
    with nn.intercept_methods(_layer_recorder(calls)):
      out, updates = model.apply({"params": params, "batch_stats": batch_stats}, *inputs,
                                 train=True, mutable=["batch_stats"],
                                 rngs={"dropout": jax.random.key(1)})
    return sum(jnp.mean(jnp.square(x)) for x in _float_leaves(out)), (out, updates)

  (value, (outputs, updates)), grads = jax.eval_shape(
      jax.value_and_grad(loss, has_aux=True), variables["params"],
      variables.get("batch_stats", {}))
  convs = [c for c in calls if c[0] == "Conv"]  # The first may take float32 audio or mels.
  assert convs and all(c[2].dtype == c[1] == jnp.bfloat16 for c in convs), [c[:2] for c in convs]
  for kind, _, module in calls:
    if kind == "BatchNorm":  # Statistics and normalisation in float32 (Flax casts afterwards).
      assert module.force_float32_reductions and module.param_dtype == jnp.float32
  for stats in jax.tree.leaves(updates.get("batch_stats", {})):
    assert stats.dtype == jnp.float32
  assert all(x.dtype == jnp.float32 for x in _float_leaves(outputs)), jax.tree.map(
      lambda x: x.dtype, outputs)
  assert value.dtype == jnp.float32
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", ["sample_cnn"])
def test_bfloat16_outputs_are_close_to_float32(name):
  """Same variables, eval mode: the bfloat16 model differs from the float32 one by rounding
  only (8-bit mantissas through a few layers)."""
  model32, inputs = _build(name, jnp.float32)
  model16, _ = _build(name, jnp.bfloat16)
  variables = jax.jit(lambda key: model32.init({"params": key}, *inputs, train=False))(
      jax.random.key(2))
  out32, out16 = jax.jit(lambda v: [_float_leaves(m.apply(v, *inputs, train=False))
                                    for m in (model32, model16)])(variables)
  for a, b in zip(out32, out16):
    assert float(jnp.linalg.norm(a - b)) <= 0.05 * float(jnp.linalg.norm(a)) + 1e-6, (name, a, b)
