"""The name and layout map between Flax variables and flat PyTorch-convention tensors.

One table per model family lists ``Entry(name, flax_path, kind)``: ``name`` is the PyTorch
mirror's sub-module (``musicrep_jax.serving.export.modeling_musicrep``), ``flax_path`` the Flax module
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
  tensor one bare parameter (``flax_path`` ends    ``NAME``, as it is (proxies, CSN mask
         with its name)                          weights)
  ====== ======================================= ============================================

Embedding models export their audio side only (``NOT_EXPORTED``): DCUE's user branch and the
zero-shot label branch are left out (``audio_variables``); ``embedding_net`` nests its
backbone's layout under ``backbone.``.

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
KINDS = tuple(KERNEL_AXES) + ("bn", "tensor")
# Top-level Flax params (name prefixes) of a family that are not part of its audio export.
NOT_EXPORTED = {"dcue": ("user_table", "user_head_"), "zero_shot": ("label_projection",)}


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
                   f"musicrep_jax/serving/export/layout.py and modeling_musicrep.py")


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


INCEPTION_STRIDE_CONVS = ("b1x1", "dbl_1", "dbl_2", "dbl_3")
INCEPTION_NORMAL_CONVS = ("b1x1", "b5x5_1", "b5x5_2", "dbl_1", "dbl_2", "dbl_3", "pool_proj")


def inception_layout(kw: dict) -> list[Entry]:
  """Papers 13/14's Inception network (papers.md 14.2): optional ``input_bn``, ``stem``,
  ``blocks.i.stride.B`` <- ``stride_i/B`` and ``blocks.i.normal.B`` <- ``normal_i/B`` for the
  branch convs ``B`` (conv_bn, conv2d), ``embed`` (1x1 conv2d, no BN), ``dense`` <- ``head``."""
  entries = [Entry("input_bn", ("input_bn",), "bn")] if kw["input_batchnorm"] else []
  entries += conv_bn("stem", ("stem",), "conv2d")
  for i in range(kw["num_blocks"]):
    for module, convs in (("stride", INCEPTION_STRIDE_CONVS), ("normal", INCEPTION_NORMAL_CONVS)):
      for conv in convs:
        entries += conv_bn(f"blocks.{i}.{module}.{conv}", (f"{module}_{i}", conv), "conv2d")
  return entries + [Entry("embed", ("embed",), "conv2d"), Entry("dense", ("head",), "linear")]


def mel_conv_branch(name: str, flax_path: tuple[str, ...], kw: dict) -> list[Entry]:
  """``models.branches.MelConvBranch``: ``NAME.convs.i.conv`` <- ``Conv_i`` (+ ``NAME.convs.i.bn``
  <- ``BatchNorm_i`` with ``batch_norm``)."""
  entries = []
  for i in range(len(kw["channels"])):
    entries.append(Entry(f"{name}.convs.{i}.conv", flax_path + (f"Conv_{i}",), "conv"))
    if kw.get("batch_norm"):
      entries.append(Entry(f"{name}.convs.{i}.bn", flax_path + (f"BatchNorm_{i}",), "bn"))
  return entries


def dcue_layout(kw: dict) -> list[Entry]:
  """DCUE's audio branch (papers.md 8.3): ``audio.convs.i``, ``item_projection``."""
  return mel_conv_branch("audio", ("audio",), kw) + [
      Entry("item_projection", ("item_projection",), "linear")]


def zero_shot_layout(kw: dict) -> list[Entry]:
  """The zero-shot audio branch (papers.md 11.3): ``audio.convs.i``."""
  return mel_conv_branch("audio", ("audio",), kw)


def embedding_net_backbone(kw: dict) -> tuple[str, dict]:
  """``(family, all constructor fields)`` of an ``embedding_net``'s backbone, as the Flax model
  builds it (``EmbeddingNet.make_backbone``: defaults, ``sample_rate``, ``num_outputs=1``)."""
  import musicrep_jax.models  # noqa: F401  (registers models)
  from musicrep_jax.config_loading import constructor_kwargs
  from musicrep_jax.registry import MODELS
  from musicrep_jax.serving.export import model_kwargs

  backbone = MODELS.get("embedding_net")(**constructor_kwargs(kw)).make_backbone(parent=None)
  return kw["backbone"], model_kwargs(backbone)


def embedding_net_layout(kw: dict) -> list[Entry]:
  """``embedding_net`` (papers 4, 9, 13, 14): the backbone's entries under ``backbone.``,
  ``projection`` (``embedding_dim`` > 0), ``mask_weights`` (learned CSN masks), and the head:
  ``head`` (dense), ``heads.g`` (disentangled dense, one per subspace) or ``proxies``."""
  family, backbone_kw = embedding_net_backbone(kw)
  entries = [dataclasses.replace(e, name=f"backbone.{e.name}", flax_path=("backbone",) +
                                 e.flax_path) for e in layout(family, backbone_kw)]
  if kw["embedding_dim"]:
    entries.append(Entry("projection", ("projection",), "linear"))
  if kw["num_subspaces"] and kw["mask_mode"] == "learned":
    entries.append(Entry("mask_weights", ("mask_weights",), "tensor"))
  if kw["head"] == "proxy":
    entries.append(Entry("proxies", ("proxies",), "tensor"))
  elif kw["head"] == "dense" and kw["disentangled"]:
    entries += [Entry(f"heads.{g}", (f"head_{g}",), "linear")
                for g in range(len(kw["head_groups"]))]
  elif kw["head"] == "dense":
    entries.append(Entry("head", ("head",), "linear"))
  return entries


LAYOUTS: dict[str, Callable[[dict], list[Entry]]] = {
    "sample_cnn": sample_cnn_layout,
    "resemul": resemul_layout,
    "sample_level_fixed_input": resemul_layout,  # resemul on a stated input length (paper 6)
    "mel_dcnn": mel_dcnn_layout,
    "mel_frame_cnn": mel_frame_cnn_layout,
    "mel_cnn2d": mel_cnn2d_layout,
    "inception": inception_layout,
    "embedding_net": embedding_net_layout,
    "dcue": dcue_layout,
    "zero_shot": zero_shot_layout,
}
MEL_FAMILIES = ("mel_dcnn", "mel_frame_cnn", "mel_cnn2d", "inception", "dcue", "zero_shot")


def layout(family: str, kwargs: dict) -> list[Entry]:
  """The entries of a model family with constructor fields ``kwargs`` (all of them, as
  ``musicrep_jax.serving.export.model_kwargs`` gives)."""
  if family not in LAYOUTS:
    raise ValueError(f"no export layout for model {family!r}; exportable: {sorted(LAYOUTS)}")
  return LAYOUTS[family](kwargs)


def frontend_buffers(family: str, kwargs: dict) -> dict[str, np.ndarray]:
  """Constant front-end tensors of mel families (``{}`` for raw-waveform ones), float32; an
  ``embedding_net``'s are its backbone's, under ``backbone.``."""
  if family == "embedding_net":
    backbone, backbone_kw = embedding_net_backbone(kwargs)
    return {f"backbone.{name}": array
            for name, array in frontend_buffers(backbone, backbone_kw).items()}
  if family not in MEL_FAMILIES:
    return {}
  from musicrep_jax.frontends.mel import hann_window, mel_filterbank

  # C order: mel_filterbank returns a transposed (Fortran-ordered) array, and safetensors
  # writes raw buffers.
  return {"frontend.window": np.ascontiguousarray(hann_window(kwargs["n_fft"]), np.float32),
          "frontend.mel_filterbank": np.ascontiguousarray(mel_filterbank(
              kwargs["sample_rate"], kwargs["n_fft"], kwargs["n_mels"]), np.float32)}


def _tensor_names(entry: Entry) -> list[tuple[str, tuple[str, ...]]]:
  """``(flat name, Flax path incl. collection and leaf)`` of each tensor of ``entry``."""
  if entry.kind == "tensor":
    return [(entry.name, ("params",) + entry.flax_path)]
  if entry.kind == "bn":
    leaves = [("weight", "params", "scale"), ("bias", "params", "bias"),
              ("running_mean", "batch_stats", "mean"), ("running_var", "batch_stats", "var")]
  else:
    leaves = [("weight", "params", "kernel"), ("bias", "params", "bias")]
  return [(f"{entry.name}.{suffix}", (collection,) + entry.flax_path + (leaf,))
          for suffix, collection, leaf in leaves]


def _kernel_to_flat(kind: str, leaf: str, array: np.ndarray, inverse: bool = False):
  if leaf != "kernel":
    return array
  axes = KERNEL_AXES[kind]
  return array.transpose(np.argsort(axes) if inverse else axes)


def audio_variables(family: str, variables: dict) -> dict:
  """``variables`` without the family's ``NOT_EXPORTED`` parameters (DCUE's user branch, the
  zero-shot label branch): what the audio-only forward and the export use."""
  drop = NOT_EXPORTED.get(family, ())
  if not drop:
    return variables
  return {collection: {k: v for k, v in tree.items() if not k.startswith(drop)}
          for collection, tree in variables.items()}


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
    for name, path in _tensor_names(entry):
      array = np.asarray(_lookup(variables, path, "the Flax variables"), np.float32)
      flat[name] = np.ascontiguousarray(_kernel_to_flat(entry.kind, path[-1], array))
      used.add(path)
  left = _leaf_paths({k: variables[k] for k in ("params", "batch_stats") if k in variables})
  if left - used:
    raise ValueError(f"the export map misses Flax variables: {sorted(left - used)[:5]}")
  return flat


def from_flat(entries: list[Entry], flat: dict[str, np.ndarray]) -> dict:
  """Inverse of ``to_flat``: ``{flat name: array}`` -> Flax ``{"params", "batch_stats"}``."""
  variables: dict = {"params": {}, "batch_stats": {}}
  for entry in entries:
    for name, path in _tensor_names(entry):
      if name not in flat:
        raise KeyError(f"tensor {name!r} is missing")
      array = _kernel_to_flat(entry.kind, path[-1], np.asarray(flat[name], np.float32),
                              inverse=True)
      node = variables
      for key in path[:-1]:
        node = node.setdefault(key, {})
      node[path[-1]] = np.ascontiguousarray(array)
  return variables
