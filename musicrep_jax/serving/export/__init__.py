"""Exporting trained models: model folders, safetensors + a PyTorch mirror, ONNX, StableHLO
(docs/export.md).

Modules (PyTorch, ONNX and safetensors are optional extras, imported only where used):

  * ``layout``: the documented name and layout map from a Flax variable tree to flat,
    PyTorch-convention tensors (``"blocks.3.conv.weight"``), and back; numpy only.
  * ``safetensors_io``: writes / reads that map as a ``.safetensors`` file with the model's
    family and constructor arguments in its header (needs ``safetensors``, not torch).
  * ``modeling_musicrep``: PyTorch modules that reproduce every exportable Flax family, one
    self-contained file (torch, numpy, safetensors; no musicrep_jax import) copied verbatim into
    model folders, with ``load(folder)``.
  * ``torch_mirror``: those modules seen from the Flax side (Flax variables -> mirror; needs
    torch).
  * ``pretrained``: a workdir as a self-describing model folder (weights, PyTorch file, config,
    ``musicrep.json``, ``eval_results.json``, model card ``README.md``) and back.
  * ``onnx_export``: the mirror through ``torch.onnx.export`` (dynamo), checked with
    onnxruntime (needs torch, onnx, onnxscript, onnxruntime).
  * ``stablehlo``: ``jax.export`` with a symbolic batch, serialized, reloaded and called (JAX
    only).
  * ``exporter``: all formats for one model, each checked against the Flax outputs.
"""

from __future__ import annotations

import dataclasses

# Flax dataclass fields that are not architecture: never exported.
_NOT_ARCHITECTURE = ("parent", "name", "dtype")


def model_family(model) -> str:
  """The ``MODELS`` registry name of a Flax model instance (``serving.inference.model_family``,
  imported when called: this package's ``layout`` needs numpy only)."""
  from musicrep_jax.serving.inference import model_family as family

  return family(model)


def model_kwargs(model) -> dict:
  """The model's constructor fields as JSON-able values (tuples -> lists), without ``dtype``:
  exports are float32 whatever the training compute dtype."""
  kwargs = {}
  for field in dataclasses.fields(model):
    if field.name in _NOT_ARCHITECTURE:
      continue
    value = getattr(model, field.name)
    kwargs[field.name] = list(value) if isinstance(value, tuple) else value
  return kwargs


def eval_apply(model, variables: dict, audio) -> dict:
  """The eval-mode audio-only forward every export reproduces: ``model.apply(variables, audio,
  train=False)`` less its non-array outputs (DCUE's ``item_heads`` tuple). Which of the outputs
  are checked and carried by ONNX: ``serving.inference.audio_outputs``."""
  out = model.apply(variables, audio, train=False)
  return {k: v for k, v in out.items() if not isinstance(v, (tuple, list))}
