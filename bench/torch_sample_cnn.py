"""PyTorch eager reference of the SampleCNN m^n-DCNN, for benchmarks and cross-checks only.

The same layer list as ``musicrep_jax.models.sample_cnn.SampleCNN`` (papers.md 2.3), in PyTorch's
NCW layout: a strided 'valid' Conv1d (filter = stride = ``first_filter``), ``n`` blocks of
Conv1d(filter m, 'same') + BatchNorm + ReLU + MaxPool(m), a 1x1 Conv1d + BatchNorm + ReLU, dropout
and a linear layer. Matching choices:
  * BatchNorm momentum 0.01 in PyTorch's convention (new = 0.99 old + 0.01 batch), i.e. Flax's
    0.99; epsilon 1e-5. (PyTorch updates the running variance with the unbiased batch variance,
    Flax with the biased one: a difference in the running statistics only, irrelevant to speed.)
  * ``padding="same"`` pads ``(k - 1) // 2`` on the left and the rest on the right, as XLA's SAME
    for stride 1; ``MaxPool1d(m, m)`` floors like 'VALID' pooling.
  * Init: He-uniform convolutions (``kaiming_uniform_``, fan-in, ReLU gain = Flax ``he_uniform``),
    Glorot-uniform dense, zero biases.
  * Training: SGD, Nesterov momentum 0.9, BCE-with-logits averaged over tags and batch. The learning
    rate is a constant 0.01 (the JAX side's Keras decay costs nothing measurable).

``load_flax_variables`` copies Flax parameters and batch statistics in, for equivalence tests.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from musicrep_jax.models.sample_cnn import input_length, paper_channels


class ConvBNReLU(nn.Sequential):
  """Conv1d + BatchNorm1d + ReLU on ``[batch, channels, time]``."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               padding="same", bn_momentum: float = 0.01, bn_epsilon: float = 1e-5):
    super().__init__(
        nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
        nn.BatchNorm1d(out_channels, eps=bn_epsilon, momentum=bn_momentum),
        nn.ReLU())


class TorchSampleCNN(nn.Module):
  """m^n-DCNN; ``forward(audio [batch, time, 1] or [batch, 1, time]) -> logits [batch, tags]``."""

  def __init__(self, num_outputs: int = 50, m: int = 3, n: int = 9,
               first_filter: Optional[int] = None, channels: Optional[Sequence[int]] = None,
               dropout_rate: float = 0.5):
    super().__init__()
    channels = tuple(channels or paper_channels(n))
    if len(channels) != n + 2:
      raise ValueError(f"channels needs n + 2 = {n + 2} entries, got {len(channels)}")
    self.m, self.n = m, n
    self.input_length = input_length(m, n, first_filter)
    first = first_filter or m
    self.conv0 = ConvBNReLU(1, channels[0], first, stride=first, padding=0)
    self.blocks = nn.ModuleList(
        ConvBNReLU(channels[i], channels[i + 1], m) for i in range(n))
    self.pool = nn.MaxPool1d(m, stride=m)
    self.conv1x1 = ConvBNReLU(channels[n], channels[n + 1], 1)
    self.dropout = nn.Dropout(dropout_rate)
    self.dense = nn.Linear(channels[-1], num_outputs)
    self.reset_parameters()

  def reset_parameters(self) -> None:
    """He-uniform convs, Glorot-uniform dense, zero biases (the Flax model's initialisers)."""
    for module in self.modules():
      if isinstance(module, nn.Conv1d):
        nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)
      elif isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)

  def forward(self, audio: torch.Tensor) -> torch.Tensor:
    if audio.shape[-1] == 1:  # [batch, time, 1] as the JAX model takes it
      audio = audio.transpose(1, 2)
    x = self.conv0(audio)
    for block in self.blocks:
      x = self.pool(block(x))
    x = self.conv1x1(x).flatten(1)  # time is 1 here
    return self.dense(self.dropout(x))


def num_params(model: nn.Module) -> int:
  """Trainable parameters (BatchNorm running statistics excluded, as in Flax ``params``)."""
  return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_optimizer(model: nn.Module, learning_rate: float = 0.01) -> torch.optim.Optimizer:
  """SGD with Nesterov momentum 0.9 (papers.md 1.5)."""
  return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9, nesterov=True)


def make_train_step(model: nn.Module, optimizer: torch.optim.Optimizer):
  """Returns ``step(audio, tags) -> loss tensor``: forward, BCE-with-logits, backward, update."""
  loss_fn = nn.BCEWithLogitsLoss()

  def step(audio: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(audio), tags)
    loss.backward()
    optimizer.step()
    return loss.detach()

  return step


def _conv_layers(model: TorchSampleCNN):
  return [model.conv0, *model.blocks, model.conv1x1]


@torch.no_grad()
def load_flax_variables(model: TorchSampleCNN, variables: dict) -> None:
  """Copies Flax ``{"params", "batch_stats"}`` of ``SampleCNN`` into ``model`` in place.

  Conv kernels ``(k, in, out) -> (out, in, k)``; dense ``(in, out) -> (out, in)``; BatchNorm
  ``scale, bias, mean, var`` -> ``weight, bias, running_mean, running_var``.
  """
  params, stats = variables["params"], variables["batch_stats"]
  tensor = lambda x: torch.from_numpy(np.array(x, dtype=np.float32))
  for i, layer in enumerate(_conv_layers(model)):
    conv, bn = layer[0], layer[1]
    p, s = params[f"ConvBNReLU_{i}"], stats[f"ConvBNReLU_{i}"]
    conv.weight.copy_(tensor(p["Conv_0"]["kernel"]).permute(2, 1, 0))
    conv.bias.copy_(tensor(p["Conv_0"]["bias"]))
    bn.weight.copy_(tensor(p["BatchNorm_0"]["scale"]))
    bn.bias.copy_(tensor(p["BatchNorm_0"]["bias"]))
    bn.running_mean.copy_(tensor(s["BatchNorm_0"]["mean"]))
    bn.running_var.copy_(tensor(s["BatchNorm_0"]["var"]))
  model.dense.weight.copy_(tensor(params["Dense_0"]["kernel"]).T)
  model.dense.bias.copy_(tensor(params["Dense_0"]["bias"]))


def check_paper_param_count() -> int:
  """The paper's 3^9 model must have 1,869,874 parameters (papers.md 2.3); returns the count."""
  count = num_params(TorchSampleCNN(num_outputs=50, m=3, n=9))
  if count != 1_869_874:
    raise AssertionError(f"TorchSampleCNN 3^9 has {count:,} parameters, expected 1,869,874")
  return count


if __name__ == "__main__":
  print(f"TorchSampleCNN 3^9: {check_paper_param_count():,} parameters (expected 1,869,874)")
