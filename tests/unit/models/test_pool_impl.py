"""max_pool_time's formulations (reshape, window, auto; docs/benchmarks.md "Memory floor of
the train step"): the same values, and in SampleCNN and ReSE-2-multi the same outputs and
gradients as the reshape pool (float32, rtol 1e-5; random inputs have no exact ties); "auto",
the models' default, is the window program on TPU and the reshape one elsewhere."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.models.resemul import SampleCNNBlocks
from musicrep_jax.models.sample_cnn import POOL_IMPLS, SampleCNN, max_pool_time


def test_pool_formulations_agree_in_value_and_gradient():
  x = jax.random.normal(jax.random.key(0), (2, 10, 3))  # 10 = 3 windows of 3 + 1 dropped
  w = jax.random.normal(jax.random.key(1), (2, 3, 3))
  results = {impl: jax.value_and_grad(lambda x: jnp.sum(max_pool_time(x, 3, impl) * w))(x)
             for impl in POOL_IMPLS}
  assert set(results) == {"auto", "reshape", "window"}
  for impl, (value, grad) in results.items():
    np.testing.assert_allclose(value, results["reshape"][0], rtol=1e-6, err_msg=impl)
    np.testing.assert_array_equal(grad, results["reshape"][1], err_msg=impl)
  assert float(jnp.abs(results["reshape"][1][:, 9]).sum()) == 0.0  # the dropped frame
  with pytest.raises(ValueError, match="pool_impl"):
    max_pool_time(x, 3, "strided")


def step_outputs(model, audio, tags):
  variables = model.clone(pool_impl="reshape").init(jax.random.key(0), audio, train=False)

  def loss(params):
    out, stats = model.apply({**variables, "params": params}, audio, train=True,
                             rngs={"dropout": jax.random.key(3)}, mutable=["batch_stats"])
    z = out["logits"]
    bce = jnp.mean(jnp.maximum(z, 0) - z * tags + jnp.log1p(jnp.exp(-jnp.abs(z))))
    return bce, (out, stats)

  return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])


def test_sample_cnn_trains_the_same_with_the_window_pool():
  model = SampleCNN(num_outputs=5, m=3, n=1, channels=(4, 8, 8))
  audio = jax.random.normal(jax.random.key(1), (4, model.input_length, 1))
  tags = (jax.random.uniform(jax.random.key(2), (4, 5)) < 0.3).astype(jnp.float32)
  reference = step_outputs(model, audio, tags)
  other = step_outputs(model.clone(pool_impl="window"), audio, tags)
  for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(other)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(jax.tree.leaves(reference[1])[0]).sum()) > 0


def test_resemul_blocks_use_the_model_pool_impl():
  """Every ReSE-2 block pools with the model's formulation (the same max_pool_time as above)."""
  model = SampleCNNBlocks(num_outputs=5, block="rese2", n=2, channels=(4, 4, 8),
                          multi_level_blocks=2)
  audio = jnp.zeros((1, model.input_length, 1))
  jax.eval_shape(lambda a: model.clone(pool_impl="window").init(jax.random.key(0), a), audio)
  with pytest.raises(ValueError, match="pool_impl"):
    jax.eval_shape(lambda a: model.clone(pool_impl="strided").init(jax.random.key(0), a), audio)


def test_auto_pool_is_window_on_tpu_and_reshape_elsewhere():
  """The default ``pool_impl="auto"`` is chosen when the step is lowered: on CPU the compiled
  SampleCNN train step is the reshape one (same ops, bytes and numbers, so the CPU step time is
  unchanged); lowered for TPU it uses the window pool (select-and-scatter backward), for a GPU
  the reshape one (not measured on a GPU yet)."""
  model = SampleCNN(num_outputs=5, m=3, n=1, channels=(4, 8, 8))
  assert model.pool_impl == "auto"
  audio = jax.random.normal(jax.random.key(1), (4, model.input_length, 1))
  tags = (jax.random.uniform(jax.random.key(2), (4, 5)) < 0.3).astype(jnp.float32)
  auto, reshape = (step_outputs(model.clone(pool_impl=impl), audio, tags)
                   for impl in ("auto", "reshape"))
  for a, b in zip(jax.tree.leaves(auto), jax.tree.leaves(reshape)):
    np.testing.assert_array_equal(a, b)

  def lowered(impl, platform):
    variables = model.init(jax.random.key(0), audio, train=False)
    grad = jax.jit(jax.grad(lambda p: jnp.sum(model.clone(pool_impl=impl).apply(
        {**variables, "params": p}, audio, train=True, rngs={"dropout": jax.random.key(3)},
        mutable=["batch_stats"])[0]["logits"])))
    return grad.trace(variables["params"]).lower(lowering_platforms=(platform,))

  cpu = {impl: lowered(impl, "cpu").compile() for impl in ("auto", "reshape")}
  assert (cpu["auto"].cost_analysis()["bytes accessed"]
          == cpu["reshape"].cost_analysis()["bytes accessed"])
  assert "select-and-scatter" not in cpu["auto"].as_text()
  assert "select_and_scatter" in lowered("auto", "tpu").as_text()
  assert "select_and_scatter" not in lowered("auto", "cuda").as_text()
