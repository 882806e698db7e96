"""ONNX through the PyTorch mirror: ``torch.onnx.export(..., dynamo=True)``, run with onnxruntime.

The graph takes ``audio`` float32 ``[batch, input_length, 1]`` (the Flax layout; ``batch`` is a
dynamic dimension) and returns ``logits`` ``[batch, num_outputs]`` and ``embedding``
``[batch, d]``. torch 2.13's exporter is the ``torch.export``-based one (``dynamo=True``, the
default; the TorchScript exporter is deprecated); it needs the ``onnx`` and ``onnxscript``
packages, and checking the file needs ``onnxruntime``. Opset: the exporter's default (18 in
torch 2.13); the mel front end is a plain ``Conv`` with the DFT basis, no ONNX ``STFT`` op.
"""

from __future__ import annotations

import os

import numpy as np

OUTPUT_NAMES = ("logits", "embedding")


def _tuple_outputs(mirror):
  """The mirror returning ``(logits, embedding)`` instead of a dict (ONNX outputs are a list)."""
  import torch

  class TupleOutputs(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.mirror = mirror

    def forward(self, audio):
      out = self.mirror(audio)
      return tuple(out[name] for name in OUTPUT_NAMES)

  return TupleOutputs().eval()


def export_onnx(mirror, path: str | os.PathLike, example_batch: int = 2) -> None:
  """Writes the eval-mode ``mirror`` (``torch_mirror``) as ONNX with a dynamic batch."""
  import torch

  example = torch.zeros(example_batch, mirror.input_length, 1)
  program = torch.onnx.export(
      _tuple_outputs(mirror), (example,), dynamo=True, input_names=["audio"],
      output_names=list(OUTPUT_NAMES), dynamic_shapes=({0: torch.export.Dim("batch")},),
      verbose=False)
  program.save(os.fspath(path))


def run_onnx(path: str | os.PathLike, audio: np.ndarray) -> dict[str, np.ndarray]:
  """onnxruntime (CPU) on float32 ``[batch, input_length, 1]`` -> ``{"logits", "embedding"}``."""
  import onnxruntime

  session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
  outputs = session.run(list(OUTPUT_NAMES), {"audio": np.asarray(audio, np.float32)})
  return dict(zip(OUTPUT_NAMES, outputs))
