"""A model as one ``.safetensors`` file: flat PyTorch-convention tensors + a self-describing header.

Tensors follow ``musicrep_jax.serving.export.layout`` (docs/export.md); the header's
``__metadata__``
(strings only, as the format requires) holds:

  ``format``       ``"musicrep-jax/1"``
  ``family``       the ``MODELS`` name (``sample_cnn``, ``resemul``, ``mel_dcnn``, ...)
  ``kwargs``       JSON of the constructor fields (``musicrep_jax.serving.export.model_kwargs``)
  ``sample_rate``  Hz the model was trained at (audio must be at this rate)
  ``input_length`` samples per example; input is ``[batch, input_length, 1]`` float32
  ``tag_names``    JSON list naming the ``logits`` columns (may be empty)

``torch_mirror.mirror_from_safetensors`` builds the PyTorch module from such a file, and
``read_flax_variables`` gives the Flax variables back. Needs the ``safetensors`` package
(``safetensors.numpy``), not torch.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from musicrep_jax.serving.export import layout

FORMAT = "musicrep-jax/1"


@dataclasses.dataclass(frozen=True)
class ModelHeader:
  """What a safetensors export says about its model."""

  family: str
  kwargs: dict
  sample_rate: int
  input_length: int
  tag_names: tuple[str, ...] = ()

  def to_metadata(self) -> dict[str, str]:
    return {"format": FORMAT, "family": self.family, "kwargs": json.dumps(self.kwargs),
            "sample_rate": str(self.sample_rate), "input_length": str(self.input_length),
            "tag_names": json.dumps(list(self.tag_names))}

  @classmethod
  def from_metadata(cls, metadata: dict[str, str], path: str) -> "ModelHeader":
    if not metadata or metadata.get("format") != FORMAT:
      raise ValueError(f"{path} is not a musicrep-jax export (header format "
                       f"{(metadata or {}).get('format')!r}, expected {FORMAT!r})")
    return cls(family=metadata["family"], kwargs=json.loads(metadata["kwargs"]),
               sample_rate=int(metadata["sample_rate"]),
               input_length=int(metadata["input_length"]),
               tag_names=tuple(json.loads(metadata.get("tag_names", "[]"))))


def flat_tensors(header: ModelHeader, variables: dict) -> dict[str, np.ndarray]:
  """Flax variables -> every tensor the file holds (weights, then front-end buffers)."""
  variables = layout.audio_variables(header.family, variables)
  flat = layout.to_flat(layout.layout(header.family, header.kwargs), variables)
  flat.update(layout.frontend_buffers(header.family, header.kwargs))
  # safetensors writes raw buffers: anything not in C order would be stored scrambled.
  return {name: np.ascontiguousarray(array) for name, array in flat.items()}


def write(path: str | os.PathLike, header: ModelHeader, variables: dict) -> dict[str, np.ndarray]:
  """Writes ``path`` (replaced atomically; mode ``0666 & ~umask`` like any new file: the
  package's ``save_file`` renames a ``0600`` temporary file into place); returns the tensors
  written."""
  from safetensors.numpy import save

  flat = flat_tensors(header, variables)
  path = os.fspath(path)
  partial = f"{path}.partial"
  with open(partial, "wb") as f:
    f.write(save(flat, metadata=header.to_metadata()))
  os.replace(partial, path)
  return flat


def read(path: str | os.PathLike) -> tuple[ModelHeader, dict[str, np.ndarray]]:
  """``(header, {name: array})`` of a file written by ``write``."""
  from safetensors import safe_open

  path = os.fspath(path)
  with safe_open(path, framework="numpy") as f:
    header = ModelHeader.from_metadata(f.metadata(), path)
    tensors = {name: f.get_tensor(name) for name in f.keys()}
  return header, tensors


def read_flax_variables(path: str | os.PathLike) -> tuple[ModelHeader, dict]:
  """``(header, Flax {"params", "batch_stats"})`` from a safetensors export."""
  header, tensors = read(path)
  return header, layout.from_flat(layout.layout(header.family, header.kwargs), tensors)
