"""Export (docs/export.md): the layout map, the PyTorch mirror of every family, and every format
(safetensors -> mirror, ONNX -> onnxruntime, StableHLO -> jax.export round trip) against Flax.

Tolerance (``exporter.PARITY_TOLERANCE``): every output within ``1e-5 * max(1, max |flax|)``
in float32 on CPU. Measured worst case here ~1e-6 relative (the mel models: DFT as a
convolution vs. FFT). Tests needing torch / onnx / onnxruntime / safetensors skip when these
optional packages are missing.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.serving.export import exporter, layout, model_family, model_kwargs
from musicrep_jax.serving.inference import audio_outputs
from musicrep_jax.models.dcue import DCUE
from musicrep_jax.models.embedding import EmbeddingNet
from musicrep_jax.models.mel_cnn import MelDCNN, MelFrameCNN
from musicrep_jax.models.resemul import SampleCNNBlocks
from musicrep_jax.models.sample_cnn import SampleCNN
from musicrep_jax.models.zero_shot import ZeroShotEmbedding
from musicrep_jax.registry import MODELS
from tests.helpers import random_batch_stats

MEL = dict(sample_rate=16000, n_fft=256, hop_length=128, n_mels=32)
MODELS_UNDER_TEST = {
    "sample_cnn": SampleCNN(num_outputs=5, m=3, n=3, channels=(4, 4, 4, 8, 8)),
    "sample_cnn_m2_frame": SampleCNN(num_outputs=5, m=2, n=4, first_filter=4,
                                     channels=(4, 4, 8, 8, 8, 8)),
    "mel_dcnn": MelDCNN(num_outputs=6, num_frames=33, channels=(8, 8, 16), kernel_sizes=(4, 2, 1),
                        pool_sizes=(4, 2, 1), **MEL),
    "mel_dcnn_center": MelDCNN(num_outputs=6, num_frames=33, channels=(8, 16),
                               kernel_sizes=(3, 1), pool_sizes=(4, 1), center=True, **MEL),
    "mel_frame_cnn": MelFrameCNN(num_outputs=6, num_frames=18, channels=(8, 8, 16),
                                 hidden_units=7, **MEL),
}
# Block structures: plain + SE (se), residual with a 1x1 shortcut and one conv (res1), two convs
# + SE (rese2); basic, res2 and rese1 are combinations of these.
for _block in ("se", "res1", "rese2"):
  MODELS_UNDER_TEST[f"resemul_{_block}"] = SampleCNNBlocks(
      num_outputs=5, block=_block, m=3, n=4, channels=(4, 4, 8, 8, 16), amplifying_ratio=0.5,
      multi_level=True, multi_level_blocks=2)
# Paper 6's fixed-length model: resemul blocks on 100 samples with a 'same' strided conv0.
MODELS_UNDER_TEST["sample_level_fixed_input"] = MODELS.get("sample_level_fixed_input")(
    num_outputs=5, block="rese1", m=3, n=3, channels=(4, 4, 8, 8), input_samples=100,
    amplifying_ratio=0.5, multi_level_blocks=2)
MODELS_UNDER_TEST["resemul_rese2_same_head"] = SampleCNNBlocks(
    num_outputs=5, block="rese2", m=3, n=3, channels=(4, 4, 8, 8), first_padding="SAME",
    multi_level=False, head_width=6, amplifying_ratio=2.0)
# Embedding models (audio side): embedding_net on paper 4's DCNN with every head and mask kind,
# DCUE's audio branch (with BatchNorm; multi) and the zero-shot audio branch.
DCNN = dict(num_frames=33, channels=(8, 8, 16), kernel_sizes=(4, 2, 1), pool_sizes=(4, 2, 1),
            n_fft=256, hop_length=128, n_mels=32)
MODELS_UNDER_TEST.update({
    "embedding_net": EmbeddingNet(sample_rate=16000, backbone_kwargs=DCNN),
    "embedding_net_classifier": EmbeddingNet(sample_rate=16000, backbone_kwargs=DCNN,
                                             head="dense", num_outputs=5, normalize=False),
    "embedding_net_proxy": EmbeddingNet(sample_rate=16000, backbone_kwargs=DCNN,
                                        embedding_dim=12, head="proxy", num_outputs=5),
    "embedding_net_csn": EmbeddingNet(sample_rate=16000, backbone_kwargs=DCNN, embedding_dim=12,
                                      num_subspaces=2, head="dense", disentangled=True,
                                      num_outputs=5, head_groups=((0, 3), (1, 2, 4))),
    "embedding_net_csn_learned_proxy": EmbeddingNet(
        sample_rate=16000, backbone_kwargs=DCNN, embedding_dim=12, num_subspaces=2,
        mask_mode="learned", head="proxy", disentangled=True, num_outputs=5,
        head_groups=((4, 0), (1, 2, 3))),
    "dcue": DCUE(num_users=7, num_frames=33, channels=(8, 8, 16), kernel_sizes=(4, 2, 1),
                 pool_sizes=(2, 2, 1), dim=6, user_hidden=5, last_relu=False, batch_norm=True,
                 **MEL),
    "dcue_multi": DCUE(num_users=7, num_frames=40, channels=(8, 8, 8, 8, 16), dim=6,
                       user_hidden=5, multi=True, pool_sizes=(2, 2, 2, 2, 1), **MEL),
    "zero_shot": ZeroShotEmbedding(num_frames=33, channels=(8, 8, 12), kernel_sizes=(4, 2, 1),
                                   pool_sizes=(2, 2, 1), **MEL),
})
if "mel_cnn2d" in MODELS.names():  # The 2-D baseline (mel_cnn.MelCNN2D), when present.
  MODELS_UNDER_TEST["mel_cnn2d"] = MODELS.get("mel_cnn2d")(
      num_outputs=5, sample_rate=8000, n_fft=256, hop_length=128, n_mels=24, num_frames=40,
      channels=(4, 8, 8), pools_mel_time=((2, 2), (3, 4), (2, 2)))
# Papers 13/14's Inception network (models/inception.py): 19 x 12 after the stem, so the first
# stride module pads time symmetrically and mel on the right only (XLA SAME), the second 10 x 6;
# with the input BatchNorm and without the L2 normalisation. As the embedding_net backbone: one
# block, CSN masks and a disentangled proxy head.
INCEPTION = dict(num_frames=38, n_fft=256, hop_length=128, n_mels=24, stem_features=8,
                 stride_branches=(8, 8, 8), normal_branches=(8, 8, 8, 8, 8, 8), embed_features=8)
MODELS_UNDER_TEST["inception"] = MODELS.get("inception")(
    num_outputs=5, sample_rate=16000, num_blocks=2, input_batchnorm=True, normalize=False,
    **INCEPTION)
MODELS_UNDER_TEST["embedding_net_inception"] = EmbeddingNet(
    sample_rate=16000, backbone="inception", backbone_kwargs=dict(INCEPTION, num_blocks=1),
    num_subspaces=2, head="proxy", disentangled=True, num_outputs=5,
    head_groups=((1, 4), (0, 2, 3)))
# One of each family in every format (ONNX export costs ~3-6 s per model).
EVERY_FORMAT = ["sample_cnn", "resemul_rese2", "mel_dcnn", "embedding_net_csn", "dcue",
                "embedding_net_inception"] + (
    ["mel_cnn2d"] if "mel_cnn2d" in MODELS_UNDER_TEST else [])


def _perturbed(variables: dict, seed: int) -> dict:
  """Every parameter + N(0, 0.1) (BatchNorm scale/bias are 1/0 at init, which would hide a
  swapped mapping) and random running statistics; on the host (numpy), not compiled."""
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda x: np.asarray(x) + rng.normal(0, 0.1, x.shape).astype(np.float32),
                        variables["params"])
  return {"params": params, "batch_stats": jax.device_get(
      random_batch_stats(variables.get("batch_stats", {}), seed + 1))}


class _Cases(dict):
  """name -> (model, variables, audio, flax outputs), built on first use."""

  def __missing__(self, name):
    model = MODELS_UNDER_TEST[name]
    audio = exporter.check_batch(model.input_length, batch=3, seed=5)
    variables = _perturbed(jax.jit(model.init)({"params": jax.random.key(0)},
                                               jnp.asarray(audio)), seed=1)
    self[name] = (model, variables, audio, exporter.flax_outputs(model, variables, audio))
    return self[name]


@pytest.fixture(scope="module")
def cases():
  return _Cases()


def _assert_parity(got, reference, names=("logits", "embedding")):
  for name, r in exporter.parity(got, reference, names).items():
    assert r["ok"], (name, r)


@pytest.mark.parametrize("name", sorted(MODELS_UNDER_TEST))
def test_layout_covers_every_variable_and_round_trips(cases, name):
  model, variables, _, _ = cases[name]
  entries = layout.layout(model_family(model), model_kwargs(model))
  flat = layout.to_flat(entries, variables)  # Raises if a Flax variable is not mapped.
  back = layout.from_flat(entries, flat)
  for collection in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, back[collection], variables[collection])
  conv = next(e for e in entries if e.kind in ("conv", "conv2d"))
  kernel = variables["params"]
  for key in conv.flax_path:
    kernel = kernel[key]
  kernel = kernel["kernel"]
  # Flax [width, in, out] -> torch [out, in, width] (2-D: [kt, km, in, out] -> [out, in, kt, km]).
  assert flat[f"{conv.name}.weight"].shape == (kernel.shape[-1], kernel.shape[-2],
                                               *kernel.shape[:-2])


@pytest.mark.parametrize("name", sorted(MODELS_UNDER_TEST))
def test_torch_mirror_reproduces_flax(cases, name):
  pytest.importorskip("torch")
  from musicrep_jax.serving.export import torch_mirror

  model, variables, audio, reference = cases[name]
  mirror = torch_mirror.mirror_from_flax(model, variables)
  got = torch_mirror.forward_numpy(mirror, audio)
  _assert_parity(got, reference, names=tuple(reference))  # multi_level too, where present
  assert torch_mirror.num_params(mirror) == sum(
      x.size for x in jax.tree.leaves(variables["params"]))


def test_mirror_has_the_papers_parameter_counts():
  pytest.importorskip("torch")
  from musicrep_jax.serving.export import torch_mirror

  sample_cnn = torch_mirror.SampleCNNMirror(num_outputs=50, m=3, n=9)
  rese2 = torch_mirror.ReSEMirror(num_outputs=50, block="rese2", multi_level=False)
  assert torch_mirror.num_params(sample_cnn) == 1_869_874  # papers.md 2.3
  assert torch_mirror.num_params(rese2) == 26_166_578  # papers.md 6.2


@pytest.mark.parametrize("name", EVERY_FORMAT)
def test_every_format_reproduces_flax(cases, name, tmp_path):
  for module in ("torch", "onnx", "onnxscript", "onnxruntime", "safetensors"):
    pytest.importorskip(module)
  from musicrep_jax.serving.export import onnx_export, safetensors_io, stablehlo, torch_mirror

  model, variables, _, _ = cases[name]
  info = exporter.export_model(model, variables, tmp_path, sample_rate=16000,
                               tag_names=[f"t{i}" for i in range(getattr(model, "num_outputs",
                                                                         0))])
  assert set(info["formats"]) == {"safetensors", "onnx", "stablehlo", "pretrained"}
  assert json.loads((tmp_path / "export_info.json").read_text())["family"] == model_family(model)

  # Read back independently, at a batch size the export never saw (dynamic / symbolic batch).
  audio = exporter.check_batch(model.input_length, batch=5, seed=9)
  reference = exporter.flax_outputs(model, variables, audio)
  mirror, header = torch_mirror.mirror_from_safetensors(tmp_path / "model.safetensors")
  assert (header.family, header.input_length) == (model_family(model), model.input_length)
  assert header.tag_names[:2] == (("t0", "t1") if "logits" in reference else ())
  assert header.sample_rate == 16000
  outputs = audio_outputs(model)
  assert info["outputs"] == list(outputs)
  _assert_parity(torch_mirror.forward_numpy(mirror, audio), reference, outputs)
  _assert_parity(onnx_export.run_onnx(tmp_path / "model.onnx", audio), reference, outputs)
  _assert_parity(stablehlo.run((tmp_path / "model.stablehlo").read_bytes(), audio), reference,
                 outputs)
  _, flax_back = safetensors_io.read_flax_variables(tmp_path / "model.safetensors")
  jax.tree.map(np.testing.assert_array_equal, flax_back["params"], variables["params"])


def test_parity_check_catches_a_wrong_weight(cases):
  """The tolerance is tight enough to see one perturbed BatchNorm statistic."""
  pytest.importorskip("torch")
  from musicrep_jax.serving.export import torch_mirror

  model, variables, audio, reference = cases["resemul_rese2"]
  mirror = torch_mirror.mirror_from_flax(model, variables)
  mirror.blocks[2].convs[1].bn.running_mean.data[0] += 0.05
  report = exporter.parity(torch_mirror.forward_numpy(mirror, audio), reference)
  assert not all(r["ok"] for r in report.values()), report


def test_stablehlo_runs_without_torch_and_keeps_the_batch_symbolic(cases):
  from musicrep_jax.serving.export import stablehlo

  model, variables, _, _ = cases["mel_frame_cnn"]
  blob = stablehlo.serialize(model, variables, model.input_length, platforms=("cpu",))
  exported = stablehlo.deserialize(blob)
  assert str(exported.in_avals[0].shape[0]) == "batch"
  for batch in (1, 4):
    audio = exporter.check_batch(model.input_length, batch=batch, seed=batch)
    _assert_parity(stablehlo.run(blob, audio), exporter.flax_outputs(model, variables, audio))
