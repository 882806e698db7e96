"""The name and layout map between Flax variables and flat PyTorch-convention tensors.

One table per model family lists ``Entry(name, flax_path, kind)``: ``name`` is the PyTorch
mirror's sub-module (``musicrep_jax.serving.export.torch_mirror``), ``flax_path`` the Flax module
under
``params`` (and ``batch_stats`` for BatchNorm), ``kind`` how its tensors are laid out:

  ====== ======================================= ============================================
  kind   Flax (``params`` / ``batch_stats``)     flat tensors (PyTorch ``state_dict`` names)
  ====== ======================================= ============================================
  conv   ``kernel [width, in, out]``, ``bias``   ``NAME.weight [out, in, width]``, ``NAME.bias``
  conv2d ``kernel [kt, km, in, out]``, ``bias``  ``NAME.weight [out, in, kt, km]``, ``NAME.bias``
  linear ``kernel [in, out]``, ``bias``          ``NAME.weight [out, in]``, ``NAME.bias``
  bn     ``scale``, ``bias``; ``mean``, ``var``  ``NAME.weight``, ``NAME.bias``,
                                                 ``NAME.running_mean``, ``NAME.running_var``
  ====== ======================================= ============================================

Mel models add two constant buffers computed from their fields (``frontend_buffers``):
``frontend.window [n_fft]`` (periodic Hann) and ``frontend.mel_filterbank [n_fft // 2 + 1,
n_mels]`` (Slaney, applied as ``spectrogram @ filterbank``; papers.md 1.3). docs/export.md lists
every family's names. Numpy only: no torch needed to write or read the map.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

# Axis order taking a Flax kernel to the flat (PyTorch) weight, per kind.
KERNEL_AXES = {"conv": (2, 1, 0), "conv2d": (3, 2, 0, 1), "linear": (1, 0)}
KINDS = tuple(KERNEL_AXES) + ("bn",)


@dataclasses.dataclass(frozen=True)
class Entry:
  """One Flax module <-> one group of flat tensors ``name.weight``, ``name.bias``, ..."""

  name: str
  flax_path: tuple[str, ...]
  kind: str


def conv_bn(name: str, flax_path: tuple[str, ...], kind: str = "conv") -> list[Entry]:
  """A Flax module holding ``Conv_0`` and ``BatchNorm_0`` (``ConvBNReLU``, ``ConvBN``,
  ``Conv2DBNAct``) -> ``name.conv`` and ``name.bn``."""
  return [Entry(f"{name}.conv", flax_path + ("Conv_0",), kind),
          Entry(f"{name}.bn", flax_path + ("BatchNorm_0",), "bn")]


def squeeze_excitation(name: str, flax_path: tuple[str, ...]) -> list[Entry]:
  """SE's two Dense layers -> ``name.fc1`` (squeeze to alpha * C) and ``name.fc2`` (back to C)."""
  return [Entry(f"{name}.fc1", flax_path + ("Dense_0",), "linear"),
          Entry(f"{name}.fc2", flax_path + ("Dense_1",), "linear")]


def sample_cnn_layout(kw: dict) -> list[Entry]:
  """SampleCNN (papers.md 2): ``conv0``, ``blocks.0 .. blocks.{n-1}``, ``conv1x1``, ``dense``."""
  n = kw["n"]
  entries = conv_bn("conv0", ("ConvBNReLU_0",))
  for i in range(n):
    entries += conv_bn(f"blocks.{i}", (f"ConvBNReLU_{i + 1}",))
  entries += conv_bn("conv1x1", (f"ConvBNReLU_{n + 1}",))
  return entries + [Entry("dense", ("Dense_0",), "linear")]


def resemul_block_structure(block: str) -> tuple[int, bool]:
  """``(residual convs, has SE)`` of a registered block: 0 convs means the plain conv+BN+ReLU
  of ``basic``/``se``; 1 or 2 the residual path of res1/res2/rese1/rese2 (papers.md 6.2)."""
  from musicrep_jax.models import resemul

  cls = resemul.BLOCKS.get(block)
  if cls is resemul.BasicBlock:
    return 0, False
  if cls is resemul.SEBlock:
    return 0, True
  if issubclass(cls, resemul.ResidualBlock):
    return cls.num_convs, cls.use_se
  raise ValueError(f"block {block!r} has no export layout; add it to "
                   f"musicrep_jax/export/layout.py and torch_mirror.py")


def resemul_layout(kw: dict) -> list[Entry]:
  """SampleCNN blocks (papers.md 6.2): ``conv0``; per block ``blocks.i.{conv,bn}`` (basic, se)
  or ``blocks.i.shortcut`` (where channels change) + ``blocks.i.convs.j``; ``blocks.i.se``;
  head ``head_dense``, ``head_bn``, ``logits``."""
  from musicrep_jax.models.resemul import resemul_channels

  channels = tuple(kw["channels"] or resemul_channels(kw["n"], kw["init_features"]))
  num_convs, has_se = resemul_block_structure(kw["block"])
  entries = conv_bn("conv0", ("conv0",))
  for i in range(kw["n"]):
    name, path = f"blocks.{i}", (f"block{i}",)
    if num_convs == 0:
      entries += conv_bn(name, path + ("ConvBNReLU_0",))
    else:
      if channels[i] != channels[i + 1]:
        entries += conv_bn(f"{name}.shortcut", path + ("shortcut",))
      for j in range(num_convs):
        entries += conv_bn(f"{name}.convs.{j}", path + (f"conv{j}",))
    if has_se:
      entries += squeeze_excitation(f"{name}.se", path + ("se",))
  return entries + [Entry("head_dense", ("head_dense",), "linear"),
                    Entry("head_bn", ("head_bn",), "bn"),
                    Entry("logits", ("logits",), "linear")]


def mel_dcnn_layout(kw: dict) -> list[Entry]:
  """Paper 4's DCNN (papers.md 5.2): ``convs.0 .. convs.4``, ``dense``."""
  entries = []
  for i in range(len(kw["channels"])):
    entries += conv_bn(f"convs.{i}", (f"ConvBNReLU_{i}",))
  return entries + [Entry("dense", ("Dense_0",), "linear")]


def mel_frame_cnn_layout(kw: dict) -> list[Entry]:
  """Paper 2's frame-level CNN (papers.md 3.1): ``convs.i``, optional ``hidden``, ``dense``."""
  from musicrep_jax.models.mel_cnn import frame_cnn_num_convs

  channels = kw["channels"] or (128,) * frame_cnn_num_convs(kw["num_frames"])
  entries = []
  for i in range(len(channels)):
    entries += conv_bn(f"convs.{i}", (f"ConvBNReLU_{i}",))
  if kw["hidden_units"]:
    return entries + [Entry("hidden", ("Dense_0",), "linear"), Entry("dense", ("Dense_1",),
                                                                        "linear")]
  return entries + [Entry("dense", ("Dense_0",), "linear")]


def mel_cnn2d_layout(kw: dict) -> list[Entry]:
  """Choi et al.'s FCN-4 (papers.md 2.6): optional ``input_bn``, ``convs.i`` (2-D), ``dense``."""
  entries = [Entry("input_bn", ("input_bn",), "bn")] if kw["input_batchnorm"] else []
  for i in range(len(kw["channels"])):
    entries += conv_bn(f"convs.{i}", (f"Conv2DBNAct_{i}",), "conv2d")
  return entries + [Entry("dense", ("Dense_0",), "linear")]


LAYOUTS: dict[str, Callable[[dict], list[Entry]]] = {
    "sample_cnn": sample_cnn_layout,
    "resemul": resemul_layout,
    "mel_dcnn": mel_dcnn_layout,
    "mel_frame_cnn": mel_frame_cnn_layout,
    "mel_cnn2d": mel_cnn2d_layout,
}
MEL_FAMILIES = ("mel_dcnn", "mel_frame_cnn", "mel_cnn2d")


def layout(family: str, kwargs: dict) -> list[Entry]:
  """The entries of a model family with constructor fields ``kwargs`` (all of them, as
  ``musicrep_jax.serving.export.model_kwargs`` gives)."""
  if family not in LAYOUTS:
    raise ValueError(f"no export layout for model {family!r}; exportable: {sorted(LAYOUTS)}")
  return LAYOUTS[family](kwargs)


def frontend_buffers(family: str, kwargs: dict) -> dict[str, np.ndarray]:
  """Constant front-end tensors of mel families (``{}`` for raw-waveform ones), float32."""
  if family not in MEL_FAMILIES:
    return {}
  from musicrep_jax.frontends.mel import hann_window, mel_filterbank

  # C order: mel_filterbank returns a transposed (Fortran-ordered) array, and safetensors
  # writes raw buffers.
  return {"frontend.window": np.ascontiguousarray(hann_window(kwargs["n_fft"]), np.float32),
          "frontend.mel_filterbank": np.ascontiguousarray(mel_filterbank(
              kwargs["sample_rate"], kwargs["n_fft"], kwargs["n_mels"]), np.float32)}


def _tensor_names(entry: Entry) -> list[tuple[str, str, str]]:
  """``(flat name, collection, Flax leaf)`` of each tensor of ``entry``."""
  if entry.kind == "bn":
    return [(f"{entry.name}.weight", "params", "scale"), (f"{entry.name}.bias", "params", "bias"),
            (f"{entry.name}.running_mean", "batch_stats", "mean"),
            (f"{entry.name}.running_var", "batch_stats", "var")]
  return [(f"{entry.name}.weight", "params", "kernel"), (f"{entry.name}.bias", "params", "bias")]


def _kernel_to_flat(kind: str, leaf: str, array: np.ndarray, inverse: bool = False):
  if leaf != "kernel":
    return array
  axes = KERNEL_AXES[kind]
  return array.transpose(np.argsort(axes) if inverse else axes)


def _lookup(tree: dict, path: tuple[str, ...], what: str):
  node = tree
  for key in path:
    if not isinstance(node, dict) or key not in node:
      raise KeyError(f"{what} has no {'/'.join(path)} (missing {key!r})")
    node = node[key]
  return node


def _leaf_paths(tree, prefix=()) -> set[tuple[str, ...]]:
  if not isinstance(tree, dict):
    return {prefix}
  return set().union(*[_leaf_paths(v, prefix + (k,)) for k, v in tree.items()]) if tree else set()


def to_flat(entries: list[Entry], variables: dict) -> dict[str, np.ndarray]:
  """Flax ``{"params", "batch_stats"}`` -> ``{flat name: float32 array}`` (PyTorch layout).

  Raises ``ValueError`` if a Flax variable is left over: the map must cover the model exactly.
  """
  flat, used = {}, set()
  for entry in entries:
    for name, collection, leaf in _tensor_names(entry):
      path = (collection,) + entry.flax_path + (leaf,)
      array = np.asarray(_lookup(variables, path, "the Flax variables"), np.float32)
      flat[name] = np.ascontiguousarray(_kernel_to_flat(entry.kind, leaf, array))
      used.add(path)
  left = _leaf_paths({k: variables[k] for k in ("params", "batch_stats") if k in variables})
  if left - used:
    raise ValueError(f"the export map misses Flax variables: {sorted(left - used)[:5]}")
  return flat


def from_flat(entries: list[Entry], flat: dict[str, np.ndarray]) -> dict:
  """Inverse of ``to_flat``: ``{flat name: array}`` -> Flax ``{"params", "batch_stats"}``."""
  variables: dict = {"params": {}, "batch_stats": {}}
  for entry in entries:
    for name, collection, leaf in _tensor_names(entry):
      if name not in flat:
        raise KeyError(f"tensor {name!r} is missing")
      array = _kernel_to_flat(entry.kind, leaf, np.asarray(flat[name], np.float32), inverse=True)
      node = variables[collection]
      for key in entry.flax_path:
        node = node.setdefault(key, {})
      node[leaf] = np.ascontiguousarray(array)
  return variables
