"""On-device mel front end (papers.md 1.3) against librosa 0.11 (the papers' own tool) and scipy.

Tolerances (float32 on CPU): filterbank 1e-7 absolute (librosa's is float32 too); |STFT|^2 within
2e-6 of the spectrum's maximum; log-mel outputs within 2e-5 absolute (values up to ~3) and dB
outputs within 2e-3 dB. The scipy test runs without librosa.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from musicrep_jax.frontends import mel as M

SR = 22050


def _audio(batch=2, samples=SR // 2, seed=0):
  """Noise plus a 440 Hz tone at a realistic level in [-1, 1): ``[batch, samples]`` float32."""
  rng = np.random.default_rng(seed)
  t = np.arange(samples) / SR
  tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
  return (tone + 0.1 * rng.standard_normal((batch, samples))).astype(np.float32)


def _librosa():
  return pytest.importorskip("librosa")


def _librosa_stft(y, **kwargs):
  """librosa.stft per example, transposed to ``[batch, frames, bins]``."""
  librosa = _librosa()
  return np.stack([librosa.stft(x, **kwargs).T for x in y])


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None, 1.0, 2.0])
def test_filterbank_matches_librosa(htk, norm):
  librosa = _librosa()
  ref = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128, htk=htk, norm=norm).T
  ours = M.mel_filterbank(SR, 1024, 128, htk=htk, norm=norm)
  assert ours.shape == (513, 128) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)


def test_filterbank_with_band_limits_matches_librosa():
  librosa = _librosa()
  ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=96, fmin=50.0, fmax=7000.0).T
  np.testing.assert_allclose(M.mel_filterbank(16000, 512, 96, fmin=50.0, fmax=7000.0), ref,
                             rtol=0, atol=1e-7)


def test_mel_scale_round_trips_and_matches_librosa():
  librosa = _librosa()
  hz = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 11025.0])
  for htk in (False, True):
    np.testing.assert_allclose(M.hz_to_mel(hz, htk), librosa.hz_to_mel(hz, htk=htk), rtol=1e-12)
    np.testing.assert_allclose(M.mel_to_hz(M.hz_to_mel(hz, htk), htk), hz, atol=1e-9)


def test_window_is_scipy_periodic_hann():
  np.testing.assert_allclose(M.hann_window(1024), scipy.signal.get_window("hann", 1024),
                             atol=1e-15)
  np.testing.assert_allclose(M.hann_window(9, periodic=False), np.hanning(9), atol=1e-15)


@pytest.mark.parametrize("center,pad_mode,win_length,hop", [
    (True, "reflect", None, 512), (True, "constant", None, 512), (False, "reflect", None, 512),
    (True, "reflect", 800, 300)])
@pytest.mark.parametrize("fft", ["rfft", "matmul"])
def test_stft_power_matches_librosa(center, pad_mode, win_length, hop, fft):
  y = _audio()
  ref = np.abs(_librosa_stft(y, n_fft=1024, hop_length=hop, win_length=win_length,
                             center=center, pad_mode=pad_mode)) ** 2
  ours = np.asarray(M.stft_power(y[..., None], n_fft=1024, hop_length=hop,
                                 win_length=win_length, center=center, pad_mode=pad_mode,
                                 fft=fft))
  assert ours.shape == ref.shape
  assert ours.shape[1] == M.num_frames(y.shape[1], 1024, hop, center)
  np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6 * ref.max())


def test_stft_power_matches_scipy_without_librosa():
  # scipy.signal.stft with the same periodic Hann, no padding, no detrending, scaling undone.
  y = _audio()
  _, _, z = scipy.signal.stft(y, window="hann", nperseg=1024, noverlap=512, boundary=None,
                              padded=False, detrend=False, return_onesided=True,
                              scaling="spectrum")
  ref = np.abs(np.swapaxes(z, 1, 2) * M.hann_window(1024).sum()) ** 2
  ours = np.asarray(M.stft_power(y, center=False))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6 * ref.max())


def test_papers_front_end_matches_librosa_pipeline():
  """mp3s_to_mel.py: log10(1 + 10 * mel(|stft|)), standardised (papers.md 1.3)."""
  librosa = _librosa()
  y = _audio(samples=M.samples_for_frames(129))
  fb = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128)
  spec = np.abs(_librosa_stft(y, n_fft=1024, hop_length=512, pad_mode="reflect"))
  ref = (np.log10(1 + 10 * spec @ fb.T) - 0.22620339) / 0.25794547
  module = M.MelSpectrogram()
  ours = np.asarray(jax.jit(module.apply)({}, y[..., None]))
  assert ours.shape == (2, 129, 128) == ref.shape
  assert module.num_frames(y.shape[1]) == 129
  np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5 / 0.258)


@pytest.mark.parametrize("power,log,kwargs,atol", [
    (2.0, "db", dict(db_ref=1.0, top_db=80.0), 2e-3),
    (2.0, "db", dict(db_ref="max", top_db=None), 2e-3),
    (1.0, "db", dict(db_ref=1.0, top_db=80.0), 2e-3),
    (2.0, "log", dict(log_eps_value=1e-6), 2e-5),
    (2.0, "none", dict(htk=True, norm=None), None)])
def test_compression_variants_match_librosa(power, log, kwargs, atol):
  librosa = _librosa()
  y = _audio(samples=SR // 4)
  htk, norm = kwargs.pop("htk", False), kwargs.pop("norm", "slaney")
  fb = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, htk=htk, norm=norm)
  mel = np.abs(_librosa_stft(y, n_fft=1024, hop_length=512, pad_mode="reflect")) ** power @ fb.T
  if log == "db":
    to_db = librosa.power_to_db if power == 2.0 else librosa.amplitude_to_db
    ref_arg = np.max if kwargs["db_ref"] == "max" else kwargs["db_ref"]
    ref = np.stack([to_db(m, ref=ref_arg, top_db=kwargs["top_db"]) for m in mel])
  elif log == "log":
    ref = np.log(mel + 1e-6)
  else:
    ref = mel
  ours = np.asarray(M.mel_spectrogram(y, power=power, n_mels=64, log=log, htk=htk, norm=norm,
                                      **kwargs))
  if atol is None:
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=1e-6 * ref.max())
  else:
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


def test_frames_helpers_and_shapes():
  assert M.num_frames(661500) == 1292  # 30 s at 22,050 Hz; the papers keep 1,291
  assert M.samples_for_frames(129) == 65536 and M.num_frames(65536) == 129
  assert M.num_frames(65535) == 128
  assert M.samples_for_frames(18, center=False) == 9728 and M.num_frames(9728, center=False) == 18
  out = jax.eval_shape(M.mel_spectrogram, jnp.zeros((3, 65536, 1)))
  assert out.shape == (3, 129, 128) and out.dtype == jnp.float32
  with pytest.raises(ValueError, match="batch, samples"):
    M.mel_spectrogram(jnp.zeros((3, 65536, 2)))
