"""Global tempo (BPM) of a clip from an onset-strength autocorrelation, in numpy (papers.md 14.1).

Paper 13 estimates each track's tempo with madmom and calls two tracks similar in tempo when
their tempi are within 5 BPM. madmom is not installable on current stacks (its last release
predates numpy 2 and Python 3.11 wheels) and librosa pulls numba, so this is our own estimator,
run once per clip at prepare time (``data_pipelines``: the ``tempo_bpm`` record field):

1. **Onset strength** ``[frames]`` (:func:`onset_strength`): magnitude STFT (Hann, ``n_fft``
   samples, hop ``sample_rate / frame_rate``: 200 frames/s, 5 ms), a ``n_mels`` mel filterbank
   (``mel.mel_filterbank``), ``log(1 + 1000 S)`` compression, half-wave rectified difference
   over time summed over bands (spectral flux), minus its 1-s moving average, smoothed over
   ~10 ms.
2. **Autocorrelation** ``r`` of that envelope (FFT, zero-padded, normalised so ``r[0] = 1``).
3. **Comb score** per candidate tempo ``b`` on a 0.05-BPM grid in ``[min_bpm, max_bpm]``: the
   mean of ``r`` (linearly interpolated) at the first ``harmonics`` multiples of the beat period
   ``60 * frame_rate / b``. Multiples make the score sharp (sub-frame period precision) and
   reject a tempo whose period falls between the onsets.
4. **Octave choice**: a periodic onset train of period ``T`` also scores at ``2T``, ``3T``...;
   the estimate is the *fastest* local maximum of the score within ``octave_ratio`` (0.8) of the
   best one (the fundamental beat period, as pitch trackers pick the fundamental). A prior
   toward 120 BPM (librosa's choice) would pick 90 instead of 180 on a 180-BPM click track.
   On real music, a strong eighth-note pulse can still give double the perceived tempo (the
   octave error every tempo estimator has, madmom included).
5. **Refinement**: parabolic interpolation of the score around the chosen grid point.

A silent or onset-free clip (no autocorrelation peak above ``min_strength``) gives NaN
("unknown": never a positive, never a negative of anything, ``ops.losses.label_match``).

Checked on click tracks of known tempo (``tests/unit/frontends/test_tempo.py``: within 2 BPM
from 60 to 180 BPM, measured error <= 0.3 BPM). On 30 clips of the synthetic corpus (30 s,
22,050 Hz, drums on eighth notes) 27 were within 2 BPM of the true tempo, 2 at double tempo and
one at 4/3. Cost (measured on a loaded 2-core machine): 0.07-0.11 s of one core per 30-s clip
at 16 or 22.05 kHz, where decoding and resampling the 30-s mp3 took 0.15-0.16 s.
"""

from __future__ import annotations

import numpy as np

from musicrep_jax.frontends.mel import hann_window, mel_filterbank

FRAME_RATE = 200.0  # Envelope frames per second (5 ms): 1.35 BPM lag spacing at 180 BPM.
MIN_BPM, MAX_BPM = 50.0, 220.0  # The search range (paper 13 states none).
# What prepared datasets record as their tempo estimator (``metadata["tempo"]``).
ESTIMATOR = (f"musicrep_jax.frontends.tempo.estimate_bpm: onset-autocorrelation comb, "
             f"{MIN_BPM:g}-{MAX_BPM:g} BPM, fastest strong periodicity")


def onset_strength(audio: np.ndarray, sample_rate: int, *, frame_rate: float = FRAME_RATE,
                   n_fft: int = 512, n_mels: int = 40) -> tuple[np.ndarray, float]:
  """Spectral-flux onset envelope of a mono clip (module docstring, step 1).

  Args:
    audio: float ``[samples]`` (any scale).
    sample_rate: Hz.
    frame_rate: envelope frames per second (the hop is ``round(sample_rate / frame_rate)``).

  Returns:
    ``(envelope float64 [frames], actual frame rate = sample_rate / hop)``.
  """
  audio = np.asarray(audio, np.float32).reshape(-1)
  hop = max(int(round(sample_rate / frame_rate)), 1)
  n_fft = min(n_fft, max(16, 1 << int(np.log2(max(len(audio), 16)))))
  padded = np.pad(audio, (n_fft // 2, n_fft // 2))
  if len(padded) < n_fft:
    padded = np.pad(padded, (0, n_fft - len(padded)))
  frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
  spectrum = np.abs(np.fft.rfft(frames * hann_window(n_fft).astype(np.float32), axis=-1))
  mel = np.log1p(1000.0 * (spectrum @ mel_filterbank(sample_rate, n_fft, n_mels)))
  flux = np.maximum(np.diff(mel, axis=0), 0.0).sum(axis=1, dtype=np.float64)
  rate = sample_rate / hop
  flux = flux - _moving_average(flux, max(int(rate), 1))
  return _smooth(np.maximum(flux, 0.0), max(rate * 0.005, 0.5)), rate


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
  """Centred moving average of ``x`` over ``width`` frames (edges: the available frames)."""
  kernel = np.ones(width)
  total = np.convolve(x, kernel, mode="same")
  count = np.convolve(np.ones_like(x), kernel, mode="same")
  return total / count


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian smoothing with standard deviation ``sigma`` frames."""
  radius = int(np.ceil(3 * sigma))
  t = np.arange(-radius, radius + 1)
  kernel = np.exp(-0.5 * (t / sigma) ** 2)
  return np.convolve(x, kernel / kernel.sum(), mode="same")


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
  """Autocorrelation of ``x - mean(x)`` for lags ``0..max_lag`` (FFT, zero-padded; biased:
  sums over the overlap), normalised so lag 0 is 1 (all zeros for a constant ``x``)."""
  x = np.asarray(x, np.float64) - np.mean(x)
  size = 1 << int(np.ceil(np.log2(2 * len(x) + 1)))
  spectrum = np.fft.rfft(x, size)
  r = np.fft.irfft(spectrum * np.conj(spectrum), size)[:max_lag + 1]
  return r / r[0] if r[0] > 0 else np.zeros_like(r)


def estimate_bpm(audio: np.ndarray, sample_rate: int, *, min_bpm: float = MIN_BPM,
                 max_bpm: float = MAX_BPM, harmonics: int = 4, octave_ratio: float = 0.8,
                 min_strength: float = 0.05, frame_rate: float = FRAME_RATE) -> float:
  """The global tempo of a mono clip in BPM, or NaN when it has no beat (module docstring).

  Args:
    audio: float ``[samples]``.
    sample_rate: Hz.
    min_bpm, max_bpm: the search range.
    harmonics: beat-period multiples averaged by the comb score.
    octave_ratio: a faster local maximum is chosen when its score is at least this fraction
      of the best score.
    min_strength: below this best comb score (autocorrelation units) the clip has no beat.

  Returns:
    float BPM in ``[min_bpm, max_bpm]``, or NaN.
  """
  envelope, rate = onset_strength(audio, sample_rate, frame_rate=frame_rate)
  bpms = np.arange(min_bpm, max_bpm + 1e-9, 0.05)
  periods = 60.0 * rate / bpms  # Frames per beat.
  # A short clip averages fewer multiples: as many as two beats of the slowest tempo leave room.
  harmonics = min(harmonics, int((len(envelope) / 2 - 1) // periods.max()))
  if harmonics < 1:
    return float("nan")  # Shorter than two beats of the slowest tempo.
  lags = periods[:, None] * np.arange(1, harmonics + 1)[None, :]
  r = autocorrelation(envelope, int(np.ceil(lags.max())) + 1)
  score = np.interp(lags, np.arange(len(r)), r).mean(axis=1)
  best = float(score.max())
  if not np.isfinite(best) or best < min_strength:
    return float("nan")
  interior = np.arange(1, len(score) - 1)
  rising = score[interior] >= score[interior - 1]
  peaks = interior[rising & (score[interior] > score[interior + 1])]
  strong = peaks[score[peaks] >= octave_ratio * best]
  i = int(strong.max()) if len(strong) else int(np.argmax(score))
  return float(_parabolic_peak(bpms, score, i))


def _parabolic_peak(x: np.ndarray, y: np.ndarray, i: int) -> float:
  """``x`` at the vertex of the parabola through ``y[i-1:i+2]`` (``x[i]`` at the edges)."""
  if i <= 0 or i >= len(y) - 1:
    return x[i]
  left, mid, right = y[i - 1], y[i], y[i + 1]
  denom = left - 2 * mid + right
  if denom >= 0:
    return x[i]
  offset = 0.5 * (left - right) / denom
  return x[i] + offset * (x[1] - x[0])
