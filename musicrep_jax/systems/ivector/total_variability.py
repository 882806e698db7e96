"""Baum-Welch statistics, total-variability matrix EM and i-vector extraction (Dehak et al.,
2011; Kenny's EM), the i-vector branch of paper 8 (papers.md 9).

Model: a clip's GMM mean supervector is ``m + T w`` with ``w ~ N(0, I)`` (``T`` is
``[C, D, R]``, ``R`` the i-vector size). Given a clip's zeroth-order statistics ``N [C]`` and
centred first-order statistics ``F~ [C, D]`` (``F_c - N_c m_c``, UBM alignments), with UBM
covariances ``Sigma_c`` (diagonal):

    L = I + sum_c N_c T_c' Sigma_c^-1 T_c        [R, R]      (posterior precision of w)
    b = sum_c T_c' Sigma_c^-1 F~_c               [R]
    w = L^-1 b                                    the i-vector (posterior mean)

Everything is computed with ``T^ = Sigma^-1/2 T`` and ``F^ = Sigma^-1/2 F~`` (whitened by the
UBM), where ``Sigma = I``. EM over ``T``: accumulate ``A_c = sum_u N_uc (L_u^-1 + w_u w_u')``
and ``C_c = sum_u F^_uc w_u'``; the M step is ``T^_c = C_c A_c^-1``. The objective EM increases,
``sum_u (0.5 b_u' L_u^-1 b_u - 0.5 log|L_u|)`` (the stats' log-likelihood up to terms free of
``T``), is recorded every iteration (never decreases, tested). Optional minimum-divergence
re-estimation (``min_divergence``) whitens the i-vectors' empirical prior after each M step.
Clips are processed ``clips_per_batch`` at a time with padding, so one compilation serves all.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.systems.ivector import gmm as gmm_lib
from musicrep_jax.systems.ivector.frames import FramePieces

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class TvConfig:
  ivector_dim: int = 100      # [unknown]: paper 8 does not give R on its first page
  num_iterations: int = 10    # [unknown]
  init_scale: float = 0.1     # T^ entries start as N(0, init_scale^2)
  min_divergence: bool = False  # True: Kaldi-style re-estimation (see _min_divergence)
  clips_per_batch: int = 64
  seed: int = 0


class ClipStatistics(NamedTuple):
  """Per-clip Baum-Welch statistics: ``zeroth [U, C]``, ``first [U, C, D]`` (not centred)."""

  zeroth: np.ndarray
  first: np.ndarray


@functools.partial(jax.jit, static_argnames=("num_clips",))
def _clip_sums(gmm, frames, mask, owner, num_clips: int):
  stats = gmm_lib.frame_statistics(gmm, frames, mask, second_order=False)
  zeroth = jax.ops.segment_sum(stats.zeroth, owner, num_segments=num_clips)
  first = jax.ops.segment_sum(stats.first, owner, num_segments=num_clips)
  return zeroth, first


def baum_welch_statistics(gmm: gmm_lib.DiagGMM, pieces: FramePieces,
                          pieces_per_batch: int) -> ClipStatistics:
  """Zeroth- and first-order statistics of every clip under the UBM (host arrays, float32).

  Each batch's pieces are summed per clip on the device (``segment_sum`` over the batch's own
  clips, at most ``pieces_per_batch``), then added into the clips' host rows.
  """
  c, d = gmm.means.shape
  zeroth = np.zeros((pieces.num_clips, c), np.float64)
  first = np.zeros((pieces.num_clips, c, d), np.float64)
  for frames, mask, owner in pieces.batches(pieces_per_batch):
    clips, local = np.unique(owner, return_inverse=True)  # at most pieces_per_batch owners
    local = np.where(owner >= 0, local, pieces_per_batch)  # padded pieces fall off the end
    z, f = _clip_sums(gmm, frames, mask, local, pieces_per_batch)
    real = clips >= 0
    zeroth[clips[real]] += np.asarray(z)[:len(clips)][real]
    first[clips[real]] += np.asarray(f)[:len(clips)][real]
  return ClipStatistics(zeroth.astype(np.float32), first.astype(np.float32))


def whitened_first_order(gmm: gmm_lib.DiagGMM, stats: ClipStatistics) -> np.ndarray:
  """``F^ = Sigma^-1/2 (F - N m)`` -> ``[U, C, D]`` float32."""
  means = np.asarray(gmm.means)
  centred = stats.first - stats.zeroth[..., None] * means[None]
  return (centred / np.sqrt(np.asarray(gmm.variances))[None]).astype(np.float32)


def posterior(t_hat: jnp.ndarray, zeroth: jnp.ndarray, f_hat: jnp.ndarray):
  """i-vector posteriors of a batch of clips.

  Args:
    t_hat: ``[C, D, R]`` whitened total-variability matrix.
    zeroth: ``[U, C]``; f_hat: ``[U, C, D]`` whitened centred first-order statistics.

  Returns:
    (w ``[U, R]`` posterior means, cov ``[U, R, R]`` posterior covariances ``L^-1``,
    b ``[U, R]``, logdet ``[U]`` of ``L``).
  """
  rank = t_hat.shape[-1]
  ttt = jnp.einsum("cdr,cds->crs", t_hat, t_hat, precision=_HIGHEST)
  precision = jnp.eye(rank) + jnp.einsum("uc,crs->urs", zeroth, ttt, precision=_HIGHEST)
  b = jnp.einsum("cdr,ucd->ur", t_hat, f_hat, precision=_HIGHEST)
  chol = jnp.linalg.cholesky(precision)
  w = jax.scipy.linalg.cho_solve((chol, True), b[..., None])[..., 0]
  cov = jax.scipy.linalg.cho_solve((chol, True), jnp.broadcast_to(jnp.eye(rank), precision.shape))
  logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
  return w, cov, b, logdet


@jax.jit
def _e_step_batch(t_hat, zeroth, f_hat, valid):
  """One batch's EM accumulators: ``A [C, R, R]``, ``C [C, D, R]``, objective, and the sums of
  ``w`` and ``E[w w']`` (for minimum divergence)."""
  w, cov, b, logdet = posterior(t_hat, zeroth, f_hat)
  v = valid.astype(w.dtype)
  second = (cov + w[:, :, None] * w[:, None, :]) * v[:, None, None]
  a = jnp.einsum("uc,urs->crs", zeroth, second, precision=_HIGHEST)
  c = jnp.einsum("ucd,ur->cdr", f_hat * v[:, None, None], w, precision=_HIGHEST)
  objective = jnp.sum(v * (0.5 * jnp.sum(b * w, axis=-1) - 0.5 * logdet))
  return a, c, objective, jnp.sum(w * v[:, None], axis=0), jnp.sum(second, axis=0)


def _clip_batches(zeroth: np.ndarray, f_hat: np.ndarray, batch: int):
  """Fixed-size batches ``(zeroth, f_hat, valid)`` over clips, the last one zero-padded."""
  n = len(zeroth)
  for start in range(0, n, batch):
    stop = min(start + batch, n)
    pad = batch - (stop - start)
    z, f = zeroth[start:stop], f_hat[start:stop]
    valid = np.ones(stop - start, bool)
    if pad:
      z = np.concatenate([z, np.zeros((pad,) + z.shape[1:], z.dtype)])
      f = np.concatenate([f, np.zeros((pad,) + f.shape[1:], f.dtype)])
      valid = np.concatenate([valid, np.zeros(pad, bool)])
    yield z, f, valid


@jax.jit
def _m_step(a, c):
  return jnp.linalg.solve(a, jnp.swapaxes(c, 1, 2)).transpose(0, 2, 1)  # T_c = C_c A_c^-1


def train_total_variability(gmm: gmm_lib.DiagGMM, stats: ClipStatistics,
                            config: TvConfig) -> tuple[jnp.ndarray, list]:
  """EM for ``T`` -> (``T [C, D, R]`` in the features' units, objective per iteration)."""
  from tqdm.auto import tqdm

  c, d = gmm.means.shape
  rng = np.random.default_rng(config.seed)
  t_hat = jnp.asarray(rng.normal(0.0, config.init_scale, (c, d, config.ivector_dim)),
                      jnp.float32)
  f_hat = whitened_first_order(gmm, stats)
  history = []
  num_clips = len(stats.zeroth)
  for _ in tqdm(range(config.num_iterations), desc="T-matrix EM", unit="it",
                dynamic_ncols=True):
    acc = None
    for z, f, valid in _clip_batches(stats.zeroth, f_hat, config.clips_per_batch):
      out = _e_step_batch(t_hat, z, f, valid)
      acc = out if acc is None else jax.tree.map(jnp.add, acc, out)
    a, cacc, objective, w_sum, ww_sum = acc
    history.append(float(objective) / num_clips)
    t_hat = _m_step(a, cacc)
    if config.min_divergence:
      t_hat = _min_divergence(t_hat, w_sum / num_clips, ww_sum / num_clips)
  variances = jnp.asarray(gmm.variances)
  return t_hat * jnp.sqrt(variances)[..., None], history


@jax.jit
def _min_divergence(t_hat, mean, second_moment):
  """Minimum-divergence step: makes the i-vectors' empirical prior standard normal by
  ``T^ <- T^ chol(E[w w'] - mu mu')`` (the mean shift is dropped, as in Kaldi's ivector
  extractor, so the UBM means stay the supervector offset)."""
  cov = second_moment - jnp.outer(mean, mean)
  return jnp.einsum("cdr,rs->cds", t_hat, jnp.linalg.cholesky(cov), precision=_HIGHEST)


@jax.jit
def _extract_batch(t_hat, zeroth, f_hat):
  return posterior(t_hat, zeroth, f_hat)[0]


def extract_ivectors(gmm: gmm_lib.DiagGMM, t_matrix: jnp.ndarray, stats: ClipStatistics,
                     clips_per_batch: int = 64) -> np.ndarray:
  """i-vectors (posterior means) of clips -> ``[U, R]`` float32."""
  t_hat = jnp.asarray(t_matrix) / jnp.sqrt(jnp.asarray(gmm.variances))[..., None]
  f_hat = whitened_first_order(gmm, stats)
  out = [np.asarray(_extract_batch(t_hat, z, f))[valid]
         for z, f, valid in _clip_batches(stats.zeroth, f_hat, clips_per_batch)]
  return np.concatenate(out)
