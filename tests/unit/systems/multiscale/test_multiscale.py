"""Multi-level, multi-scale feature aggregation (papers 2 and 3): level capture, clip aggregation,
the classifier's column selection, and the config variants (``systems/multiscale/pipeline.py``'s
own functions: test_pipeline.py; the three stages end to end through the CLI:
tests/e2e/test_multiscale_cli.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from musicrep_jax.systems.multiscale import classifier as agg
from musicrep_jax.systems.multiscale import features as fx
from musicrep_jax.errors import UserError
from musicrep_jax.data.pipeline import InMemorySource
from musicrep_jax.models.mel_cnn import MelCNN2D, MelDCNN, MelFrameCNN
from musicrep_jax.models.resemul import SampleCNNBlocks
from musicrep_jax.models.sample_cnn import SampleCNN
from musicrep_jax.data.schema import pcm16_to_float

from tests.helpers import REPO


def _init(model):
  audio = jnp.zeros((1, model.input_length, 1), jnp.float32)
  return jax.jit(lambda a: model.init({"params": jax.random.key(0)}, a, train=False))(audio)


@pytest.fixture(scope="module")
def frame_cnn():
  model = MelFrameCNN(num_frames=18, num_outputs=3, n_mels=16, channels=(4, 6, 8),
                      sample_rate=16000)
  variables = dict(_init(model))
  # Non-trivial BatchNorm statistics, so the running averages (eval mode) matter.
  variables["batch_stats"] = jax.tree.map(lambda x: x + 0.1, variables["batch_stats"])
  return model, variables


@pytest.mark.parametrize("model,names,channels", [
    (MelFrameCNN(num_frames=54, num_outputs=3, n_mels=8, channels=(4, 5, 6, 7)),
     [f"ConvBNReLU_{i}" for i in range(4)], [4, 5, 6, 7]),
    (MelDCNN(num_outputs=3, n_mels=8, channels=(4, 4, 4, 4, 6)),
     [f"ConvBNReLU_{i}" for i in range(5)], [4, 4, 4, 4, 6]),
    (SampleCNN(num_outputs=3, m=3, n=4, channels=(2, 3, 4, 5, 6, 7)),
     [f"ConvBNReLU_{i}" for i in range(6)], [2, 3, 4, 5, 6, 7]),
    # resemul: conv0 and the blocks, not the convs inside the blocks.
    (SampleCNNBlocks(num_outputs=3, block="rese2", n=4, channels=(2, 3, 4, 5, 6),
                     amplifying_ratio=1.0),
     ["conv0", "block0", "block1", "block2", "block3"], [2, 3, 4, 5, 6]),
    (MelCNN2D(num_frames=16, n_mels=8, channels=(3, 5), pools_mel_time=((2, 4), (4, 4)),
              sample_rate=16000), ["Conv2DBNAct_0", "Conv2DBNAct_1"], [3, 5]),
], ids=["mel_frame_cnn", "mel_dcnn", "sample_cnn", "resemul", "mel_cnn2d"])
def test_levels_are_the_conv_layers_of_each_model_family(model, names, channels):
  variables = jax.eval_shape(lambda: model.init(
      {"params": jax.random.key(0)}, jnp.zeros((1, model.input_length, 1)), train=False))
  levels = fx.describe_levels(model, variables)
  assert [l.name for l in levels] == names
  assert [l.channels for l in levels] == channels
  assert [l.start for l in levels] == list(np.cumsum([0] + channels[:-1]))
  assert levels[-1].stop == sum(channels)


def test_max_pooled_levels_equal_the_models_own_multi_level_output(frame_cnn):
  """MelFrameCNN's ``multi_level`` is paper 2's per-excerpt feature: the global max of every
  conv layer, concatenated. The captured levels must give exactly that, without model changes."""
  model, variables = frame_cnn
  audio = 0.1 * jax.random.normal(jax.random.key(1), (3, model.input_length, 1))
  ours = jax.jit(lambda v, a: fx.segment_features(model, v, a, "max"))(variables, audio)
  theirs = jax.jit(lambda v, a: model.apply(v, a, train=False)["multi_level"])(variables, audio)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-6, atol=1e-6)


def _record(i, num_samples, rng):
  audio = (rng.standard_normal(num_samples) * 3000).astype(np.int16)
  return {"audio": audio, "clip_id": np.int64(100 + i), "tags": np.array([i % 2, 1], np.uint8)}


@pytest.mark.parametrize("aggregation", ["mean", "max"])
def test_clip_features_aggregate_the_non_overlapping_segments(frame_cnn, aggregation):
  """Clips of 2.5, 1 and 0.5 input lengths give 2, 1 and 1 (zero-padded) segments; with batches
  of 3 segments a clip straddles two batches. Each clip's feature is the mean (max) of its
  segments' features, computed here one segment at a time."""
  model, variables = frame_cnn
  length = model.input_length
  rng = np.random.default_rng(0)
  records = [_record(i, n, rng) for i, n in enumerate([int(2.5 * length), length, length // 2,
                                                       int(2.5 * length)])]
  config = ml_collections.ConfigDict(dict(data=dict(sample_rate=16000),
                                          model=dict(name="mel_frame_cnn")))
  extractor = fx.Extractor(name="x", workdir=None, config=config, model=model,
                           variables=variables, step=0)
  result = fx.extract_split(extractor, InMemorySource(records), pooling="max",
                            segment_aggregation=aggregation, batch_size=3, progress=False)
  np.testing.assert_array_equal(result["segments"], [2, 1, 1, 2])
  np.testing.assert_array_equal(result["clip_ids"], [100, 101, 102, 103])
  np.testing.assert_array_equal(result["labels"], [[0, 1], [1, 1], [0, 1], [1, 1]])
  feature = jax.jit(lambda a: fx.segment_features(model, variables, a, "max"))
  for i, record in enumerate(records):
    audio = np.zeros((max(1, len(record["audio"]) // length) * length,), np.float32)
    piece = pcm16_to_float(record["audio"][:audio.size])
    audio[:piece.size] = piece
    segments = np.asarray(feature(audio.reshape(-1, length, 1)))
    expected = segments.mean(0) if aggregation == "mean" else segments.max(0)
    np.testing.assert_allclose(result["features"][i], expected, rtol=1e-5, atol=1e-6)


def test_select_columns_by_scale_and_level():
  meta = {"extractors": [
      {"name": "a", "levels": [dict(name="l0", start=0, stop=2), dict(name="l1", start=2, stop=5)]},
      {"name": "b", "levels": [dict(name="l0", start=5, stop=6), dict(name="l1", start=6, stop=8),
                               dict(name="l2", start=8, stop=9)]}]}
  columns, labels = agg.select_columns(meta, "all", "all")
  np.testing.assert_array_equal(columns, np.arange(9))
  columns, labels = agg.select_columns(meta, "b", "-2,-1")
  np.testing.assert_array_equal(columns, [6, 7, 8])
  assert labels == ["b/l1", "b/l2"]
  columns, _ = agg.select_columns(meta, [1, "a"], [0])
  np.testing.assert_array_equal(columns, [5, 0, 1])
  with pytest.raises(UserError, match="scale 'c'"):
    agg.select_columns(meta, "c", "all")
  with pytest.raises(UserError, match="level of a '2'"):
    agg.select_columns(meta, "a", "2")
  names = [row[0] for row in agg.sweep_selections(meta)]
  assert len(names) == 5 + 2 + 2 and names[-1] == "multi-level + multi-scale"


def test_standardizer_uses_training_statistics_only():
  x = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0]], np.float32)
  mean, std = agg.standardizer(x, "per_dim")
  np.testing.assert_allclose((x - mean) / std, [[-1, -1, 0], [1, 1, 0]])  # Constant column: 0.
  mean, std = agg.standardizer(x, "global")
  assert mean.shape == () and std.shape == ()


def test_extract_features_errors_name_the_problem(tmp_path):
  with pytest.raises(UserError, match="not a training workdir"):
    fx.load_extractor(tmp_path)
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(UserError, match="No checkpoint"):
    fx.load_extractor(tmp_path)
  with pytest.raises(UserError, match="no features.json"):
    fx.read_meta(tmp_path)


@pytest.mark.parametrize("arg", ["", "sample", "transfer", "sample,transfer"])
def test_multiscale_config_variants_hold_valid_trainer_configs(arg):
  """Every extractor of every variant is a valid trainer config; runlocal ones train on the
  embedded corpus with fewer steps. (configs/multiscale_mtat.py is not itself a trainer config.)"""
  from musicrep_jax import config_loading
  from musicrep_jax.registry import MODELS

  path = REPO / "configs" / "multiscale_mtat.py"
  full = config_loading.load_config_file(f"{path}:{arg}")
  local = config_loading.load_config_file(f"{path}:{arg},runlocal".replace(":,", ":"))
  assert len(full.extractors) == len(local.extractors) == 3
  lengths = []
  for (name, big), small in zip(full.extractors.items(), local.extractors.values()):
    config_loading.validate(big)
    config_loading.validate(small)
    assert small.data.name == "synthetic" and small.num_train_steps < big.num_train_steps
    lengths.append(MODELS.get(big.model.name)(
        **config_loading.constructor_kwargs(big.model.kwargs)).input_length)
  assert lengths == sorted(set(lengths)), lengths  # Three different scales.
  assert local.target_synthetic_seed == (1 if "transfer" in arg else -1)
  agg.settings_from_config(full.classifier)
  with pytest.raises(UserError, match="Bad config argument 'nonsense'"):
    config_loading.load_config_file(f"{path}:nonsense")
