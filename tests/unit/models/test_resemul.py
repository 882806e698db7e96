"""Paper 5 blocks and SampleCNNBlocks: parameter counts from shapes alone at full size, layer
structure, and small-width forward passes for every block with and without multi-level."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.models import resemul
from musicrep_jax.models.resemul import BLOCKS, SampleCNNBlocks, resemul_channels
from musicrep_jax.errors import UserError
from musicrep_jax.registry import MODELS

ALL_BLOCKS = ["basic", "se", "res1", "res2", "rese1", "rese2"]


def _shapes(model, length, batch=2):
  return jax.eval_shape(
      lambda: model.init({"params": jax.random.key(0)}, jnp.zeros((batch, length, 1)), train=False))


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("block,multi,expected", [
    # papers.md 6.2 [derived from the code]
    ("basic", False, 1_869_874), ("basic", True, 2_683_442),
    ("se", False, 23_929_138), ("se", True, 24_742_706),
    ("res2", False, 4_107_314), ("res2", True, 4_920_882),
    ("rese2", False, 26_166_578), ("rese2", True, 26_980_146),
    # Not in papers.md; derived by hand from the resemul.py docstring layer list: res1 = basic +
    # shortcuts (128*256+256+512) + (256*512+512+1024); rese1 = res1 + SE 22,059,264;
    # multi adds (1024^2+1024+2048+1024*50+50) - (512^2+512+1024+512*50+50) = 813,568.
    ("res1", False, 2_036_018), ("res1", True, 2_849_586),
    ("rese1", False, 24_095_282), ("rese1", True, 24_908_850),
])
def test_paper_parameter_counts(block, multi, expected):
  model = SampleCNNBlocks(num_outputs=50, block=block, multi_level=multi)
  assert model.input_length == 59049
  assert _count(_shapes(model, 59049)["params"]) == expected


def test_basic_no_multi_equals_the_smc2017_3_9_model_count():
  from musicrep_jax.models.sample_cnn import SampleCNN
  basic = _count(_shapes(SampleCNNBlocks(block="basic", multi_level=False), 59049)["params"])
  smc = _count(_shapes(SampleCNN(num_outputs=50, m=3, n=9), 59049)["params"])
  assert basic == smc  # papers.md 6.2: a 1x1 conv on a length-1 sequence is a dense layer


def test_channel_rule_and_rese2_layer_structure():
  assert resemul_channels(9) == (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)
  assert resemul_channels(8) == (128, 128, 128, 256, 256, 256, 256, 256, 512)
  params = _shapes(SampleCNNBlocks(block="rese2"), 59049)["params"]
  assert params["conv0"]["Conv_0"]["kernel"].shape == (3, 1, 128)
  with_shortcut = [i for i in range(9) if "shortcut" in params[f"block{i}"]]
  assert with_shortcut == [2, 8]  # channels change at blocks 3 and 9 (1-based)
  b2 = params["block2"]
  assert b2["shortcut"]["Conv_0"]["kernel"].shape == (1, 128, 256)
  assert b2["conv0"]["Conv_0"]["kernel"].shape == (3, 128, 256)
  assert b2["conv1"]["Conv_0"]["kernel"].shape == (3, 256, 256)
  assert set(params["block3"]) == {"conv0", "conv1", "se"}
  se = params["block8"]["se"]
  assert se["Dense_0"]["kernel"].shape == (512, 16 * 512)  # amplifying ratio 16
  assert se["Dense_1"]["kernel"].shape == (16 * 512, 512)
  assert params["head_dense"]["kernel"].shape == (1024, 1024)  # 256 + 256 + 512
  assert params["logits"]["kernel"].shape == (1024, 50)


def test_sampleaudio_reduction_ratio_is_configurable():
  params = _shapes(SampleCNNBlocks(block="se", amplifying_ratio=0.125), 59049)["params"]
  assert params["block0"]["se"]["Dense_0"]["kernel"].shape == (128, 16)


TINY = dict(num_outputs=5, m=3, n=4, channels=(4, 4, 4, 8, 16))


@pytest.mark.parametrize("block", ALL_BLOCKS)
@pytest.mark.parametrize("multi", [False, True])
def test_small_forward_shapes(block, multi):
  model = SampleCNNBlocks(block=block, multi_level=multi, **TINY)
  audio = jax.random.normal(jax.random.key(1), (3, model.input_length, 1))
  variables = model.init({"params": jax.random.key(0)}, audio, train=False)
  out = model.apply(variables, audio, train=False)
  width = 4 + 8 + 16 if multi else 16  # global max-pools of the last 3 blocks, or the last
  assert out["logits"].shape == (3, 5)
  assert out["embedding"].shape == (3, width)
  assert np.all(np.isfinite(np.asarray(out["logits"])))


@pytest.mark.parametrize("block", ALL_BLOCKS)
def test_block_maps_time_and_channels(block):
  module = BLOCKS.get(block)(features=8, m=3, amplifying_ratio=2.0)
  x = jax.random.normal(jax.random.key(2), (2, 27, 4))
  variables = module.init({"params": jax.random.key(0)}, x, train=False)
  assert module.apply(variables, x, train=False).shape == (2, 9, 8)


def test_training_mode_updates_batch_stats_and_uses_dropout():
  model = SampleCNNBlocks(block="rese2", multi_level=True, **TINY)
  audio = jax.random.normal(jax.random.key(1), (4, model.input_length, 1))
  variables = model.init({"params": jax.random.key(0)}, audio, train=False)
  out, updates = model.apply(variables, audio, train=True, rngs={"dropout": jax.random.key(3)},
                             mutable=["batch_stats"])
  assert out["logits"].shape == (4, 5)
  assert jax.tree.structure(updates["batch_stats"]) == \
      jax.tree.structure(variables["batch_stats"])


def test_variable_length_sampleaudio_style_input():
  # papers.md 7.2: 'same' first conv, 8 blocks, 22,050 samples -> 7350 ... 3 -> 1.
  model = SampleCNNBlocks(block="basic", m=3, n=8, channels=(2,) * 9, num_outputs=3,
                          first_padding="SAME", check_length=False)
  out = jax.eval_shape(lambda: model.init_with_output(
      {"params": jax.random.key(0)}, jnp.zeros((1, 22050, 1)), train=False)[0])
  assert out["logits"].shape == (1, 3)


def test_errors_are_clear():
  model = SampleCNNBlocks(block="basic", **TINY)
  with pytest.raises(ValueError, match=r"expects audio \[batch, 243, 1\]"):
    model.init({"params": jax.random.key(0)}, jnp.zeros((1, 240, 1)), train=False)
  with pytest.raises(ValueError, match="n \\+ 1 = 5 entries"):
    SampleCNNBlocks(num_outputs=5, m=3, n=4, channels=(4, 4)).init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 243, 1)), train=False)
  with pytest.raises(UserError, match="Unknown block 'res3'"):
    SampleCNNBlocks(block="res3", **TINY).init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 243, 1)), train=False)


def test_registered_by_name():
  assert MODELS.get("resemul") is SampleCNNBlocks is resemul.SampleCNNBlocks
  assert BLOCKS.names() == sorted(ALL_BLOCKS)


def test_paper6_one_second_models_parameter_counts():
  """Paper 6's 8-block, 22,050-sample models (papers.md 7.2) for the 35 Speech Commands words.

  Basic, by hand: first conv 3*1*128 + 128 and BN 2*128; blocks 128 -> 128, 128, 256, 256, 256,
  256, 256, 512 channels (conv 3*cin*cout + cout and BN 2*cout each); head Dense 512*512 + 512 and
  BN 2*512; output 512*35 + 35 -> 1,664,803.
  """
  from musicrep_jax.models.sample_level_fixed_input import (SampleLevelFixedInput,
                                                            paper6_model_kwargs)

  counts = {}
  for variant in ("basic", "improved"):
    model = SampleLevelFixedInput(num_outputs=35, **paper6_model_kwargs(variant))
    assert model.input_length == 22050
    counts[variant] = _count(_shapes(model, 22050)["params"])
  assert counts["basic"] == 1_664_803
  assert counts["improved"] > counts["basic"]
