"""Papers 13/14's Inception backbone (models/inception.py, papers.md 14.2): the paper model's
layer shapes and parameter count from shapes (traced, nothing compiled), a tiny forward pass, and
the paper 13/14 configs building it as the embedding_net backbone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax import config_loading
from musicrep_jax.configs import metric_learning as metric_configs
from musicrep_jax.models.embedding import EmbeddingNet
from musicrep_jax.models.inception import (InceptionNet, inception_param_count,
                                           normal_module_params, stride_module_params)
from musicrep_jax.registry import MODELS

TINY = dict(num_frames=38, sample_rate=8000, n_fft=256, hop_length=128, n_mels=24,
            stem_features=8, num_blocks=2, stride_branches=(8, 8, 8),
            normal_branches=(8, 8, 8, 8, 8, 8), embed_features=16)


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def _shapes(model, batch=2):
  """``(variables, intermediates)`` as shapes: init and an eval forward traced only."""
  audio = jnp.zeros((batch, model.input_length, 1))

  def run():
    variables = model.init({"params": jax.random.key(0)}, audio)
    _, state = model.apply(variables, audio, capture_intermediates=True)
    return variables, state["intermediates"]

  return jax.eval_shape(run)


def test_paper_model_layer_shapes_and_parameter_count():
  model = InceptionNet()
  assert MODELS.get("inception") is InceptionNet
  assert model.input_length == 66_560  # 129 frames of hop 512 + n_fft 1024 (center=False)
  variables, inter = _shapes(model)
  params = variables["params"]
  kernel = lambda *path: params[path[0]][path[1]]["Conv_0"]["kernel"].shape  # noqa: E731
  assert params["stem"]["Conv_0"]["kernel"].shape == (5, 5, 1, 64)
  assert [kernel("stride_0", b) for b in ("b1x1", "dbl_1", "dbl_2", "dbl_3")] == [
      (1, 1, 64, 48), (1, 1, 64, 64), (3, 3, 64, 96), (3, 3, 96, 96)]
  assert [kernel("normal_0", b) for b in ("b1x1", "b5x5_1", "b5x5_2", "dbl_1", "dbl_2", "dbl_3",
                                          "pool_proj")] == [
      (1, 1, 208, 64), (1, 1, 208, 48), (5, 5, 48, 64), (1, 1, 208, 64), (3, 3, 64, 96),
      (3, 3, 96, 96), (1, 1, 208, 32)]
  assert kernel("stride_5", "b1x1") == (1, 1, 256, 48)
  assert kernel("normal_5", "b1x1") == (1, 1, 400, 64)
  assert params["embed"]["kernel"].shape == (1, 1, 256, 256)
  assert "BatchNorm_0" not in params["embed"] and params["head"]["kernel"].shape == (256, 50)
  # [batch, time, mel, channels] through the network (papers.md 14.2's table).
  out = lambda name: inter[name]["__call__"][0].shape  # noqa: E731
  assert out("stem") == (2, 129, 128, 64)  # before the 2x2 max-pool to 64 x 64
  assert [out(f"stride_{i}") for i in range(6)] == [
      (2, 32, 32, 208), (2, 16, 16, 400), (2, 8, 8, 400), (2, 4, 4, 400), (2, 2, 2, 400),
      (2, 1, 1, 400)]
  assert [out(f"normal_{i}") for i in range(6)] == [
      (2, 32, 32, 256), (2, 16, 16, 256), (2, 8, 8, 256), (2, 4, 4, 256), (2, 2, 2, 256),
      (2, 1, 1, 256)]
  assert inter["__call__"][0]["embedding"].shape == (2, 256)
  # [derived] in the module docstring: 2,810,880 in the backbone + 257 per output.
  assert stride_module_params(64) == 146_320 and normal_module_params(208) == 259_696
  assert stride_module_params(256) == 167_824 and normal_module_params(400) == 299_632
  backbone = _count({k: v for k, v in params.items() if k != "head"})
  assert backbone == 2_810_880 == 1_792 + 146_320 + 259_696 + 5 * (167_824 + 299_632) + 65_792
  assert _count(params) == 2_823_730 == inception_param_count(50)
  with_bn = _shapes(InceptionNet(num_outputs=7, input_batchnorm=True))[0]["params"]
  assert _count(with_bn) == 2_810_880 + 2 + 257 * 7 == inception_param_count(7,
                                                                              input_batchnorm=True)
  tiny = _count(_shapes(InceptionNet(num_outputs=3, **TINY))[0]["params"])
  assert tiny == inception_param_count(
      3, **{k: TINY[k] for k in ("stem_features", "num_blocks", "stride_branches",
                                 "normal_branches", "embed_features")})


def test_tiny_forward_unit_norm_embedding_and_training_statistics():
  """One block: 19 x 12 after the stem, 10 x 6 after the stride module."""
  model = InceptionNet(num_outputs=3, **dict(TINY, num_blocks=1))
  plain = model.clone(normalize=False)
  audio = 0.3 * jax.random.normal(jax.random.key(1), (4, model.input_length, 1))

  @jax.jit
  def run(audio):
    variables = model.init({"params": jax.random.key(0)}, audio)
    out = model.apply(variables, audio)
    raw = plain.apply(variables, audio)
    _, state = model.apply(variables, audio, train=True, mutable=["batch_stats"])
    return variables, out, raw, state

  variables, out, raw, state = run(audio)
  assert out["logits"].shape == (4, 3) and out["embedding"].shape == (4, 16)
  np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=-1), 1.0, rtol=1e-5)
  assert np.all(np.asarray(raw["embedding"]) >= 0)  # ReLU then average: the paper's vector
  np.testing.assert_allclose(out["embedding"], raw["embedding"] / np.linalg.norm(
      raw["embedding"], axis=-1, keepdims=True), rtol=1e-5, atol=1e-7)
  assert not np.allclose(np.linalg.norm(raw["embedding"], axis=-1), 1.0)
  # Different inputs give different embeddings; training mode moves the running statistics.
  assert np.abs(np.asarray(out["embedding"][0] - out["embedding"][1])).max() > 1e-4
  before = variables["batch_stats"]["normal_0"]["dbl_3"]["BatchNorm_0"]["mean"]
  after = state["batch_stats"]["normal_0"]["dbl_3"]["BatchNorm_0"]["mean"]
  assert np.abs(np.asarray(after - before)).max() > 0


def test_too_small_input_and_bad_widths_are_refused():
  with pytest.raises(ValueError, match="too small"):
    _shapes(InceptionNet(**dict(TINY, num_frames=1)))
  with pytest.raises(ValueError, match="stride_branches needs 3 widths"):
    _shapes(InceptionNet(**dict(TINY, stride_branches=(8, 8))))


@pytest.mark.parametrize("spec,dim,subspaces", [
    ("paper14:triplet,disentangled", 256, 4),
    ("paper14:classification_nonorm,plain", 256, 0),
    ("paper14:proxy,disentangled,runlocal", 64, 4),
])
def test_paper14_configs_build_the_inception_backbone(spec, dim, subspaces):
  """Papers 13/14 use the Inception network by default, its own output as the embedding."""
  config = config_loading.load_config_file(config_loading.resolve_config_spec(spec))
  kwargs = config_loading.constructor_kwargs(config.model.kwargs)
  assert kwargs["backbone"] == metric_configs.PAPER13_BACKBONE == "inception"
  assert kwargs["embedding_dim"] == 0
  net = EmbeddingNet(sample_rate=config.data.sample_rate, num_subspaces=subspaces,
                     **{k: v for k, v in kwargs.items() if k != "num_subspaces"})
  variables, inter = _shapes(net)
  out = inter["__call__"][0]
  assert out["embedding"].shape == (2, dim)
  assert "projection" not in variables["params"]
  if spec.startswith("paper14:classification_nonorm"):
    assert kwargs["backbone_kwargs"]["normalize"] is False  # the poster's "no L2" row
  if dim == 256:
    assert _count(variables["params"]["backbone"]) == inception_param_count(1)


def test_mel_dcnn_stays_an_option_and_tiny_cells_get_a_tiny_inception():
  dcnn = config_loading.load_config("paper14:triplet,plain,mel_dcnn")
  assert (dcnn.model.kwargs.backbone, dcnn.model.kwargs.embedding_dim) == ("mel_dcnn", 256)
  config = config_loading.load_config("paper14:classification_nonorm,plain,runlocal")
  metric_configs.metric_tiny(config)
  assert dict(config.model.kwargs.backbone_kwargs) == dict(metric_configs.TINY_INCEPTION,
                                                           normalize=False)
  with pytest.raises(Exception, match="backbones inception, mel_dcnn"):
    metric_configs.backbone_kwargs_for("resnet")
