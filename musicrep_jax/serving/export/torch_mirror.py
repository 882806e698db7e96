"""The PyTorch mirrors seen from the Flax side: Flax variables and safetensors exports -> eval-mode
PyTorch modules (needs torch).

The modules themselves live in ``modeling_musicrep`` (a self-contained file that needs only torch,
numpy and safetensors, copied verbatim into every model folder; docs/export.md); they are
re-exported here under the names the package has always used (``SampleCNNMirror``,
``build_mirror``, ``num_params``, ...). What this module adds needs the layout map and so
musicrep-jax: ``load_flax_variables``, ``mirror_from_flax``, ``mirror_from_safetensors``.
"""

from __future__ import annotations

import os

from torch import nn

from musicrep_jax.serving.export import safetensors_io
from musicrep_jax.serving.export.modeling_musicrep import (  # noqa: F401  (re-exported)
    MIRRORS, BranchConv, ConvBN, ConvBN2D, DCUEMirror, EmbeddingNetMirror, InceptionMirror,
    MelCNN2DMirror, MelConvBranchMirror, MelDCNNMirror, MelFrameCNNMirror, MelFrontend,
    PlainBlock, ResidualBlock, ReSEMirror, SampleCNNMirror, SampleLevelFixedInputMirror,
    SqueezeExcitation, ZeroShotMirror, build_mirror, forward_numpy, load_flat, num_params,
    reset_parameters, same_padding)


def load_flax_variables(model: nn.Module, variables: dict) -> None:
  """Copies Flax ``{"params", "batch_stats"}`` of the mirrored model into ``model`` in place
  (parameters the export leaves out, ``layout.NOT_EXPORTED``, are ignored)."""
  header = safetensors_io.ModelHeader(model.family, model.kwargs, 0, model.input_length)
  load_flat(model, safetensors_io.flat_tensors(header, variables))


def mirror_from_flax(flax_model, variables: dict) -> nn.Module:
  """The eval-mode PyTorch mirror of a Flax model instance, holding ``variables``."""
  from musicrep_jax.serving.export import model_family, model_kwargs

  mirror = build_mirror(model_family(flax_model), model_kwargs(flax_model))
  load_flax_variables(mirror, variables)
  return mirror


def mirror_from_safetensors(path: str | os.PathLike) -> tuple[nn.Module,
                                                                safetensors_io.ModelHeader]:
  """``(eval-mode mirror, header)`` from a ``musicrep export --format safetensors`` file."""
  header, tensors = safetensors_io.read(path)
  mirror = build_mirror(header.family, header.kwargs)
  load_flat(mirror, tensors)
  return mirror, header

