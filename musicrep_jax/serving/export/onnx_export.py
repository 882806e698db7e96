"""ONNX through the PyTorch mirror: ``torch.onnx.export(..., dynamo=True)``, run with onnxruntime.

The graph takes ``audio`` float32 ``[batch, input_length, 1]`` (the Flax layout; ``batch`` is a
dynamic dimension) and returns the model's ``serving.inference.audio_outputs``: ``logits``
``[batch, num_outputs]`` (models with a head) and ``embedding`` ``[batch, d]``. torch 2.13's
exporter is the ``torch.export``-based one (``dynamo=True``, the default; the TorchScript
exporter is deprecated); it needs the ``onnx`` and ``onnxscript`` packages, and checking the
file needs ``onnxruntime``. Opset: the exporter's default (18 in
torch 2.13); the mel front end is a plain ``Conv`` with the DFT basis, no ONNX ``STFT`` op.
"""

from __future__ import annotations

import os

import numpy as np

OUTPUT_NAMES = ("logits", "embedding")


def _tuple_outputs(mirror, output_names):
  """The mirror returning a tuple of ``output_names`` instead of a dict (ONNX outputs are a
  list)."""
  import torch

  class TupleOutputs(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.mirror = mirror

    def forward(self, audio):
      out = self.mirror(audio)
      return tuple(out[name] for name in output_names)

  return TupleOutputs().eval()


def export_onnx(mirror, path: str | os.PathLike, output_names=OUTPUT_NAMES,
                example_batch: int = 2) -> None:
  """Writes the eval-mode ``mirror`` (``torch_mirror``) as ONNX with a dynamic batch, its
  outputs ``output_names``."""
  import torch

  example = torch.zeros(example_batch, mirror.input_length, 1)
  program = torch.onnx.export(
      _tuple_outputs(mirror, tuple(output_names)), (example,), dynamo=True,
      input_names=["audio"], output_names=list(output_names),
      dynamic_shapes=({0: torch.export.Dim("batch")},),
      verbose=False)
  program.save(os.fspath(path))


def run_onnx(path: str | os.PathLike, audio: np.ndarray) -> dict[str, np.ndarray]:
  """onnxruntime (CPU) on float32 ``[batch, input_length, 1]`` -> ``{output name: array}``."""
  import onnxruntime

  session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
  names = [output.name for output in session.get_outputs()]
  outputs = session.run(names, {"audio": np.asarray(audio, np.float32)})
  return dict(zip(names, outputs))
