"""SampleCNN (paper 1): layer list, parameter count and shapes, from shapes alone at full size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.models.sample_cnn import SampleCNN, input_length, paper_channels
from musicrep_jax.registry import MODELS


def _param_shapes(model, length):
  variables = jax.eval_shape(
      lambda: model.init({"params": jax.random.key(0)}, jnp.zeros((2, length, 1)), train=False))
  return variables


def test_paper_3_9_model_has_the_papers_parameter_count():
  model = SampleCNN(num_outputs=50, m=3, n=9)
  assert model.input_length == 59049
  variables = _param_shapes(model, 59049)
  count = sum(x.size for x in jax.tree.leaves(variables["params"]))
  assert count == 1_869_874  # papers.md 2.3 [derived]


def test_paper_3_9_layer_list_matches_the_trained_json():
  model = SampleCNN(num_outputs=50, m=3, n=9)
  params = _param_shapes(model, 59049)["params"]
  kernels = [params[f"ConvBNReLU_{i}"]["Conv_0"]["kernel"].shape for i in range(11)]
  assert kernels == [(3, 1, 128), (3, 128, 128), (3, 128, 128), (3, 128, 256)] + \
      [(3, 256, 256)] * 5 + [(3, 256, 512), (1, 512, 512)]
  assert params["Dense_0"]["kernel"].shape == (512, 50)


def test_time_axis_shrinks_to_one_and_outputs_have_the_stated_shapes():
  model = SampleCNN(num_outputs=5, m=3, n=4, channels=(4, 4, 4, 8, 8, 8))
  audio = jax.random.normal(jax.random.key(1), (3, input_length(3, 4), 1))
  variables = model.init({"params": jax.random.key(0)}, audio, train=False)
  out = model.apply(variables, audio, train=False)
  assert out["logits"].shape == (3, 5)
  assert out["embedding"].shape == (3, 8)
  assert np.all(np.isfinite(np.asarray(out["logits"])))


@pytest.mark.parametrize("m,n,first_filter,expected", [
    (2, 13, None, 16384), (3, 4, 729, 59049), (5, 5, None, 15625), (4, 6, None, 16384)])
def test_sweep_variants_build_with_paper_input_lengths(m, n, first_filter, expected):
  # papers.md 2.6: e.g. 8192 frames 2^13 at 16,384 samples; the frame-level 3^4 model, filter 729.
  model = SampleCNN(num_outputs=50, m=m, n=n, first_filter=first_filter)
  assert model.input_length == expected
  variables = _param_shapes(model, expected)
  assert variables["params"]["Dense_0"]["kernel"].shape == (paper_channels(n)[-1], 50)


def test_wrong_input_length_is_a_clear_error():
  model = SampleCNN(num_outputs=5, m=3, n=3, channels=(4,) * 5)
  with pytest.raises(ValueError, match=r"expects audio \[batch, 81, 1\]"):
    model.init({"params": jax.random.key(0)}, jnp.zeros((1, 80, 1)), train=False)


def test_registered_by_name():
  assert MODELS.get("sample_cnn") is SampleCNN


def test_max_pool_time_equals_flax_max_pool_in_value_and_gradient():
  """The reshape+max pooling (fast gradient on CPU) is a drop-in for nn.max_pool 'valid'."""
  import flax.linen as nn

  from musicrep_jax.models.sample_cnn import max_pool_time

  x = jax.random.normal(jax.random.key(3), (2, 29, 5))  # 29 = 9 * 3 + 2: the floor drops 2
  reference = lambda v: nn.max_pool(v, window_shape=(3,), strides=(3,), padding="VALID")
  np.testing.assert_array_equal(max_pool_time(x, 3), reference(x))
  weights = jax.random.normal(jax.random.key(4), (2, 9, 5))
  grad = jax.grad(lambda v: jnp.sum(max_pool_time(v, 3) * weights))(x)
  grad_ref = jax.grad(lambda v: jnp.sum(reference(v) * weights))(x)
  np.testing.assert_allclose(grad, grad_ref, rtol=0, atol=0)  # no ties in random normals
