"""musicrep-jax models in PyTorch: one self-contained file (torch, numpy and safetensors only).

This file is the project's one PyTorch implementation of its model families, and it is copied
verbatim beside the weights of every ``musicrep export --format pretrained`` folder, so that a
PyTorch user needs neither JAX nor musicrep-jax::

    import modeling_musicrep                       # this file
    model = modeling_musicrep.load("exported/")    # eval mode; reads model.safetensors
    out = model(audio)    # float32 [batch, model.input_length, 1] (or [batch, 1, time]) in
                          # [-1, 1] at model.sample_rate Hz -> {"logits", "embedding", ...}

Inside musicrep-jax it is ``musicrep_jax.serving.export.modeling_musicrep``; the bridge to the
Flax side (Flax variables -> these modules) is ``musicrep_jax.serving.export.torch_mirror``. It
imports nothing of musicrep-jax: the few numbers and rules it shares with the Flax models
(channel rules, mel constants, the Slaney filterbank, block structures, defaults) are written
out here and checked equal to the Flax side by tests/contracts/test_modeling_musicrep.py.

Every mirror takes the Flax model's constructor fields (the safetensors header's ``kwargs``),
takes audio ``[batch, time, 1]`` (the Flax layout, NWC) or ``[batch, 1, time]`` (NCW), and
returns ``{"logits": [batch, num_outputs], "embedding": [batch, d]}`` like the Flax model
(embedding models: ``EmbeddingNetMirror`` wraps its backbone's mirror and has ``logits`` only
with a head; ``DCUEMirror`` and ``ZeroShotMirror`` are the audio branches, ``embedding`` only).
Its ``state_dict`` names are the safetensors tensor names (docs/export.md), so an export loads
with ``load_flat``.

Matching choices (docs/export.md states them all):
  * 'same' convolutions pad ``(k - 1) // 2`` left and ``k // 2`` right (XLA's SAME for stride
    1: an even kernel puts the extra zero on the right; for stride s the padding is computed
    from the input length as XLA does); 'valid' none.
  * ``MaxPool1d(m, m)`` floors like ``max_pool_time``; global pools are max / mean over time.
  * BatchNorm momentum in PyTorch's convention is ``1 - flax_momentum`` (0.99 -> 0.01), the same
    epsilon. (PyTorch updates the running variance with the unbiased batch variance, Flax with
    the biased one: a training-time difference in the running statistics only.)
  * Init (for training benchmarks): He-uniform convolutions (``kaiming_uniform_``, ReLU gain =
    Flax ``he_uniform``), Glorot-uniform linear layers, zero biases.
  * Mel front end (papers.md 1.3): the STFT is a strided ``conv1d`` with the real-DFT basis times
    the periodic Hann window as its kernel (the Flax side's ``fft="rfft"`` or ``"matmul"``
    computes the same transform), magnitude, ``@ mel_filterbank``, ``log10(1 + scale * mel)``,
    ``(x - mean) / std``. ``window`` and ``mel_filterbank`` are buffers saved with the weights.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The safetensors header's ``format`` this file reads, and the weights' name in a model folder.
FORMAT = "musicrep-jax/1"
WEIGHTS_NAME = "model.safetensors"

# --- Numbers and rules shared with the Flax models (tests/contracts/test_modeling_musicrep.py) --

# papers.md 1.3 / 5.1: the global standardisation scalars of the group's log-mel input
# (musicrep_jax.frontends.mel.PAPER_MEL_MEAN / PAPER_MEL_STD).
PAPER_MEL_MEAN = 0.22620339
PAPER_MEL_STD = 0.25794547
# papers.md 14.1: paper 13's own z-score of the Inception input
# (musicrep_jax.models.inception.PAPER13_MEL_MEAN / PAPER13_MEL_STD).
PAPER13_MEL_MEAN = 0.2
PAPER13_MEL_STD = 0.25
# Residual convs and SE of each resemul block (musicrep_jax.models.resemul.BLOCKS, papers.md 6.2):
# 0 convs = the plain conv + BN + ReLU + MaxPool of basic / se.
BLOCK_STRUCTURE = {"basic": (0, False), "se": (0, True), "res1": (1, False),
                   "res2": (2, False), "rese1": (1, True), "rese2": (2, True)}


def sample_cnn_input_length(m: int, n: int, first_filter: Optional[int] = None) -> int:
  """Samples an m^n model consumes: ``first_filter * m**n`` (59,049 for 3^9)."""
  return (first_filter or m) * m ** n


def paper_channels(n: int) -> tuple[int, ...]:
  """SampleCNN's channels (papers.md 2.3): 128 for the first three convs, 512 for the last
  block and the 1x1 conv, 256 between (``n + 2`` entries)."""
  return tuple(128 if layer < 3 else 512 if layer >= n else 256 for layer in range(n + 2))


def resemul_channels(n: int, init_features: int = 128) -> tuple[int, ...]:
  """ReSE channels (papers.md 6.2): ``init_features`` for conv0, doubled at block 2 and at the
  last block (``n + 1`` entries)."""
  channels = [init_features]
  for i in range(n):
    channels.append(channels[-1] * (2 if i in (2, n - 1) else 1))
  return tuple(channels)


def frame_cnn_num_convs(num_frames: int) -> int:
  """Convs of paper 2's frame-level CNN: 3 up to 27 frames, else 4 (papers.md 3.1)."""
  return 3 if num_frames <= 27 else 4


def samples_for_frames(frames: int, n_fft: int, hop_length: int, center: bool) -> int:
  """Samples giving ``frames`` STFT frames: ``(frames - 1) * hop`` (+ ``n_fft`` without
  ``center``)."""
  return (frames - 1) * hop_length + (0 if center else n_fft)


def hann_window(length: int) -> np.ndarray:
  """Periodic Hann window float64 ``[length]`` (``scipy.signal.get_window('hann', length)``)."""
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def _slaney_mel(hz: np.ndarray, inverse: bool = False) -> np.ndarray:
  """Slaney's mel scale (linear ``3 f / 200`` below 1 kHz, log step ``log(6.4) / 27`` above),
  or its inverse."""
  f_sp, min_log_hz, logstep = 200.0 / 3.0, 1000.0, np.log(6.4) / 27.0
  min_log_mel = min_log_hz / f_sp
  if inverse:
    return np.where(hz >= min_log_mel,
                    min_log_hz * np.exp(logstep * (np.maximum(hz, min_log_mel) - min_log_mel)),
                    f_sp * hz)
  return np.where(hz >= min_log_hz,
                  min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
                  hz / f_sp)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
  """Slaney-normalised triangular mel filters float32 ``[n_fft // 2 + 1, n_mels]`` from 0 Hz to
  ``sample_rate / 2`` (``librosa.filters.mel(sr, n_fft, n_mels).T``; apply as ``S @ fb``)."""
  fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
  hz = _slaney_mel(np.linspace(0.0, _slaney_mel(np.float64(sample_rate / 2.0)), n_mels + 2),
                   inverse=True)
  ramps = hz[:, None] - fft_freqs[None, :]
  weights = np.maximum(0.0, np.minimum(-ramps[:-2] / np.diff(hz)[:-1, None],
                                       ramps[2:] / np.diff(hz)[1:, None]))
  weights *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
  return np.ascontiguousarray(weights.T, np.float32)


def disjoint_masks(num_subspaces: int, dim: int) -> np.ndarray:
  """Fixed CSN masks float32 ``[num_subspaces, dim]``: contiguous blocks covering every
  dimension once (paper 13)."""
  edges = np.round(np.linspace(0, dim, num_subspaces + 1)).astype(int)
  masks = np.zeros((num_subspaces, dim), np.float32)
  for s in range(num_subspaces):
    masks[s, edges[s]:edges[s + 1]] = 1.0
  return masks


def as_tuples(value):
  """JSON lists (nested ones too) back to the tuples the constructors take."""
  return tuple(as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# --- Layers ------------------------------------------------------------------------------------


def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
  """XLA 'SAME' padding ``(left, right)`` of a length-``length`` input: output
  ``ceil(length / stride)``, total ``max((out - 1) * stride + kernel - length, 0)``, left half
  rounded down."""
  out = -(-length // stride)
  total = max((out - 1) * stride + kernel - length, 0)
  return total // 2, total - total // 2


class ConvBN(nn.Module):
  """Conv1d + BatchNorm1d (+ ReLU) on ``[batch, channels, time]``; sub-modules ``conv``, ``bn``."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               padding: str = "SAME", bn_momentum: float = 0.99, bn_epsilon: float = 1e-5,
               relu: bool = True):
    super().__init__()
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    self.kernel_size, self.stride, self.relu = kernel_size, stride, relu
    self.same = padding.upper() == "SAME"
    # Symmetric 'same' padding (odd kernel, stride 1) goes into the conv; the rest is F.pad.
    self.native_pad = self.same and stride == 1 and kernel_size % 2 == 1
    self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                          padding=(kernel_size - 1) // 2 if self.native_pad else 0)
    self.bn = nn.BatchNorm1d(out_channels, eps=bn_epsilon, momentum=1.0 - bn_momentum)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.same and not self.native_pad:
      x = F.pad(x, same_padding(x.shape[-1], self.kernel_size, self.stride))
    x = self.bn(self.conv(x))
    return F.relu(x) if self.relu else x


def _channels_first(audio: torch.Tensor) -> torch.Tensor:
  """``[batch, time, 1]`` (Flax) or ``[batch, 1, time]`` -> ``[batch, 1, time]``."""
  if audio.dim() != 3 or 1 not in (audio.shape[1], audio.shape[2]):
    raise ValueError(f"audio must be [batch, time, 1] or [batch, 1, time], got "
                     f"{tuple(audio.shape)}")
  return audio.transpose(1, 2) if audio.shape[-1] == 1 else audio


def _check_length(audio: torch.Tensor, expected: int, what: str) -> None:
  if audio.shape[-1] != expected:
    raise ValueError(f"{what} expects {expected} samples per example, got {audio.shape[-1]}")


def constructor_fields(arguments: dict) -> dict:
  """A mirror's ``__init__`` ``locals()`` -> its fields (``**frontend`` flattened), kept as
  ``mirror.kwargs`` for the layout map."""
  fields = {k: v for k, v in arguments.items() if k not in ("self", "__class__", "frontend")}
  fields.update(arguments.get("frontend", {}))
  return fields


def reset_parameters(model: nn.Module) -> None:
  """He-uniform convolutions, Glorot-uniform linear layers, zero biases (the Flax initialisers;
  SE and head layers are Glorot in Flax too)."""
  for module in model.modules():
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
      nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
      nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
      nn.init.xavier_uniform_(module.weight)
      nn.init.zeros_(module.bias)


class SampleCNNMirror(nn.Module):
  """``models.sample_cnn.SampleCNN`` (papers.md 2): conv0, ``n`` blocks + MaxPool(m), conv1x1
  (= embedding), dropout, dense. ``pool_impl`` names the Flax model's max-pool formulation
  (same numbers); PyTorch has one max-pool."""

  family = "sample_cnn"

  def __init__(self, num_outputs: int = 50, m: int = 3, n: int = 9,
               first_filter: Optional[int] = None, channels: Optional[Sequence[int]] = None,
               dropout_rate: float = 0.5, bn_momentum: float = 0.99, bn_epsilon: float = 1e-5,
               pool_impl: str = "auto"):
    super().__init__()
    self.kwargs = constructor_fields(locals())
    channels = tuple(channels or paper_channels(n))
    if len(channels) != n + 2:
      raise ValueError(f"channels needs n + 2 = {n + 2} entries, got {len(channels)}")
    self.m, self.n = m, n
    self.input_length = sample_cnn_input_length(m, n, first_filter)
    first = first_filter or m
    bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.conv0 = ConvBN(1, channels[0], first, stride=first, padding="VALID", **bn)
    self.blocks = nn.ModuleList(ConvBN(channels[i], channels[i + 1], m, **bn) for i in range(n))
    self.pool = nn.MaxPool1d(m, stride=m)
    self.conv1x1 = ConvBN(channels[n], channels[n + 1], 1, **bn)
    self.dropout = nn.Dropout(dropout_rate)
    self.dense = nn.Linear(channels[-1], num_outputs)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    x = _channels_first(audio)
    _check_length(x, self.input_length, f"SampleCNN m={self.m}, n={self.n}")
    x = self.conv0(x)
    for block in self.blocks:
      x = self.pool(block(x))
    embedding = self.conv1x1(x).flatten(1)  # time is 1 here
    return {"logits": self.dense(self.dropout(embedding)), "embedding": embedding}


class SqueezeExcitation(nn.Module):
  """SE of papers.md 6.2 on ``[batch, C, time]``: scale by sigmoid(fc2(relu(fc1(mean_t x))))."""

  def __init__(self, channels: int, amplifying_ratio: float):
    super().__init__()
    hidden = max(1, int(round(amplifying_ratio * channels)))
    self.fc1 = nn.Linear(channels, hidden)
    self.fc2 = nn.Linear(hidden, channels)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=-1)))))
    return x * s.unsqueeze(-1)


class PlainBlock(ConvBN):
  """basic / se blocks: Conv -> BN -> ReLU -> MaxPool(m) (-> SE)."""

  def __init__(self, in_channels: int, features: int, m: int, use_se: bool,
               amplifying_ratio: float, bn_momentum: float, bn_epsilon: float):
    super().__init__(in_channels, features, m, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.pool = nn.MaxPool1d(m, stride=m)
    self.se = SqueezeExcitation(features, amplifying_ratio) if use_se else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.pool(super().forward(x))
    return self.se(x) if self.se is not None else x


class ResidualBlock(nn.Module):
  """res1/res2/rese1/rese2: shortcut (1x1 conv + BN where channels change) + residual convs
  (ReLU + dropout between) (+ SE) -> Add -> ReLU -> MaxPool(m)."""

  def __init__(self, in_channels: int, features: int, m: int, num_convs: int, use_se: bool,
               amplifying_ratio: float, dropout_rate: float, bn_momentum: float,
               bn_epsilon: float):
    super().__init__()
    bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon, relu=False)
    self.shortcut = (ConvBN(in_channels, features, 1, **bn) if in_channels != features
                     else None)
    self.convs = nn.ModuleList(ConvBN(in_channels if j == 0 else features, features, m, **bn)
                               for j in range(num_convs))
    self.dropout = nn.Dropout(dropout_rate)
    self.se = SqueezeExcitation(features, amplifying_ratio) if use_se else None
    self.pool = nn.MaxPool1d(m, stride=m)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    shortcut = self.shortcut(x) if self.shortcut is not None else x
    for j, conv in enumerate(self.convs):
      if j > 0:
        x = self.dropout(F.relu(x))
      x = conv(x)
    if self.se is not None:
      x = self.se(x)
    return self.pool(F.relu(shortcut + x))


class ReSEMirror(nn.Module):
  """``models.resemul.SampleCNNBlocks`` (papers.md 6.2): conv0, ``n`` blocks, global max of the
  last block (or the last ``multi_level_blocks``), head Dense + BN + ReLU (= embedding),
  dropout, logits. ``pool_impl``: as ``SampleCNNMirror``'s (Flax only, same numbers)."""

  family = "resemul"

  def __init__(self, num_outputs: int = 50, block: str = "se", m: int = 3, n: int = 9,
               init_features: int = 128, channels: Optional[Sequence[int]] = None,
               amplifying_ratio: float = 16.0, block_dropout_rate: float = 0.2,
               multi_level: bool = True, multi_level_blocks: int = 3,
               head_width: Optional[int] = None, dropout_rate: float = 0.5,
               first_padding: str = "VALID", check_length: bool = True,
               bn_momentum: float = 0.99, bn_epsilon: float = 1e-3, pool_impl: str = "auto"):
    super().__init__()
    self.kwargs = constructor_fields(locals())
    channels = tuple(channels or resemul_channels(n, init_features))
    if len(channels) != n + 1:
      raise ValueError(f"channels needs n + 1 = {n + 1} entries, got {len(channels)}")
    if block not in BLOCK_STRUCTURE:
      raise ValueError(f"no PyTorch block {block!r}; mirrored: {sorted(BLOCK_STRUCTURE)}")
    num_convs, use_se = BLOCK_STRUCTURE[block]
    self.m, self.n, self.check_length = m, n, check_length
    self.input_length = sample_cnn_input_length(m, n)
    self.levels = multi_level_blocks if multi_level else 1
    bn = dict(bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.conv0 = ConvBN(1, channels[0], m, stride=m, padding=first_padding, **bn)
    blocks = []
    for i in range(n):
      if num_convs == 0:
        blocks.append(PlainBlock(channels[i], channels[i + 1], m, use_se, amplifying_ratio, **bn))
      else:
        blocks.append(ResidualBlock(channels[i], channels[i + 1], m, num_convs, use_se,
                                    amplifying_ratio, block_dropout_rate, **bn))
    self.blocks = nn.ModuleList(blocks)
    pooled = sum(channels[-self.levels:])
    self.head_dense = nn.Linear(pooled, head_width or pooled)
    self.head_bn = nn.BatchNorm1d(head_width or pooled, eps=bn_epsilon, momentum=1 - bn_momentum)
    self.dropout = nn.Dropout(dropout_rate)
    self.logits = nn.Linear(head_width or pooled, num_outputs)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    x = _channels_first(audio)
    if self.check_length:
      _check_length(x, self.input_length, f"resemul m={self.m}, n={self.n}")
    x = self.conv0(x)
    outputs = []
    for block in self.blocks:
      x = block(x)
      outputs.append(x)
    pooled = torch.cat([level.amax(dim=-1) for level in outputs[-self.levels:]], dim=-1)
    embedding = F.relu(self.head_bn(self.head_dense(pooled)))
    return {"logits": self.logits(self.dropout(embedding)), "embedding": embedding}


class SampleLevelFixedInputMirror(ReSEMirror):
  """``models.sample_level_fixed_input.SampleLevelFixedInput`` (paper 6, papers.md 7.2): the
  ReSE mirror on ``input_samples`` samples (22,050 = 1 s at 22,050 Hz) with a 'same' conv0."""

  family = "sample_level_fixed_input"

  def __init__(self, input_samples: int = 22050, first_padding: str = "SAME", **fields):
    super().__init__(first_padding=first_padding, **fields)
    self.kwargs = dict(self.kwargs, input_samples=input_samples)
    self.input_length = int(input_samples)


class MelFrontend(nn.Module):
  """Raw audio ``[batch, 1, samples]`` -> log-mel ``[batch, n_mels, frames]``: the
  ``models.branches.MelInput`` front end (``frontends.mel.mel_spectrogram``; papers.md 1.3)
  with ``power`` 1 or 2 and ``log`` ``"log10_1p"``, ``"log"``, ``"db"`` (ref 1, librosa's
  ``amin``, top 80 dB per example) or ``"none"``, then ``(x - mel_mean) / mel_std``."""

  def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, center: bool,
               pad_mode: str, power: float, log: str, log_scale: float,
               mel_mean: Optional[float], mel_std: Optional[float]):
    super().__init__()
    if log not in ("log10_1p", "log", "db", "none") or (log == "db" and power not in (1, 2)):
      raise ValueError(f"the PyTorch mel front end has no log={log!r} with power={power}")
    self.register_buffer("window", torch.from_numpy(hann_window(n_fft).astype(np.float32)))
    self.register_buffer("mel_filterbank",
                         torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)))
    n = np.arange(n_fft)[None, :]
    k = np.arange(n_fft // 2 + 1)[:, None]
    angle = 2.0 * np.pi * ((n * k) % n_fft) / n_fft
    basis = np.concatenate([np.cos(angle), -np.sin(angle)], axis=0)  # [2 * bins, n_fft]
    self.register_buffer("dft", torch.from_numpy(basis.astype(np.float32)), persistent=False)
    self.n_fft, self.hop_length, self.center, self.pad_mode = n_fft, hop_length, center, pad_mode
    self.power, self.log, self.log_scale = float(power), log, log_scale
    self.mel_mean, self.mel_std = mel_mean, mel_std

  def compress(self, mel: torch.Tensor) -> torch.Tensor:
    """The ``log`` compression of ``[batch, frames, n_mels]``."""
    if self.log == "log10_1p":
      return torch.log10(1.0 + self.log_scale * mel)
    if self.log == "log":
      return torch.log(mel + 1e-6)
    if self.log == "db":  # power_to_db(S) or amplitude_to_db(S) = power_to_db(S**2), ref 1.
      power = mel if self.power == 2.0 else mel * mel
      db = 10.0 * torch.log10(torch.clamp(power, min=1e-10))
      return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)
    return mel

  def forward(self, audio: torch.Tensor) -> torch.Tensor:
    x = audio
    if self.center:
      x = F.pad(x, (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
    kernel = (self.dft * self.window).unsqueeze(1)  # [2 * bins, 1, n_fft]
    real, imag = F.conv1d(x, kernel, stride=self.hop_length).chunk(2, dim=1)
    spec = real * real + imag * imag  # power, [batch, bins, frames]
    if self.power == 1.0:
      spec = torch.sqrt(spec)
    elif self.power != 2.0:
      spec = spec ** (self.power / 2.0)
    mel = self.compress(torch.matmul(spec.transpose(1, 2), self.mel_filterbank))
    if self.mel_mean is not None:
      mel = mel - self.mel_mean
    if self.mel_std is not None:
      mel = mel / self.mel_std
    return mel.transpose(1, 2)


class _MelMirror(nn.Module):
  """Front-end fields shared by the mel mirrors (``models.branches.MelInput``).

  A mel mirror's ``__init__`` starts with ``super().__init__(locals())``: its arguments, the
  front-end fields in ``**frontend`` completed from ``_MEL_DEFAULTS`` (overridden by the class'
  ``FRONTEND_DEFAULTS``), become ``self.kwargs``, and ``self.frontend`` is built from them."""

  FRONTEND_DEFAULTS: dict = {}

  def __init__(self, arguments: dict):
    super().__init__()
    frontend = dict(_MEL_DEFAULTS, **self.FRONTEND_DEFAULTS)
    frontend.update(arguments.get("frontend", {}))
    self.kwargs = constructor_fields(dict(arguments, frontend=frontend))
    self.num_frames = arguments["num_frames"]
    self.input_length = samples_for_frames(self.num_frames, frontend["n_fft"],
                                           frontend["hop_length"], frontend["center"])
    self.frontend = MelFrontend(**frontend, mel_mean=arguments["mel_mean"],
                                mel_std=arguments["mel_std"])

  def conv_stack(self, channels: Sequence[int], kernel_sizes: Sequence[int], bn_momentum: float,
                 bn_epsilon: float) -> tuple[nn.ModuleList, int]:
    """1-D conv + BN + ReLU layers on the mel bins as channels -> ``(layers, last width)``."""
    cin, convs = self.frontend.mel_filterbank.shape[1], []
    for c, k in zip(channels, kernel_sizes):
      convs.append(ConvBN(cin, c, k, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon))
      cin = c
    return nn.ModuleList(convs), cin

  def mel(self, audio: torch.Tensor) -> torch.Tensor:
    x = _channels_first(audio)
    _check_length(x, self.input_length, f"{type(self).__name__} num_frames={self.num_frames}")
    return self.frontend(x)


_MEL_DEFAULTS = dict(sample_rate=22050, n_fft=1024, hop_length=512, n_mels=128, center=False,
                     pad_mode="reflect", power=1.0, log="log10_1p", log_scale=10.0)


class MelDCNNMirror(_MelMirror):
  """``models.mel_cnn.MelDCNN`` (papers.md 5.2): conv + BN + ReLU (+ MaxPool) per layer, global
  average (= embedding), dropout, dense. ``fft`` is accepted and ignored (see module doc)."""

  family = "mel_dcnn"

  def __init__(self, num_outputs: int = 1000, channels: Sequence[int] = (128, 128, 128, 128, 256),
               kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1),
               pool_sizes: Sequence[int] = (4, 4, 4, 2, 1), dropout_rate: float = 0.0,
               bn_momentum: float = 0.99, bn_epsilon: float = 1e-3, num_frames: int = 129,
               mel_mean: Optional[float] = PAPER_MEL_MEAN, mel_std: Optional[float] = PAPER_MEL_STD,
               fft: str = "rfft", **frontend):
    super().__init__(locals())
    self.convs, cin = self.conv_stack(channels, kernel_sizes, bn_momentum, bn_epsilon)
    self.pool_sizes = tuple(pool_sizes)
    self.dropout = nn.Dropout(dropout_rate)
    self.dense = nn.Linear(cin, num_outputs)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    x = self.mel(audio)
    for conv, p in zip(self.convs, self.pool_sizes):
      x = conv(x)
      if p > 1:
        x = F.max_pool1d(x, p, p)
    embedding = x.mean(dim=-1)
    return {"logits": self.dense(self.dropout(embedding)), "embedding": embedding}


class MelFrameCNNMirror(_MelMirror):
  """``models.mel_cnn.MelFrameCNN`` (papers.md 3.1): [MaxPool ->] conv + BN + ReLU per layer,
  global max of each layer (``multi_level``; the last = embedding), dropout, [hidden,] dense."""

  family = "mel_frame_cnn"

  def __init__(self, num_frames: int = 27, num_outputs: int = 50,
               channels: Optional[Sequence[int]] = None, kernel_size: int = 3,
               pool_size: int = 3, hidden_units: int = 0, dropout_rate: float = 0.5,
               bn_momentum: float = 0.99, bn_epsilon: float = 1e-3,
               mel_mean: Optional[float] = PAPER_MEL_MEAN, mel_std: Optional[float] = PAPER_MEL_STD,
               fft: str = "rfft", **frontend):
    super().__init__(locals())
    channels = tuple(channels or (128,) * frame_cnn_num_convs(num_frames))
    self.convs, cin = self.conv_stack(channels, (kernel_size,) * len(channels), bn_momentum,
                                      bn_epsilon)
    self.pool_size = pool_size
    self.dropout = nn.Dropout(dropout_rate)
    self.hidden = nn.Linear(cin, hidden_units) if hidden_units else None
    self.dense = nn.Linear(hidden_units or cin, num_outputs)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    x = self.mel(audio)
    levels = []
    for i, conv in enumerate(self.convs):
      if i > 0:
        x = F.max_pool1d(x, self.pool_size, self.pool_size)
      x = conv(x)
      levels.append(x.amax(dim=-1))
    embedding = levels[-1]
    h = self.dropout(embedding)
    if self.hidden is not None:
      h = F.relu(self.hidden(h))
    return {"logits": self.dense(h), "embedding": embedding,
            "multi_level": torch.cat(levels, dim=-1)}


_ACTIVATIONS = {"elu": F.elu, "relu": F.relu}


def pad_same_2d(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
  """``[batch, C, time, mel]`` padded as XLA's 'SAME' for a square ``kernel`` and ``stride``
  (``same_padding`` per axis; ``value`` -inf for max-pools)."""
  time, mel = same_padding(x.shape[-2], kernel, stride), same_padding(x.shape[-1], kernel, stride)
  return F.pad(x, (*mel, *time), value=value)


class ConvBN2D(nn.Module):
  """Conv2d ('same', ``stride``) + BatchNorm2d + activation on ``[batch, C, time, mel]``."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: str,
               bn_momentum: float, bn_epsilon: float, stride: int = 1):
    super().__init__()
    if activation not in _ACTIVATIONS:
      raise ValueError(f"no PyTorch activation {activation!r}; mirrored: {sorted(_ACTIVATIONS)}")
    self.kernel_size, self.stride, self.activation = kernel_size, stride, _ACTIVATIONS[activation]
    # Symmetric 'same' padding (odd kernel, stride 1) goes into the conv; the rest is F.pad.
    self.native_pad = kernel_size % 2 == 1 and stride == 1
    self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                          padding=(kernel_size - 1) // 2 if self.native_pad else 0)
    self.bn = nn.BatchNorm2d(out_channels, eps=bn_epsilon, momentum=1.0 - bn_momentum)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if not self.native_pad:
      x = pad_same_2d(x, self.kernel_size, self.stride)
    return self.activation(self.bn(self.conv(x)))


class MelCNN2DMirror(_MelMirror):
  """``models.mel_cnn.MelCNN2D`` (Choi et al.'s FCN-4, papers.md 2.6): [input BN,] 2-D conv +
  BN + activation + max-pool (time, mel) per layer, global max (= embedding), dropout, dense."""

  family = "mel_cnn2d"
  FRONTEND_DEFAULTS = dict(sample_rate=12000, n_fft=512, hop_length=256, n_mels=96,
                           center=True, power=2.0, log="db")

  def __init__(self, num_outputs: int = 50, channels: Sequence[int] = (128, 384, 768, 2048),
               pools_mel_time: Sequence[Sequence[int]] = ((2, 4), (4, 5), (3, 8), (4, 8)),
               kernel_size: int = 3, activation: str = "elu", input_batchnorm: bool = True,
               dropout_rate: float = 0.5, bn_momentum: float = 0.99, bn_epsilon: float = 1e-3,
               num_frames: int = 1366, mel_mean: Optional[float] = None,
               mel_std: Optional[float] = None, fft: str = "rfft", **frontend):
    super().__init__(locals())
    self.input_bn = (nn.BatchNorm2d(1, eps=bn_epsilon, momentum=1.0 - bn_momentum)
                     if input_batchnorm else None)
    cin, convs = 1, []
    for c in channels:
      convs.append(ConvBN2D(cin, c, kernel_size, activation, bn_momentum, bn_epsilon))
      cin = c
    self.convs = nn.ModuleList(convs)
    self.pools = tuple((int(t), int(m)) for m, t in pools_mel_time)  # (time, mel)
    self.dropout = nn.Dropout(dropout_rate)
    self.dense = nn.Linear(cin, num_outputs)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    x = self.mel(audio).transpose(1, 2).unsqueeze(1)  # [batch, 1, frames, n_mels]
    if self.input_bn is not None:
      x = self.input_bn(x)
    for conv, pool in zip(self.convs, self.pools):
      x = F.max_pool2d(conv(x), pool, pool)
    embedding = x.amax(dim=(2, 3))
    return {"logits": self.dense(self.dropout(embedding)), "embedding": embedding}


class InceptionStride(nn.Module):
  """``models.inception.StrideModule`` on ``[batch, C, time, mel]``: ``b1x1`` (1x1, stride 2),
  ``dbl_1`` -> ``dbl_2`` -> ``dbl_3`` (1x1, 3x3, 3x3 stride 2), 3x3 stride-2 'same' max-pool;
  concatenated in that order."""

  def __init__(self, in_channels: int, widths: Sequence[int], bn_momentum: float,
               bn_epsilon: float):
    super().__init__()
    a, r, d = widths
    unit = dict(activation="relu", bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.b1x1 = ConvBN2D(in_channels, a, 1, stride=2, **unit)
    self.dbl_1 = ConvBN2D(in_channels, r, 1, **unit)
    self.dbl_2 = ConvBN2D(r, d, 3, **unit)
    self.dbl_3 = ConvBN2D(d, d, 3, stride=2, **unit)
    self.out_channels = a + d + in_channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    pool = F.max_pool2d(pad_same_2d(x, 3, 2, float("-inf")), 3, 2)
    return torch.cat([self.b1x1(x), self.dbl_3(self.dbl_2(self.dbl_1(x))), pool], dim=1)


class InceptionNormal(nn.Module):
  """``models.inception.NormalModule``: ``b1x1``; ``b5x5_1`` -> ``b5x5_2``; ``dbl_1`` ->
  ``dbl_2`` -> ``dbl_3``; 3x3 average pool (stride 1, padding not counted) -> ``pool_proj``."""

  def __init__(self, in_channels: int, widths: Sequence[int], bn_momentum: float,
               bn_epsilon: float):
    super().__init__()
    p, r5, f, r3, d, q = widths
    unit = dict(activation="relu", bn_momentum=bn_momentum, bn_epsilon=bn_epsilon)
    self.b1x1 = ConvBN2D(in_channels, p, 1, **unit)
    self.b5x5_1 = ConvBN2D(in_channels, r5, 1, **unit)
    self.b5x5_2 = ConvBN2D(r5, f, 5, **unit)
    self.dbl_1 = ConvBN2D(in_channels, r3, 1, **unit)
    self.dbl_2 = ConvBN2D(r3, d, 3, **unit)
    self.dbl_3 = ConvBN2D(d, d, 3, **unit)
    self.pool_proj = ConvBN2D(in_channels, q, 1, **unit)
    self.out_channels = p + f + d + q

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    pool = F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)
    return torch.cat([self.b1x1(x), self.b5x5_2(self.b5x5_1(x)),
                      self.dbl_3(self.dbl_2(self.dbl_1(x))), self.pool_proj(pool)], dim=1)


class InceptionBlock(nn.Module):
  """One block of ``models.inception.InceptionNet``: ``stride`` then ``normal``."""

  def __init__(self, in_channels: int, stride_branches: Sequence[int],
               normal_branches: Sequence[int], bn_momentum: float, bn_epsilon: float):
    super().__init__()
    self.stride = InceptionStride(in_channels, stride_branches, bn_momentum, bn_epsilon)
    self.normal = InceptionNormal(self.stride.out_channels, normal_branches, bn_momentum,
                                  bn_epsilon)
    self.out_channels = self.normal.out_channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.normal(self.stride(x))


class InceptionMirror(_MelMirror):
  """``models.inception.InceptionNet`` (papers 13/14, papers.md 14.2): log-mel as a one-channel
  image, [input BN,] ``stem`` (5x5 conv + BN + ReLU, 2x2 max-pool), ``blocks.i`` (stride then
  normal Inception module), ``embed`` (1x1 conv + ReLU), global average, [L2 normalisation]
  (= embedding), ``dense`` -> logits."""

  family = "inception"

  def __init__(self, num_outputs: int = 50, stem_features: int = 64, num_blocks: int = 6,
               stride_branches: Sequence[int] = (48, 64, 96),
               normal_branches: Sequence[int] = (64, 48, 64, 64, 96, 32),
               embed_features: int = 256, input_batchnorm: bool = False, normalize: bool = True,
               bn_momentum: float = 0.99, bn_epsilon: float = 1e-3, num_frames: int = 129,
               mel_mean: Optional[float] = PAPER13_MEL_MEAN,
               mel_std: Optional[float] = PAPER13_MEL_STD, fft: str = "rfft", **frontend):
    super().__init__(locals())
    self.input_bn = (nn.BatchNorm2d(1, eps=bn_epsilon, momentum=1.0 - bn_momentum)
                     if input_batchnorm else None)
    self.stem = ConvBN2D(1, stem_features, 5, "relu", bn_momentum, bn_epsilon)
    cin, blocks = stem_features, []
    for _ in range(num_blocks):
      blocks.append(InceptionBlock(cin, stride_branches, normal_branches, bn_momentum,
                                   bn_epsilon))
      cin = blocks[-1].out_channels
    self.blocks = nn.ModuleList(blocks)
    self.embed = nn.Conv2d(cin, embed_features, 1)
    self.normalize = normalize
    self.dense = nn.Linear(embed_features, num_outputs)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    x = self.mel(audio).transpose(1, 2).unsqueeze(1)  # [batch, 1, frames, n_mels]
    if self.input_bn is not None:
      x = self.input_bn(x)
    x = F.max_pool2d(self.stem(x), 2, 2)
    for block in self.blocks:
      x = block(x)
    embedding = F.relu(self.embed(x)).mean(dim=(2, 3))
    if self.normalize:
      embedding = _l2_normalize(embedding)
    return {"logits": self.dense(embedding), "embedding": embedding}


class BranchConv(nn.Module):
  """One conv of ``models.branches.MelConvBranch``: Conv1d ('same') [+ BatchNorm1d, Flax's
  defaults momentum 0.9, epsilon 1e-5]; sub-modules ``conv`` [, ``bn``]."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool):
    super().__init__()
    self.kernel_size = kernel_size
    self.conv = nn.Conv1d(in_channels, out_channels, kernel_size)
    self.bn = nn.BatchNorm1d(out_channels, eps=1e-5, momentum=0.1) if batch_norm else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.conv(F.pad(x, same_padding(x.shape[-1], self.kernel_size, 1)))
    return self.bn(x) if self.bn is not None else x


class MelConvBranchMirror(nn.Module):
  """``models.branches.MelConvBranch`` on ``[batch, n_mels, frames]``: per layer conv [+ BN],
  ReLU (not after the last unless ``last_relu``), MaxPool(p); global average -> ``[batch, C]``."""

  def __init__(self, in_channels: int, channels: Sequence[int], kernel_sizes: Sequence[int],
               pool_sizes: Sequence[int], last_relu: bool, batch_norm: bool):
    super().__init__()
    if not len(channels) == len(kernel_sizes) == len(pool_sizes):
      raise ValueError("channels, kernel_sizes and pool_sizes need one entry per conv layer")
    cins = (in_channels,) + tuple(channels[:-1])
    self.convs = nn.ModuleList(BranchConv(cin, c, k, batch_norm)
                               for cin, c, k in zip(cins, channels, kernel_sizes))
    self.pool_sizes, self.last_relu = tuple(pool_sizes), last_relu

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    last = len(self.convs) - 1
    for i, (conv, p) in enumerate(zip(self.convs, self.pool_sizes)):
      x = conv(x)
      if i < last or self.last_relu:
        x = F.relu(x)
      if p > 1:
        x = F.max_pool1d(x, p, p)
    return x.mean(dim=-1)


class DCUEMirror(_MelMirror):
  """``models.dcue.DCUE``'s audio side (papers.md 8.3): mel front end, ``audio`` branch,
  ``item_projection`` -> ``embedding`` (item head 0). The user branch (``num_users``,
  ``user_hidden``) is not exported; ``multi``'s extra item heads are not either."""

  family = "dcue"

  def __init__(self, num_users: int = 1, num_frames: int = 130,
               channels: Sequence[int] = (128, 256, 256, 256, 256),
               kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1),
               pool_sizes: Sequence[int] = (4, 4, 4, 2, 1), dim: int = 256,
               user_hidden: int = 300, multi: bool = False, last_relu: bool = True,
               batch_norm: bool = False, mel_mean: Optional[float] = PAPER_MEL_MEAN,
               mel_std: Optional[float] = PAPER_MEL_STD, fft: str = "rfft", **frontend):
    super().__init__(locals())
    self.audio = MelConvBranchMirror(self.kwargs["n_mels"], channels, kernel_sizes, pool_sizes,
                                     last_relu, batch_norm)
    self.item_projection = nn.Linear(channels[-1], dim)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    return {"embedding": self.item_projection(self.audio(self.mel(audio)))}


class ZeroShotMirror(_MelMirror):
  """``models.zero_shot.ZeroShotEmbedding``'s audio branch (papers.md 11.3): mel front end,
  ``audio`` branch (last conv linear, no BatchNorm) -> ``embedding``. The label branch needs
  the side-information vectors and is not exported."""

  family = "zero_shot"

  def __init__(self, num_frames: int = 130, channels: Sequence[int] = (128, 128, 128, 128, 100),
               kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1),
               pool_sizes: Sequence[int] = (4, 4, 4, 2, 1),
               mel_mean: Optional[float] = PAPER_MEL_MEAN, mel_std: Optional[float] = PAPER_MEL_STD,
               fft: str = "rfft", **frontend):
    super().__init__(locals())
    self.audio = MelConvBranchMirror(self.kwargs["n_mels"], channels, kernel_sizes, pool_sizes,
                                     last_relu=False, batch_norm=False)
    reset_parameters(self)

  def forward(self, audio: torch.Tensor) -> dict:
    return {"embedding": self.audio(self.mel(audio))}


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
  """``ops.losses.l2_normalize``: ``x / max(||x||, 1e-12)`` over the last axis."""
  return x * torch.rsqrt(torch.clamp((x * x).sum(dim=-1, keepdim=True), min=1e-24))


class EmbeddingNetMirror(nn.Module):
  """``models.embedding.EmbeddingNet`` (papers 4, 9, 13, 14): the backbone's mirror
  (``backbone``; its ``embedding`` = ``features``), ``projection`` (``embedding_dim`` > 0) ->
  ``embedding``; CSN ``masks`` (fixed disjoint, or ``relu(mask_weights)``); the head: ``head``
  (dense), ``heads.g`` (disentangled dense) or ``proxies`` (cosine / temperature)."""

  family = "embedding_net"

  def __init__(self, backbone: str = "mel_dcnn", backbone_kwargs: Optional[dict] = None,
               sample_rate: int = 22050, embedding_dim: int = 0, num_subspaces: int = 0,
               mask_mode: str = "fixed", head: str = "none", disentangled: bool = False,
               normalize: bool = True, num_outputs: int = 0,
               head_groups: Sequence[Sequence[int]] = (), proxy_temperature: float = 0.1):
    super().__init__()
    self.kwargs = constructor_fields(locals())
    self.backbone = build_mirror(*backbone_fields(backbone, backbone_kwargs, sample_rate))
    self.input_length = self.backbone.input_length
    with torch.no_grad():
      width = self.backbone(torch.zeros(1, self.input_length, 1))["embedding"].shape[-1]
    dim = embedding_dim or width
    self.projection = nn.Linear(width, embedding_dim) if embedding_dim else None
    self.mask_weights = (nn.Parameter(torch.zeros(num_subspaces, dim))
                         if num_subspaces and mask_mode == "learned" else None)
    if num_subspaces and mask_mode != "learned":
      self.register_buffer("fixed_masks", torch.from_numpy(disjoint_masks(num_subspaces, dim)),
                           persistent=False)
    self.head_kind, self.disentangled, self.normalize = head, disentangled, normalize
    self.num_subspaces, self.proxy_temperature = num_subspaces, proxy_temperature
    self.groups = [list(g) for g in head_groups]
    self.proxies = (nn.Parameter(torch.randn(num_outputs, dim)) if head == "proxy" else None)
    self.head = (nn.Linear(dim, num_outputs) if head == "dense" and not disentangled else None)
    self.heads = (nn.ModuleList(nn.Linear(dim, len(g)) for g in self.groups)
                  if head == "dense" and disentangled else None)
    order = np.argsort(np.concatenate([np.asarray(g, np.int64) for g in self.groups])
                       if self.groups else np.zeros(0, np.int64))
    self.register_buffer("order", torch.from_numpy(order), persistent=False)
    for module in (self.projection, self.head, *(self.heads or ())):
      if module is not None:
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)

  def _norm(self, x: torch.Tensor) -> torch.Tensor:
    return _l2_normalize(x) if self.normalize else x

  def forward(self, audio: torch.Tensor) -> dict:
    features = self.backbone(audio)["embedding"]
    embedding = self.projection(features) if self.projection is not None else features
    out = {"embedding": embedding, "features": features}
    masks = None
    if self.num_subspaces:
      masks = (F.relu(self.mask_weights) if self.mask_weights is not None
               else self.fixed_masks)
      out["masks"] = masks
    if self.head_kind == "none":
      return out
    if not self.disentangled:
      if self.head is not None:
        out["logits"] = self.head(self._norm(embedding))
      else:
        out["logits"] = (_l2_normalize(embedding) @ _l2_normalize(self.proxies).T
                         / self.proxy_temperature)
      return out
    columns = []
    for g, group in enumerate(self.groups):
      sub = embedding * masks[g]
      if self.heads is not None:
        columns.append(self.heads[g](self._norm(sub)))
      else:
        proxies = self.proxies[group] * masks[g]
        columns.append(_l2_normalize(sub) @ _l2_normalize(proxies).T / self.proxy_temperature)
    out["logits"] = torch.cat(columns, dim=-1)[:, self.order]
    return out


MIRRORS = {cls.family: cls for cls in (SampleCNNMirror, ReSEMirror, SampleLevelFixedInputMirror,
                                        MelDCNNMirror, MelFrameCNNMirror, MelCNN2DMirror,
                                        InceptionMirror, EmbeddingNetMirror, DCUEMirror,
                                        ZeroShotMirror)}


def backbone_fields(backbone: str, backbone_kwargs: Optional[dict],
                    sample_rate: int) -> tuple[str, dict]:
  """``(family, fields)`` of an ``embedding_net``'s backbone as the Flax model builds it
  (``EmbeddingNet.make_backbone``): its ``backbone_kwargs``, with the net's ``sample_rate`` and
  ``num_outputs=1`` where the backbone has such a field and they are not given."""
  if backbone not in MIRRORS:
    raise ValueError(f"no PyTorch mirror for backbone {backbone!r}; mirrored: {sorted(MIRRORS)}")
  cls, fields = MIRRORS[backbone], dict(backbone_kwargs or {})
  for name, value in (("sample_rate", sample_rate), ("num_outputs", 1)):
    if name in constructor_defaults(cls):
      fields.setdefault(name, value)
  return backbone, fields


def constructor_defaults(cls) -> dict:
  """Every field a mirror class takes and its default (a mel mirror's front-end fields too)."""
  defaults = {}
  for klass in reversed(cls.__mro__):
    if klass in (nn.Module, object) or "__init__" not in vars(klass):
      continue
    for name, p in inspect.signature(klass.__init__).parameters.items():
      if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
        defaults[name] = p.default
    if issubclass(klass, _MelMirror) and klass is not _MelMirror:
      defaults.update(_MEL_DEFAULTS, **klass.FRONTEND_DEFAULTS)
  defaults.pop("arguments", None)
  return defaults


def build_mirror(family: str, kwargs: dict) -> nn.Module:
  """The PyTorch mirror of ``family`` built from the Flax model's fields (eval mode)."""
  if family not in MIRRORS:
    raise ValueError(f"no PyTorch mirror for model {family!r}; mirrored: {sorted(MIRRORS)}")
  return MIRRORS[family](**{k: as_tuples(v) for k, v in kwargs.items()}).eval()


@torch.no_grad()
def load_flat(model: nn.Module, flat: dict[str, np.ndarray]) -> None:
  """Copies ``{name: array}`` (a safetensors export's tensors) into ``model``.

  Every parameter and running statistic must be present and of the right shape; BatchNorm's
  ``num_batches_tracked`` (unused in eval mode) is not part of the layout.
  """
  state = model.state_dict()
  expected = {k for k in state if not k.endswith("num_batches_tracked")}
  if set(flat) != expected:
    raise KeyError(f"tensor names differ from the mirror's: missing "
                   f"{sorted(expected - set(flat))[:5]}, unexpected {sorted(set(flat) - expected)[:5]}")
  for name, array in flat.items():
    if tuple(state[name].shape) != tuple(array.shape):
      raise ValueError(f"{name}: shape {tuple(array.shape)} differs from the mirror's "
                       f"{tuple(state[name].shape)}")
    state[name].copy_(torch.from_numpy(np.array(array, np.float32)))


def num_params(model: nn.Module) -> int:
  """Trainable parameters (BatchNorm running statistics excluded, as in Flax ``params``)."""
  return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_numpy(model: nn.Module, audio: np.ndarray) -> dict[str, np.ndarray]:
  """Eval-mode forward of float32 numpy ``[batch, time, 1]`` -> numpy outputs."""
  model.eval()
  with torch.no_grad():
    out = model(torch.from_numpy(np.ascontiguousarray(audio, np.float32)))
  return {k: v.numpy() for k, v in out.items()}


# --- Reading an export (torch + numpy + safetensors) ----------------------------------------


def read_header(metadata: Optional[dict], path: str = "the file") -> dict:
  """A safetensors export's ``__metadata__`` (strings) -> ``{"family", "kwargs", "sample_rate",
  "input_length", "tag_names"}``; ``ValueError`` for a file of another format."""
  if not metadata or metadata.get("format") != FORMAT:
    raise ValueError(f"{path} is not a musicrep-jax export (header format "
                     f"{(metadata or {}).get('format')!r}, expected {FORMAT!r})")
  return {"family": metadata["family"], "kwargs": json.loads(metadata["kwargs"]),
          "sample_rate": int(metadata["sample_rate"]),
          "input_length": int(metadata["input_length"]),
          "tag_names": tuple(json.loads(metadata.get("tag_names", "[]")))}


def load(path: str | os.PathLike) -> nn.Module:
  """The eval-mode model of a model folder (``model.safetensors`` inside) or of a
  ``.safetensors`` export file, its weights loaded. The module also carries ``sample_rate`` (Hz
  the audio must have), ``input_length`` (samples per example), ``tag_names`` (the ``logits``
  columns; empty when unnamed) and ``header`` (the file's header, parsed)."""
  from safetensors import safe_open

  path = os.fspath(path)
  if os.path.isdir(path):
    path = os.path.join(path, WEIGHTS_NAME)
  with safe_open(path, framework="numpy") as f:
    header = read_header(f.metadata(), path)
    tensors = {name: f.get_tensor(name) for name in f.keys()}
  model = build_mirror(header["family"], header["kwargs"])
  load_flat(model, tensors)
  model.sample_rate, model.tag_names, model.header = (header["sample_rate"],
                                                      header["tag_names"], header)
  return model
