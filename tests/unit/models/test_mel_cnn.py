"""Mel CNNs (papers 4 and 2): layer lists and parameter counts from shapes, tiny forward passes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.frontends import mel as M
from musicrep_jax.models.mel_cnn import (Conv2DBNAct, MelCNN2D, MelDCNN, MelFrameCNN,
                                         cnn2d_param_count, dcnn_param_count,
                                         frame_cnn_num_convs, max_pool_2d)
from musicrep_jax.models.sample_cnn import ConvBNReLU
from musicrep_jax.registry import MODELS


def _variables(model, batch=2):
  return jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                           jnp.zeros((batch, model.input_length, 1)), train=False))


def _init_and_apply(model, audio, **apply_kwargs):
  """One jitted program: init, an eval forward and a train forward (op-by-op Flax is slow)."""

  def run(audio):
    variables = model.init({"params": jax.random.key(0)}, audio, train=False)
    out = model.apply(variables, audio, train=False, **apply_kwargs)
    train_out, new_state = model.apply(variables, audio, train=True, mutable=["batch_stats"],
                                       rngs={"dropout": jax.random.key(4)})
    return variables, out, train_out, new_state

  return jax.jit(run)(audio)


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def test_registered_names():
  assert MODELS.get("mel_dcnn") is MelDCNN
  assert MODELS.get("mel_frame_cnn") is MelFrameCNN
  assert MODELS.get("mel_cnn2d") is MelCNN2D


def test_input_lengths_in_samples():
  assert MelDCNN().input_length == 66560  # 129 frames, center=False: 128 * 512 + 1024
  assert MelDCNN(center=True).input_length == 65536  # 129 frames, center=True: 128 * 512
  assert [MelFrameCNN(num_frames=f).input_length for f in (18, 27, 54)] == [9728, 14336, 28160]


def test_paper_4_dcnn_layer_list_and_parameter_count():
  model = MelDCNN(num_outputs=5000)
  variables = _variables(model)
  params = variables["params"]
  kernels = [params[f"ConvBNReLU_{i}"]["Conv_0"]["kernel"].shape for i in range(5)]
  assert kernels == [(4, 128, 128)] * 3 + [(2, 128, 128), (1, 128, 256)]  # papers.md 5.2
  assert params["Dense_0"]["kernel"].shape == (256, 5000)
  # [derived]: 3 x (4*128*128 + 128 + 256) + (2*128*128 + 128 + 256) + (128*256 + 256 + 512)
  # = 264,448, plus the 5,000-artist dense layer 256*5000 + 5000 = 1,285,000.
  assert _count(params) == 1_549_448 == dcnn_param_count(5000)
  assert _count(variables["batch_stats"]) == 1_536  # BN moving mean/var (Keras counts them too)


def test_dcnn_time_axis_follows_papers_table_and_forward_runs():
  model = MelDCNN(num_outputs=7, n_mels=16, channels=(8, 8, 8, 8, 12))
  audio = 0.1 * jax.random.normal(jax.random.key(1), (2, model.input_length, 1))
  variables, (out, state), train_out, new_state = _init_and_apply(
      model, audio, capture_intermediates=lambda mdl, _: isinstance(mdl, ConvBNReLU),
      mutable=["intermediates"])
  lengths = [v["__call__"][0].shape[1] for _, v in sorted(state["intermediates"].items())]
  assert lengths == [129, 32, 8, 2, 1]  # conv outputs before each pool: 129, 32, 8, 2, 1
  assert out["logits"].shape == (2, 7) and out["embedding"].shape == (2, 12)
  assert np.all(np.isfinite(np.asarray(out["logits"])))
  assert train_out["logits"].shape == (2, 7)
  assert jax.tree.structure(new_state["batch_stats"]) == \
      jax.tree.structure(variables["batch_stats"])


def test_crop_without_centre_padding_equals_the_papers_song_spectrogram_frames():
  """A model crop starting at ``t0 * hop - n_fft / 2`` sees frames t0..t0+128 of the song's
  ``center=True`` spectrogram (how the papers cut excerpts) exactly."""
  model = MelDCNN()
  song = 0.3 * jax.random.normal(jax.random.key(2), (1, 160_000))
  full = M.mel_spectrogram(song, center=True, mean=M.PAPER_MEL_MEAN, std=M.PAPER_MEL_STD)
  t0 = 40
  start = t0 * 512 - 512
  crop = song[:, start:start + model.input_length, None]
  ours = model.mel(crop)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(full[:, t0:t0 + 129]), atol=1e-5)


@pytest.mark.parametrize("frames,convs,expected", [
    # [derived]: per conv 3*128*128 + 128 + 256 = 49,536; dense 128*50 + 50 = 6,450.
    (18, 3, 155_058), (27, 3, 155_058), (54, 4, 204_594)])
def test_paper_2_frame_cnn_layers_and_parameter_counts(frames, convs, expected):
  model = MelFrameCNN(num_frames=frames, num_outputs=50)
  assert frame_cnn_num_convs(frames) == convs
  params = _variables(model)["params"]
  assert len([k for k in params if k.startswith("ConvBNReLU")]) == convs
  assert params["ConvBNReLU_0"]["Conv_0"]["kernel"].shape == (3, 128, 128)
  assert _count(params) == expected


@pytest.mark.parametrize("frames", [18, 27, 54])
def test_frame_cnn_output_shapes_at_tiny_width(frames):
  model = _tiny_frame_cnn(frames)
  variables = _variables(model, batch=3)
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((3, model.input_length, 1))),
                       variables)
  channels = model.layer_channels()
  assert (out["logits"].shape, out["embedding"].shape, out["multi_level"].shape) == \
      ((3, 5), (3, channels[-1]), (3, sum(channels)))


def test_frame_cnn_forward_at_tiny_width():
  model = _tiny_frame_cnn(54)
  audio = 0.1 * jax.random.normal(jax.random.key(3), (3, model.input_length, 1))
  _, out, train_out, _ = _init_and_apply(model, audio)
  channels = model.layer_channels()
  np.testing.assert_array_equal(out["multi_level"][:, -channels[-1]:], out["embedding"])
  assert np.all(np.isfinite(np.asarray(out["logits"])))
  assert np.all(np.asarray(out["embedding"]) >= 0)  # max over time of a ReLU output
  assert train_out["logits"].shape == (3, 5)


def _tiny_frame_cnn(frames):
  convs = frame_cnn_num_convs(frames)
  return MelFrameCNN(num_frames=frames, num_outputs=5, n_mels=16,
                     channels=tuple(range(4, 4 + 2 * convs, 2)), hidden_units=6)


def test_wrong_input_length_is_a_clear_error():
  model = MelFrameCNN(num_frames=18, n_mels=8, channels=(4, 4, 4))
  with pytest.raises(ValueError, match=r"expects audio \[batch, 9728, 1\]"):
    model.init({"params": jax.random.key(0)}, jnp.zeros((1, 9000, 1)), train=False)


def test_choi_fcn4_layer_list_and_parameter_count():
  """The 2-D CNN baseline at Choi et al.'s FCN-4 size: 96 x 1366 input, 3x3 convs of 128, 384,
  768, 2048 channels whose pools bring the map to exactly 1 x 1."""
  model = MelCNN2D(num_outputs=50)
  assert model.input_length == 349_440  # 1365 hops of 256 at 12 kHz, center=True.
  variables = _variables(model)
  params = variables["params"]
  kernels = [params[f"Conv2DBNAct_{i}"]["Conv_0"]["kernel"].shape for i in range(4)]
  assert kernels == [(3, 3, 1, 128), (3, 3, 128, 384), (3, 3, 384, 768), (3, 3, 768, 2048)]
  assert params["Dense_0"]["kernel"].shape == (2048, 50)
  # [derived]: convs 1,280 + 442,752 + 2,654,976 + 14,157,824; BN 2 x 3,328 + input BN 2;
  # dense 102,450.
  assert _count(params) == 17_365_940 == cnn2d_param_count(50)
  audio = jax.ShapeDtypeStruct((2, model.input_length, 1), jnp.float32)
  _, state = jax.eval_shape(lambda v, a: model.apply(
      v, a, capture_intermediates=lambda mdl, _: isinstance(mdl, Conv2DBNAct),
      mutable=["intermediates"]), variables, audio)
  maps = [v["__call__"][0].shape[1:3] for _, v in sorted(state["intermediates"].items())]
  assert maps == [(1366, 96), (341, 48), (68, 12), (8, 4)]  # Before each pool; then 1 x 1.


def test_max_pool_2d_matches_flax_max_pool():
  x = jax.random.normal(jax.random.key(5), (2, 13, 10, 3))
  np.testing.assert_array_equal(np.asarray(max_pool_2d(x, 4, 2)),
                                np.asarray(nn.max_pool(x, (4, 2), strides=(4, 2))))


def test_cnn2d_forward_at_tiny_width():
  model = MelCNN2D(num_outputs=4, num_frames=32, n_mels=16, sample_rate=16000,
                   channels=(4, 6), pools_mel_time=((4, 4), (4, 8)))
  audio = 0.1 * jax.random.normal(jax.random.key(6), (3, model.input_length, 1))
  variables, out, train_out, new_state = _init_and_apply(model, audio)
  assert out["logits"].shape == (3, 4) and out["embedding"].shape == (3, 6)
  assert np.all(np.isfinite(np.asarray(out["logits"])))
  assert train_out["logits"].shape == (3, 4)
  assert jax.tree.structure(new_state["batch_stats"]) == \
      jax.tree.structure(variables["batch_stats"])
  short = MelCNN2D(num_frames=16, n_mels=16, sample_rate=16000, channels=(4,),
                   pools_mel_time=((4, 32),))
  with pytest.raises(ValueError, match="too small for the pools"):
    jax.eval_shape(lambda: short.init({"params": jax.random.key(0)},
                                      jnp.zeros((1, short.input_length, 1))))
