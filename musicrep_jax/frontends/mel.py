"""Log-mel spectrogram front end, pure jnp and jit-able, computed on device (papers.md 1.3).

The papers' offline features (``mp3s_to_mel.py``: 22,050 Hz, ``n_fft=1024``, ``hop_length=512``,
Hann, magnitude, ``librosa.filters.mel(sr, 1024, 128)``, ``log10(1 + 10 * S)``, standardised with
the scalars 0.2262 / 0.2579) are reproduced here inside the model, so the jitted train step turns
raw audio ``[batch, samples(, 1)]`` into ``[batch, frames, n_mels]`` on the accelerator.

Pieces (each a small function, composable by hand):
  * ``hann_window`` (periodic, as ``scipy.signal.get_window('hann', n)`` / librosa);
  * ``mel_filterbank``: numpy, built once, Slaney (librosa default: Slaney mel scale + Slaney area
    normalisation) or HTK scale, with or without normalisation; ``[n_fft // 2 + 1, n_mels]``;
  * ``frame`` / ``stft`` / ``spectrogram``: centre padding (``"reflect"`` as librosa < 0.10, which
    the papers used, or ``"constant"``, librosa >= 0.10's default), ``jnp.fft.rfft`` over frames
    or an explicit real-DFT matmul (``fft="matmul"``, often faster on TPU);
  * ``log10_1p`` / ``log_eps`` / ``power_to_db`` / ``amplitude_to_db``: the compressions used;
  * ``mel_spectrogram``: all of it; ``MelSpectrogram``: the same as a Linen module (no params).

Frames: ``num_frames(samples)`` is ``1 + samples // hop`` with ``center=True`` (1,292 for 30 s at
22,050 Hz; the papers truncate to 1,291) and ``1 + (samples - n_fft) // hop`` without.
"""

from __future__ import annotations

import functools
from typing import Optional, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# papers.md 1.3 / 5.1 [code]: global standardisation scalars of every mel model of the group.
PAPER_MEL_MEAN = 0.22620339
PAPER_MEL_STD = 0.25794547

LOG_KINDS = ("log10_1p", "log", "db", "none")
PAD_MODES = ("reflect", "constant")
FFT_IMPLS = ("rfft", "matmul")


# ---------------------------------------------------------------------------------------------
# Static (numpy) pieces: window, mel scale, filterbank, frame count.


def hann_window(length: int, periodic: bool = True) -> np.ndarray:
  """Hann window -> float64 ``[length]``; periodic (DFT-even) as ``get_window('hann', length)``."""
  if length == 1:
    return np.ones(1)
  denom = length if periodic else length - 1
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / denom)


def hz_to_mel(hz, htk: bool = False) -> np.ndarray:
  """Hz -> mel. HTK: ``2595 log10(1 + f / 700)``. Slaney (Auditory Toolbox, 1998): linear
  ``3 f / 200`` below 1 kHz, logarithmic above with step ``log(6.4) / 27`` per mel."""
  hz = np.asarray(hz, np.float64)
  if htk:
    return 2595.0 * np.log10(1.0 + hz / 700.0)
  f_sp = 200.0 / 3.0
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / f_sp
  logstep = np.log(6.4) / 27.0
  linear = hz / f_sp
  log = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
  return np.where(hz >= min_log_hz, log, linear)


def mel_to_hz(mels, htk: bool = False) -> np.ndarray:
  """Inverse of ``hz_to_mel``."""
  mels = np.asarray(mels, np.float64)
  if htk:
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
  f_sp = 200.0 / 3.0
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / f_sp
  logstep = np.log(6.4) / 27.0
  linear = f_sp * mels
  log = min_log_hz * np.exp(logstep * (np.maximum(mels, min_log_mel) - min_log_mel))
  return np.where(mels >= min_log_mel, log, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: Optional[float] = None, htk: bool = False,
                   norm: Union[str, float, None] = "slaney") -> np.ndarray:
  """Triangular mel filters -> float32 ``[n_fft // 2 + 1, n_mels]`` (apply as ``S @ fb``).

  Defaults equal ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels).T`` (papers.md
  1.3): ``n_mels + 2`` points equally spaced on the mel scale between ``fmin`` and ``fmax``
  (``sample_rate / 2`` if None), triangles over the linear-frequency FFT bins, and
  ``norm="slaney"`` scales each triangle by ``2 / (f[i + 2] - f[i])`` (constant area). ``norm``
  None leaves peak 1; a number p normalises each filter to unit p-norm. ``htk=True`` uses the HTK
  mel scale.
  """
  fmax = sample_rate / 2.0 if fmax is None else float(fmax)
  fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
  mel_points = np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2)
  hz_points = mel_to_hz(mel_points, htk)
  widths = np.diff(hz_points)
  ramps = hz_points[:, None] - fft_freqs[None, :]  # [n_mels + 2, bins]
  lower = -ramps[:-2] / widths[:-1, None]
  upper = ramps[2:] / widths[1:, None]
  weights = np.maximum(0.0, np.minimum(lower, upper))  # [n_mels, bins]
  if norm == "slaney":
    weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
  elif norm is not None:
    if isinstance(norm, str):
      raise ValueError(f"norm must be 'slaney', a number or None, got {norm!r}")
    length = np.sum(np.abs(weights) ** norm, axis=1, keepdims=True) ** (1.0 / norm)
    weights = weights / np.where(length > 0, length, 1.0)
  return weights.T.astype(np.float32)


def num_frames(num_samples: int, n_fft: int = 1024, hop_length: int = 512,
               center: bool = True) -> int:
  """Frames the STFT gives for ``num_samples``: ``1 + num_samples // hop`` with ``center``
  (e.g. 129 frames for 65,536 samples at hop 512), else ``1 + (num_samples - n_fft) // hop``."""
  if center:
    return 1 + num_samples // hop_length
  if num_samples < n_fft:
    raise ValueError(f"{num_samples} samples are fewer than n_fft={n_fft} with center=False")
  return 1 + (num_samples - n_fft) // hop_length


def samples_for_frames(frames: int, n_fft: int = 1024, hop_length: int = 512,
                       center: bool = True) -> int:
  """Fewest samples giving ``frames`` frames (inverse of ``num_frames``): ``(frames - 1) * hop``
  with ``center`` (65,536 for 129 frames at hop 512), else ``(frames - 1) * hop + n_fft``."""
  return (frames - 1) * hop_length + (0 if center else n_fft)


# ---------------------------------------------------------------------------------------------
# Traced (jnp) pieces.


def _as_batch_samples(audio: jnp.ndarray) -> jnp.ndarray:
  """``[batch, samples]`` or ``[batch, samples, 1]`` -> ``[batch, samples]``."""
  if audio.ndim == 3 and audio.shape[-1] == 1:
    return audio[..., 0]
  if audio.ndim != 2:
    raise ValueError(f"audio must be [batch, samples] or [batch, samples, 1], got {audio.shape}")
  return audio


def frame(x: jnp.ndarray, frame_length: int, hop_length: int) -> jnp.ndarray:
  """Overlapping frames ``[batch, samples] -> [batch, frames, frame_length]`` (no padding).

  When ``hop`` divides ``frame_length`` (the papers' 1024 / 512) frames are concatenations of
  adjacent hop-sized chunks (reshape + slices, no gather); otherwise an index gather.
  """
  samples = x.shape[-1]
  frames = 1 + (samples - frame_length) // hop_length
  if frame_length % hop_length == 0:
    k = frame_length // hop_length
    chunks = x[:, :(frames + k - 1) * hop_length].reshape(x.shape[0], frames + k - 1, hop_length)
    return jnp.concatenate([chunks[:, i:i + frames] for i in range(k)], axis=-1)
  index = np.arange(frames)[:, None] * hop_length + np.arange(frame_length)[None, :]
  return x[:, index]


@functools.lru_cache(maxsize=16)
def _real_dft_matrix(n_fft: int) -> np.ndarray:
  """``[n_fft, 2 * bins]``: cosine then (negated) sine columns of the real DFT, float32."""
  n = np.arange(n_fft)[:, None]
  k = np.arange(n_fft // 2 + 1)[None, :]
  angle = 2.0 * np.pi * ((n * k) % n_fft) / n_fft
  return np.concatenate([np.cos(angle), -np.sin(angle)], axis=1).astype(np.float32)


def stft_power(audio: jnp.ndarray, n_fft: int = 1024, hop_length: int = 512,
               win_length: Optional[int] = None, center: bool = True, pad_mode: str = "reflect",
               fft: str = "rfft") -> jnp.ndarray:
  """``|STFT|**2`` as librosa ``stft`` computes it -> float32 ``[batch, frames, n_fft // 2 + 1]``.

  audio ``[batch, samples]`` or ``[batch, samples, 1]``. Periodic Hann of ``win_length``
  (default ``n_fft``) zero-padded to ``n_fft`` in the centre; ``center`` pads ``n_fft // 2`` on
  both sides with ``pad_mode`` (``"reflect"`` needs ``samples > n_fft // 2``).
  """
  if pad_mode not in PAD_MODES:
    raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
  if fft not in FFT_IMPLS:
    raise ValueError(f"fft must be one of {FFT_IMPLS}, got {fft!r}")
  x = _as_batch_samples(audio).astype(jnp.float32)
  if center:
    x = jnp.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode=pad_mode)
  win_length = win_length or n_fft
  window = np.zeros(n_fft)
  left = (n_fft - win_length) // 2
  window[left:left + win_length] = hann_window(win_length)
  frames = frame(x, n_fft, hop_length) * jnp.asarray(window, jnp.float32)
  if fft == "rfft":
    spectrum = jnp.fft.rfft(frames, n=n_fft, axis=-1)
    return jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
  parts = jnp.matmul(frames, jnp.asarray(_real_dft_matrix(n_fft)),
                     precision=jax.lax.Precision.HIGHEST)
  re, im = jnp.split(parts, 2, axis=-1)
  return re ** 2 + im ** 2


def spectrogram(audio: jnp.ndarray, power: float = 1.0, **stft_kwargs) -> jnp.ndarray:
  """``|STFT|**power`` (1: magnitude, as the papers; 2: power) -> ``[batch, frames, bins]``."""
  squared = stft_power(audio, **stft_kwargs)
  if power == 2.0:
    return squared
  if power == 1.0:
    return jnp.sqrt(squared)
  return squared ** (power / 2.0)


def log10_1p(x: jnp.ndarray, scale: float = 10.0) -> jnp.ndarray:
  """``log10(1 + scale * x)``: the papers' compression (papers.md 1.3, scale 10)."""
  return jnp.log10(1.0 + scale * x)


def log_eps(x: jnp.ndarray, eps: float = 1e-6) -> jnp.ndarray:
  """Natural ``log(x + eps)``."""
  return jnp.log(x + eps)


def power_to_db(x: jnp.ndarray, ref: Union[float, str] = 1.0, amin: float = 1e-10,
                top_db: Optional[float] = 80.0) -> jnp.ndarray:
  """``librosa.power_to_db`` per example: ``10 log10(max(amin, x) / max(amin, ref))``, floored at
  ``max - top_db``. ``ref="max"`` uses each example's maximum; ``x`` is ``[batch, ...]``."""
  reduce_axes = tuple(range(1, x.ndim))
  log_spec = 10.0 * jnp.log10(jnp.maximum(amin, x))
  if ref == "max":
    log_spec = log_spec - 10.0 * jnp.log10(
        jnp.maximum(amin, jnp.max(x, axis=reduce_axes, keepdims=True)))
  else:
    log_spec = log_spec - 10.0 * np.log10(max(amin, float(ref)))
  if top_db is not None:
    log_spec = jnp.maximum(log_spec, jnp.max(log_spec, axis=reduce_axes, keepdims=True) - top_db)
  return log_spec


def amplitude_to_db(x: jnp.ndarray, ref: Union[float, str] = 1.0, amin: float = 1e-5,
                    top_db: Optional[float] = 80.0) -> jnp.ndarray:
  """``librosa.amplitude_to_db``: ``power_to_db(x**2, ref**2, amin**2, top_db)``."""
  ref = ref if ref == "max" else float(ref) ** 2
  return power_to_db(jnp.square(x), ref=ref, amin=amin ** 2, top_db=top_db)


def mel_spectrogram(audio: jnp.ndarray, sample_rate: int = 22050, n_fft: int = 1024,
                    hop_length: int = 512, win_length: Optional[int] = None, center: bool = True,
                    pad_mode: str = "reflect", power: float = 1.0, n_mels: int = 128,
                    fmin: float = 0.0, fmax: Optional[float] = None, htk: bool = False,
                    norm: Union[str, float, None] = "slaney", log: str = "log10_1p",
                    log_scale: float = 10.0, log_eps_value: float = 1e-6,
                    db_ref: Union[float, str] = 1.0, db_amin: Optional[float] = None,
                    top_db: Optional[float] = 80.0, mean: Optional[float] = None,
                    std: Optional[float] = None, fft: str = "rfft") -> jnp.ndarray:
  """Raw audio ``[batch, samples]`` or ``[batch, samples, 1]`` -> ``[batch, frames, n_mels]``.

  Defaults are the papers' front end (papers.md 1.3) without standardisation; pass
  ``mean=PAPER_MEL_MEAN, std=PAPER_MEL_STD`` for it. ``log``: ``"log10_1p"``
  (``log10(1 + log_scale * M)``), ``"log"`` (``log(M + log_eps_value)``), ``"db"``
  (``power_to_db`` for ``power=2``, ``amplitude_to_db`` for ``power=1``; ``db_amin`` defaults to
  librosa's 1e-10 / 1e-5) or ``"none"``. Standardisation ``(x - mean) / std`` comes last.
  """
  if log not in LOG_KINDS:
    raise ValueError(f"log must be one of {LOG_KINDS}, got {log!r}")
  spec = spectrogram(audio, power=power, n_fft=n_fft, hop_length=hop_length,
                     win_length=win_length, center=center, pad_mode=pad_mode, fft=fft)
  fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm)
  mel = jnp.matmul(spec, jnp.asarray(fb), precision=jax.lax.Precision.HIGHEST)
  if log == "log10_1p":
    mel = log10_1p(mel, log_scale)
  elif log == "log":
    mel = log_eps(mel, log_eps_value)
  elif log == "db":
    if power == 2.0:
      mel = power_to_db(mel, db_ref, 1e-10 if db_amin is None else db_amin, top_db)
    elif power == 1.0:
      mel = amplitude_to_db(mel, db_ref, 1e-5 if db_amin is None else db_amin, top_db)
    else:
      raise ValueError(f"log='db' needs power 1 or 2, got {power}")
  if mean is not None:
    mel = mel - mean
  if std is not None:
    mel = mel / std
  return mel


class MelSpectrogram(nn.Module):
  """``mel_spectrogram`` as a parameter-free Linen module (fields = its keyword arguments).

  ``[batch, samples]`` or ``[batch, samples, 1]`` -> ``[batch, frames, n_mels]``; defaults are
  the papers' front end (papers.md 1.3) including the standardisation scalars.
  """

  sample_rate: int = 22050
  n_fft: int = 1024
  hop_length: int = 512
  win_length: Optional[int] = None
  center: bool = True
  pad_mode: str = "reflect"
  power: float = 1.0
  n_mels: int = 128
  fmin: float = 0.0
  fmax: Optional[float] = None
  htk: bool = False
  norm: Union[str, float, None] = "slaney"
  log: str = "log10_1p"
  log_scale: float = 10.0
  log_eps_value: float = 1e-6
  db_ref: Union[float, str] = 1.0
  db_amin: Optional[float] = None
  top_db: Optional[float] = 80.0
  mean: Optional[float] = PAPER_MEL_MEAN
  std: Optional[float] = PAPER_MEL_STD
  fft: str = "rfft"

  def num_frames(self, num_samples: int) -> int:
    """Frames produced for ``num_samples`` samples."""
    return num_frames(num_samples, self.n_fft, self.hop_length, self.center)

  def samples_for_frames(self, frames: int) -> int:
    """Fewest samples that give ``frames`` frames."""
    return samples_for_frames(frames, self.n_fft, self.hop_length, self.center)

  @nn.compact
  def __call__(self, audio: jnp.ndarray) -> jnp.ndarray:
    return mel_spectrogram(
        audio, sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
        win_length=self.win_length, center=self.center, pad_mode=self.pad_mode,
        power=self.power, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax, htk=self.htk,
        norm=self.norm, log=self.log, log_scale=self.log_scale,
        log_eps_value=self.log_eps_value, db_ref=self.db_ref, db_amin=self.db_amin,
        top_db=self.top_db, mean=self.mean, std=self.std, fft=self.fft)
