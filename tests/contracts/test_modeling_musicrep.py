"""``modeling_musicrep.py`` (the PyTorch file copied into every model folder) imports nothing of
musicrep_jax, so it writes out the numbers and rules it shares with the Flax models; each must
equal the Flax side's, and every mirror's defaults must equal its Flax model's."""

import ast
import dataclasses
import inspect

import numpy as np
import pytest

pytest.importorskip("torch")

import musicrep_jax.models  # noqa: E402,F401  (registers models)
from musicrep_jax import config_loading  # noqa: E402
from musicrep_jax.frontends import mel  # noqa: E402
from musicrep_jax.models import embedding, mel_cnn, resemul, sample_cnn  # noqa: E402
from musicrep_jax.registry import MODELS  # noqa: E402
from musicrep_jax.serving.export import layout, modeling_musicrep as mm  # noqa: E402
from musicrep_jax.serving.export import safetensors_io  # noqa: E402


def test_imports_only_torch_numpy_and_the_standard_library():
  tree = ast.parse(inspect.getsource(mm))
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported |= {a.name.split(".")[0] for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      imported.add(node.module.split(".")[0])
  assert imported <= {"__future__", "inspect", "json", "os", "typing", "numpy", "torch",
                      "safetensors"}, imported


def test_constants_and_rules_equal_the_flax_side():
  assert (mm.PAPER_MEL_MEAN, mm.PAPER_MEL_STD) == (mel.PAPER_MEL_MEAN, mel.PAPER_MEL_STD)
  assert mm.FORMAT == safetensors_io.FORMAT
  assert mm.BLOCK_STRUCTURE == {b: layout.resemul_block_structure(b)
                                for b in resemul.BLOCKS.names()}
  for n in range(1, 11):
    assert mm.paper_channels(n) == sample_cnn.paper_channels(n)
    assert mm.resemul_channels(n, 16) == resemul.resemul_channels(n, 16)
    assert mm.sample_cnn_input_length(3, n, 9 if n % 2 else None) == sample_cnn.input_length(
        3, n, 9 if n % 2 else None)
    assert mm.frame_cnn_num_convs(9 * n) == mel_cnn.frame_cnn_num_convs(9 * n)
    assert mm.samples_for_frames(n, 256, 64, n % 2 == 0) == mel.samples_for_frames(
        n, 256, 64, n % 2 == 0)
    np.testing.assert_array_equal(mm.disjoint_masks(min(n, 4), 10),
                                  embedding.disjoint_masks(min(n, 4), 10))
  for sample_rate, n_fft, n_mels in ((22050, 1024, 128), (16000, 256, 32), (12000, 512, 96)):
    np.testing.assert_allclose(mm.mel_filterbank(sample_rate, n_fft, n_mels),
                               mel.mel_filterbank(sample_rate, n_fft, n_mels), rtol=0,
                               atol=1e-9)
    np.testing.assert_allclose(mm.hann_window(n_fft), mel.hann_window(n_fft), atol=1e-15)
  nested = {"a": [1, [2, 3]], "b": "x"}
  assert {k: mm.as_tuples(v) for k, v in nested.items()} == config_loading.constructor_kwargs(
      nested)


def test_mirrors_cover_the_layouts_and_share_the_flax_defaults():
  assert set(mm.MIRRORS) == set(layout.LAYOUTS)
  for family, cls in mm.MIRRORS.items():
    flax_fields = {f.name: f.default for f in dataclasses.fields(MODELS.get(family))
                   if f.name not in ("parent", "name", "dtype")}
    mirror = mm.constructor_defaults(cls)
    assert set(mirror) == set(flax_fields), (family, set(mirror) ^ set(flax_fields))
    for name, default in flax_fields.items():
      assert config_loading.constructor_kwargs({name: mirror[name]}) == \
          config_loading.constructor_kwargs({name: default}), (family, name)


def test_embedding_net_backbone_fields_match_the_flax_backbone():
  """The file builds an embedding_net's backbone without Flax: same fields as
  ``EmbeddingNet.make_backbone`` once the mirror's defaults are filled in."""
  kwargs = dict(backbone="mel_dcnn", backbone_kwargs={"num_frames": 40, "n_mels": 32},
                sample_rate=16000)
  family, fields = mm.backbone_fields(**kwargs)
  flax_family, flax_fields = layout.embedding_net_backbone(dict(kwargs))
  assert family == flax_family
  assert dict(mm.constructor_defaults(mm.MIRRORS[family]), **fields) == {
      k: config_loading.constructor_kwargs({k: v})[k] for k, v in flax_fields.items()}
