"""MFCCs with deltas, in JAX, for the i-vector branch of paper 8 (papers.md 9: 20-dim MFCCs).

``mfcc``: the log-mel front end of ``musicrep_jax.frontends.mel`` with power mel and dB
compression (``librosa.power_to_db``, ``top_db`` 80) followed by an orthonormal DCT-II keeping
``n_mfcc`` coefficients: exactly ``librosa.feature.mfcc`` with the same STFT / mel arguments
(checked in tests/test_mfcc.py). ``deltas``: the regression deltas of HTK over ``+-width // 2``
frames, with the first / last ``width // 2`` frames taking the nearest full window's value, which
is ``librosa.feature.delta(order=1, mode="interp")``. Delta-deltas are deltas of deltas (HTK).

Paper 8's MFCC settings beyond "20 dimensions" are [unknown]; ``MfccConfig`` holds the choices
(speech-style 25 ms / 10 ms frames, 40 mel bands, deltas and delta-deltas, per-clip cepstral mean
and variance normalisation), each a config field.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.frontends import mel as mel_lib


@dataclasses.dataclass(frozen=True)
class MfccConfig:
  """MFCC front end. Frame sizes are in samples of the data's sample rate."""

  n_mfcc: int = 20            # papers.md 9 [first page]
  n_mels: int = 40            # [unknown] speech-style choice
  n_fft: int = 512
  win_length: int = 400       # 25 ms at 16 kHz
  hop_length: int = 160       # 10 ms at 16 kHz
  fmin: float = 20.0
  fmax: Optional[float] = None
  delta_order: int = 2        # 0: static only; 1: + deltas; 2: + delta-deltas
  delta_width: int = 9
  cmvn: bool = True           # per-clip mean / variance normalisation over valid frames
  center: bool = True
  pad_mode: str = "constant"  # librosa >= 0.10 default

  @property
  def feature_dim(self) -> int:
    return self.n_mfcc * (1 + self.delta_order)


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
  """Orthonormal DCT-II as a ``[n_in, n_out]`` float32 matrix (``scipy.fft.dct(norm="ortho")``
  keeps the first ``n_out`` rows): ``x @ M`` transforms the last axis."""
  n = np.arange(n_in)[:, None]
  k = np.arange(n_out)[None, :]
  basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
  basis[:, 0] /= np.sqrt(2.0)
  return basis.astype(np.float32)


def mfcc(audio: jnp.ndarray, sample_rate: int, n_mfcc: int = 20, n_mels: int = 40,
         n_fft: int = 512, hop_length: int = 160, win_length: Optional[int] = None,
         fmin: float = 0.0, fmax: Optional[float] = None, center: bool = True,
         pad_mode: str = "constant", top_db: Optional[float] = 80.0) -> jnp.ndarray:
  """Audio ``[batch, samples]`` (or ``[batch, samples, 1]``) -> MFCC ``[batch, frames, n_mfcc]``.

  dB of the power mel spectrogram (per-example ``top_db`` floor, as librosa) then DCT-II ortho.
  """
  log_mel = mel_lib.mel_spectrogram(
      audio, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
      win_length=win_length, center=center, pad_mode=pad_mode, power=2.0, n_mels=n_mels,
      fmin=fmin, fmax=fmax, log="db", top_db=top_db)
  return jnp.matmul(log_mel, jnp.asarray(dct_matrix(n_mels, n_mfcc)),
                    precision=jax.lax.Precision.HIGHEST)


def deltas(features: jnp.ndarray, width: int = 9) -> jnp.ndarray:
  """Regression deltas over time: ``[batch, frames, dim] -> [batch, frames, dim]``.

  ``d[t] = sum_{n=1..h} n (c[t+n] - c[t-n]) / (2 sum n^2)`` with ``h = width // 2`` where the
  window fits; the first / last ``h`` frames repeat the nearest full-window value
  (``librosa.feature.delta(mode="interp")``). Needs ``frames >= width``.
  """
  if width < 3 or width % 2 == 0:
    raise ValueError(f"delta width must be odd and >= 3, got {width}")
  h = width // 2
  frames = features.shape[1]
  if frames < width:
    raise ValueError(f"deltas need at least {width} frames, got {frames}")
  taps = np.arange(-h, h + 1, dtype=np.float32) / (2.0 * np.sum(np.arange(1, h + 1) ** 2))
  valid = sum(float(taps[i]) * features[:, i:frames - 2 * h + i] for i in range(width))
  return jnp.pad(valid, ((0, 0), (h, h), (0, 0)), mode="edge")


def masked_cmvn(features: jnp.ndarray, mask: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
  """Per-example mean / variance normalisation over the valid frames.

  features ``[batch, frames, dim]``, mask ``[batch, frames]`` (bool) -> same shape.
  """
  w = mask.astype(features.dtype)[..., None]
  count = jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1.0)
  mean = jnp.sum(features * w, axis=1, keepdims=True) / count
  var = jnp.sum(jnp.square(features - mean) * w, axis=1, keepdims=True) / count
  return (features - mean) * jax.lax.rsqrt(var + eps)


def num_valid_frames(num_samples, config: MfccConfig):
  """Frames of a clip of ``num_samples`` real samples (same rule as ``frontends.mel``)."""
  return mel_lib.num_frames(num_samples, config.n_fft, config.hop_length, config.center)


@functools.partial(jax.jit, static_argnames=("config", "sample_rate"))
def mfcc_features(audio: jnp.ndarray, num_samples: jnp.ndarray, *, config: MfccConfig,
                  sample_rate: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Zero-padded clips -> (features ``[batch, frames, feature_dim]``, valid mask ``[batch,
  frames]``): MFCC, deltas, delta-deltas, optional CMVN over each clip's valid frames.

  audio ``[batch, padded_samples]``; num_samples ``[batch]`` int, each clip's real length.
  """
  c = config
  static = mfcc(audio, sample_rate, n_mfcc=c.n_mfcc, n_mels=c.n_mels, n_fft=c.n_fft,
                hop_length=c.hop_length, win_length=c.win_length, fmin=c.fmin, fmax=c.fmax,
                center=c.center, pad_mode=c.pad_mode)
  frames = static.shape[1]
  valid = (1 + num_samples // c.hop_length if c.center
           else 1 + (num_samples - c.n_fft) // c.hop_length)
  mask = jnp.arange(frames)[None, :] < valid[:, None]
  parts = [static]
  for _ in range(c.delta_order):
    parts.append(deltas(parts[-1], c.delta_width))
  features = jnp.concatenate(parts, axis=-1)
  if c.cmvn:
    features = masked_cmvn(features, mask)
  return features, mask
