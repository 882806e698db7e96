"""MFCC front end of the i-vector branch (paper 8): parity with librosa, deltas, masking."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.systems.ivector import mfcc as mfcc_lib

librosa = pytest.importorskip("librosa")

SR = 16000
CFG = mfcc_lib.MfccConfig()


def _audio(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * SR)) / SR
  tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t * (1 + t))
  return (tone + 0.05 * rng.normal(size=t.shape)).astype(np.float32)


def test_mfcc_matches_librosa():
  y = _audio()
  ours = np.asarray(mfcc_lib.mfcc(jnp.asarray(y[None]), SR, n_mfcc=20, n_mels=40, n_fft=512,
                                  hop_length=160, win_length=400, fmin=20.0))[0]
  ref = librosa.feature.mfcc(y=y.astype(np.float64), sr=SR, n_mfcc=20, n_fft=512,
                             hop_length=160, win_length=400, n_mels=40, fmin=20.0,
                             center=True, pad_mode="constant").T
  assert ours.shape == ref.shape
  np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=2e-2)


def test_deltas_match_librosa_interp():
  x = np.random.default_rng(1).normal(size=(2, 37, 5)).astype(np.float32)
  ours = np.asarray(mfcc_lib.deltas(jnp.asarray(x), width=9))
  ref = librosa.feature.delta(x.astype(np.float64), width=9, order=1, axis=1, mode="interp")
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_features_mask_padding_and_cmvn():
  y = _audio(0.7)
  padded = np.zeros((2, SR), np.float32)
  padded[0, :len(y)] = y
  padded[1, :len(y)] = y
  lengths = jnp.asarray([len(y), len(y)])
  static = mfcc_lib.MfccConfig(delta_order=0, cmvn=False)
  feats, mask = mfcc_lib.mfcc_features(jnp.asarray(padded), lengths, config=static,
                                       sample_rate=SR)
  valid = int(mfcc_lib.num_valid_frames(len(y), static))
  assert int(mask[0].sum()) == valid
  alone, _ = mfcc_lib.mfcc_features(jnp.asarray(y[None]), jnp.asarray([len(y)]), config=static,
                                    sample_rate=SR)
  # Zero padding does not change the valid frames' static coefficients.
  np.testing.assert_allclose(np.asarray(feats[0, :valid]), np.asarray(alone[0]), atol=1e-3)
  full, mask = mfcc_lib.mfcc_features(jnp.asarray(padded), lengths, config=CFG, sample_rate=SR)
  assert full.shape[-1] == CFG.feature_dim == 60
  kept = np.asarray(full[0])[np.asarray(mask[0])]
  np.testing.assert_allclose(kept.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(kept.std(0), 1.0, atol=1e-2)


def test_dct_matrix_is_orthonormal_dct2():
  scipy_fft = pytest.importorskip("scipy.fft")
  x = np.random.default_rng(2).normal(size=(3, 16))
  np.testing.assert_allclose(x @ mfcc_lib.dct_matrix(16, 16),
                             scipy_fft.dct(x, type=2, norm="ortho", axis=-1), atol=1e-5)
