"""PyTorch eager reference of the SampleCNN m^n-DCNN, for benchmarks and cross-checks.

The model is the export mirror ``musicrep_jax.serving.export.torch_mirror.SampleCNNMirror`` (the
project's one PyTorch SampleCNN: same layer list, BatchNorm momentum/epsilon and initialisers as
``musicrep_jax.models.sample_cnn.SampleCNN``; see that module's docstring), used here in NCW
layout ``[batch, 1, time]``. This file adds the training side: SGD with Nesterov momentum 0.9 and
BCE-with-logits averaged over tags and batch at a constant learning rate 0.01 (the JAX side's
Keras decay costs nothing measurable).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from musicrep_jax.serving.export.torch_mirror import SampleCNNMirror as TorchSampleCNN
from musicrep_jax.serving.export.torch_mirror import load_flax_variables, num_params

__all__ = ["TorchSampleCNN", "load_flax_variables", "num_params", "make_optimizer",
           "make_train_step", "check_paper_param_count"]


def make_optimizer(model: nn.Module, learning_rate: float = 0.01) -> torch.optim.Optimizer:
  """SGD with Nesterov momentum 0.9 (papers.md 1.5)."""
  return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9, nesterov=True)


def make_train_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                    autocast_dtype: Optional[torch.dtype] = None, forward=None):
  """Returns ``step(audio, tags) -> loss tensor``: forward, BCE-with-logits, backward, update.

  ``autocast_dtype=torch.bfloat16``: the forward pass under ``torch.autocast`` (bfloat16
  convolutions and matmuls, float32 parameters, BatchNorm and loss: PyTorch's mixed precision,
  the counterpart of the JAX models' ``dtype=bfloat16``). ``forward``: what computes the outputs
  (default ``model``; the benchmark passes ``torch.compile(model)``).
  """
  loss_fn = nn.BCEWithLogitsLoss()
  forward = model if forward is None else forward
  device_type = next(model.parameters()).device.type

  def step(audio: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
      logits = forward(audio)["logits"]
    loss = loss_fn(logits.float(), tags)
    loss.backward()
    optimizer.step()
    return loss.detach()

  return step


def check_paper_param_count() -> int:
  """The paper's 3^9 model must have 1,869,874 parameters (papers.md 2.3); returns the count."""
  count = num_params(TorchSampleCNN(num_outputs=50, m=3, n=9))
  if count != 1_869_874:
    raise AssertionError(f"TorchSampleCNN 3^9 has {count:,} parameters, expected 1,869,874")
  return count


if __name__ == "__main__":
  print(f"TorchSampleCNN 3^9: {check_paper_param_count():,} parameters (expected 1,869,874)")
