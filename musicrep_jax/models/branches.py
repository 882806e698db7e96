"""Parts the mel models share: the on-device log-mel input and the Conv1D audio branch.

* ``MelInput``: the front-end fields and ``mel()`` of every mel model (papers.md 1.3): raw audio
  ``[batch, input_length, 1]`` -> float32 log-mel ``[batch, num_frames, n_mels]`` computed in the
  model (``musicrep_jax.frontends.mel``). Subclassed by ``mel_cnn`` (papers 2, 4 and the 2-D
  baseline), ``dcue`` (paper 7) and ``zero_shot`` (papers 10-11). Not registered.
* ``MelConvBranch``: the audio branch of papers 7 and 10 (papers.md 8.3, 11.3): Conv1D + ReLU +
  MaxPool blocks over time with the mel bins as channels, no BatchNorm (optional), a last 1x1
  conv, global average pooling. Paper 10: channels (128, 128, 128, 128, 100), kernels
  (4, 4, 4, 2, 1), pools (4, 4, 4, 2, 1), last conv linear, ``he_uniform``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from musicrep_jax.frontends.mel import (PAPER_MEL_MEAN, PAPER_MEL_STD, mel_spectrogram,
                                        samples_for_frames)
from musicrep_jax.models.sample_cnn import max_pool_time


class MelInput(nn.Module):
  """Shared front-end fields of the mel models (papers.md 1.3). Not registered.

  ``power`` 1 (magnitude) and ``log`` ``"log10_1p"`` are the group's front end; ``MelCNN2D``
  uses Choi et al.'s power mel in dB (``power=2, log="db"``, mel mean/std ``None``).
  """

  num_frames: int = 129
  sample_rate: int = 22050
  n_fft: int = 1024
  hop_length: int = 512
  n_mels: int = 128
  center: bool = False
  pad_mode: str = "reflect"
  power: float = 1.0
  log: str = "log10_1p"
  log_scale: float = 10.0
  mel_mean: Optional[float] = PAPER_MEL_MEAN
  mel_std: Optional[float] = PAPER_MEL_STD
  fft: str = "rfft"

  @property
  def input_length(self) -> int:
    """Samples per example: ``(num_frames - 1) * hop + (0 if center else n_fft)``."""
    return samples_for_frames(self.num_frames, self.n_fft, self.hop_length, self.center)

  def mel(self, audio: jnp.ndarray) -> jnp.ndarray:
    """``[batch, input_length, 1]`` audio -> float32 ``[batch, num_frames, n_mels]``."""
    if audio.ndim != 3 or audio.shape[1] != self.input_length or audio.shape[2] != 1:
      raise ValueError(
          f"{type(self).__name__} with num_frames={self.num_frames} expects audio "
          f"[batch, {self.input_length}, 1], got {audio.shape}")
    mel = jax.lax.stop_gradient(mel_spectrogram(
        audio.astype(jnp.float32), sample_rate=self.sample_rate, n_fft=self.n_fft,
        hop_length=self.hop_length, center=self.center, pad_mode=self.pad_mode,
        power=self.power, n_mels=self.n_mels, log=self.log, log_scale=self.log_scale,
        mean=self.mel_mean, std=self.mel_std, fft=self.fft))
    assert mel.shape[1] == self.num_frames, (mel.shape, self.num_frames)
    return mel


class MelConvBranch(nn.Module):
  """Conv1D stack on ``[batch, frames, mels]`` -> ``(embedding [batch, channels[-1]], pre-
  activation GAPs of every conv layer [list of [batch, c]])``; ``last_relu`` applies the ReLU
  after the last conv too (paper 7) or not (paper 10); ``batch_norm`` adds BatchNorm after every
  conv (neither paper has it; ``train`` selects batch statistics). ``dtype`` is the compute
  dtype of the convolutions; the GAPs are summed and returned in float32."""

  channels: Sequence[int] = (128, 128, 128, 128, 100)
  kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  pool_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  last_relu: bool = False
  batch_norm: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> tuple:
    if not len(self.channels) == len(self.kernel_sizes) == len(self.pool_sizes):
      raise ValueError("channels, kernel_sizes and pool_sizes need one entry per conv layer")
    pre_gaps = []
    last = len(self.channels) - 1
    for i, (c, k, p) in enumerate(zip(self.channels, self.kernel_sizes, self.pool_sizes)):
      x = nn.Conv(c, (k,), padding="SAME", kernel_init=nn.initializers.he_uniform(),
                  dtype=self.dtype)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      pre_gaps.append(jnp.mean(x, axis=1, dtype=jnp.float32))  # float32: heads feed losses
      if i < last or self.last_relu:
        x = nn.relu(x)
      if p > 1:
        x = max_pool_time(x, p)
    return jnp.mean(x, axis=1, dtype=jnp.float32), pre_gaps
