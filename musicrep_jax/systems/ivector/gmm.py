"""Diagonal-covariance GMM universal background model trained with EM in JAX (papers.md 9:
a 256-component UBM on MFCCs).

* ``component_log_probs``: ``log w_c + log N(x | mu_c, diag var_c)`` for every frame and
  component as two matmuls (vectorised over frames and components, no loop);
* ``frame_statistics``: zeroth / first / second-order statistics and the log-likelihood of a
  batch of frame pieces ``[B, P, D]`` with a mask, via ``logsumexp`` (log-domain stable);
* ``train_ubm``: binary splitting from one Gaussian up to ``num_components`` (the heaviest
  components split along ``+-split_offset`` standard deviations), ``iterations_per_split`` EM
  iterations after each split and ``num_iterations`` at the full size. Each E step streams
  fixed-size batches of pieces (``frames.FramePieces``) and accumulates on the device; the M step
  floors variances at ``variance_floor`` times the global variance. The average frame
  log-likelihood of every iteration is kept (``history``): with a fixed component count EM never
  decreases it (tested).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.systems.ivector.frames import FramePieces

_HIGHEST = jax.lax.Precision.HIGHEST


class DiagGMM(NamedTuple):
  """weights ``[C]``, means ``[C, D]``, variances ``[C, D]``."""

  weights: jnp.ndarray
  means: jnp.ndarray
  variances: jnp.ndarray

  @property
  def num_components(self) -> int:
    return self.weights.shape[0]

  def to_numpy(self) -> dict:
    return {k: np.asarray(v) for k, v in self._asdict().items()}

  @classmethod
  def from_numpy(cls, arrays) -> "DiagGMM":
    return cls(*(jnp.asarray(arrays[k], jnp.float32) for k in cls._fields))


@dataclasses.dataclass(frozen=True)
class UbmConfig:
  num_components: int = 256      # papers.md 9 [first page]
  num_iterations: int = 10       # [unknown]: EM iterations at the full size
  iterations_per_split: int = 4  # [unknown]
  split_offset: float = 0.2      # split along +-0.2 standard deviations
  variance_floor: float = 1e-3   # times the global per-dimension variance
  piece_frames: int = 512
  pieces_per_batch: int = 64


class Statistics(NamedTuple):
  """Sums over frames: ``zeroth [..., C]``, ``first [..., C, D]``, ``second [..., C, D]``
  (sum of posterior-weighted squares), ``loglik [...]``, ``frames [...]``."""

  zeroth: jnp.ndarray
  first: jnp.ndarray
  second: jnp.ndarray
  loglik: jnp.ndarray
  frames: jnp.ndarray


def component_log_probs(gmm: DiagGMM, x: jnp.ndarray) -> jnp.ndarray:
  """``[..., D] -> [..., C]``: ``log w_c + log N(x | mu_c, diag(var_c))``."""
  precision = 1.0 / gmm.variances
  dim = gmm.means.shape[1]
  const = (jnp.log(jnp.maximum(gmm.weights, 1e-30))
           - 0.5 * (dim * math.log(2.0 * math.pi) + jnp.sum(jnp.log(gmm.variances), axis=1)
                    + jnp.sum(jnp.square(gmm.means) * precision, axis=1)))
  quad = (jnp.matmul(jnp.square(x), precision.T, precision=_HIGHEST)
          - 2.0 * jnp.matmul(x, (gmm.means * precision).T, precision=_HIGHEST))
  return const - 0.5 * quad


def posteriors(gmm: DiagGMM, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """``[..., D]`` -> (responsibilities ``[..., C]``, frame log-likelihoods ``[...]``)."""
  logp = component_log_probs(gmm, x)
  loglik = jax.scipy.special.logsumexp(logp, axis=-1)
  return jnp.exp(logp - loglik[..., None]), loglik


def frame_statistics(gmm: DiagGMM, frames: jnp.ndarray, mask: jnp.ndarray,
                     second_order: bool = True) -> Statistics:
  """Per-piece statistics of ``frames [B, P, D]`` with ``mask [B, P]`` -> ``Statistics`` with a
  leading ``[B]`` axis (``second`` is zeros when ``second_order`` is False)."""
  post, loglik = posteriors(gmm, frames)
  w = mask.astype(frames.dtype)
  post = post * w[..., None]
  zeroth = jnp.sum(post, axis=1)
  first = jnp.einsum("bpc,bpd->bcd", post, frames, precision=_HIGHEST)
  second = (jnp.einsum("bpc,bpd->bcd", post, jnp.square(frames), precision=_HIGHEST)
            if second_order else jnp.zeros_like(first))
  return Statistics(zeroth, first, second, jnp.sum(loglik * w, axis=1), jnp.sum(w, axis=1))


@jax.jit
def _accumulate(gmm: DiagGMM, total: Statistics, frames, mask) -> Statistics:
  stats = frame_statistics(gmm, frames, mask)
  return jax.tree.map(lambda a, b: a + jnp.sum(b, axis=0), total, stats)


def accumulate_statistics(gmm: DiagGMM, pieces: FramePieces, pieces_per_batch: int) -> Statistics:
  """Sums of ``frame_statistics`` over all pieces (on the device, no host sync per batch)."""
  c, d = gmm.means.shape
  total = Statistics(jnp.zeros(c), jnp.zeros((c, d)), jnp.zeros((c, d)), jnp.zeros(()),
                     jnp.zeros(()))
  for frames, mask, _ in pieces.batches(pieces_per_batch):
    total = _accumulate(gmm, total, frames, mask)
  return total


@jax.jit
def maximization(stats: Statistics, previous: DiagGMM, variance_floor: jnp.ndarray) -> DiagGMM:
  """EM's M step. ``variance_floor [D]`` is absolute; components with (almost) no frames keep
  their previous mean and variance."""
  n = stats.zeroth
  alive = (n > 1e-6)[:, None]
  safe_n = jnp.maximum(n, 1e-6)[:, None]
  means = jnp.where(alive, stats.first / safe_n, previous.means)
  variances = jnp.where(alive, stats.second / safe_n - jnp.square(means), previous.variances)
  variances = jnp.maximum(variances, variance_floor[None, :])
  weights = jnp.maximum(n, 1e-10) / jnp.sum(jnp.maximum(n, 1e-10))
  return DiagGMM(weights, means, variances)


def split_components(gmm: DiagGMM, target: int, offset: float) -> DiagGMM:
  """Splits the ``min(C, target - C)`` heaviest components into two at ``mu +- offset * sd``,
  each with half the weight."""
  w, mu, var = (np.asarray(a) for a in gmm)
  k = min(len(w), target - len(w))
  heavy = np.argsort(-w, kind="stable")[:k]
  step = offset * np.sqrt(var[heavy])
  mu = mu.copy()
  w = w.copy()
  new_mu = mu[heavy] + step
  mu[heavy] -= step
  w[heavy] *= 0.5
  return DiagGMM(jnp.asarray(np.concatenate([w, w[heavy]])),
                 jnp.asarray(np.concatenate([mu, new_mu])),
                 jnp.asarray(np.concatenate([var, var[heavy]])))


def em_iterations(gmm: DiagGMM, pieces: FramePieces, iterations: int, variance_floor,
                  pieces_per_batch: int, progress=None) -> tuple[DiagGMM, list]:
  """``iterations`` EM steps -> (new GMM, average frame log-likelihood before each M step)."""
  history = []
  for _ in range(iterations):
    stats = accumulate_statistics(gmm, pieces, pieces_per_batch)
    history.append(float(stats.loglik / stats.frames))
    gmm = maximization(stats, gmm, variance_floor)
    if progress is not None:
      progress.update(1)
      progress.set_postfix(components=gmm.num_components, loglik=f"{history[-1]:.3f}")
  return gmm, history


def train_ubm(pieces: FramePieces, config: UbmConfig,
              init: Optional[DiagGMM] = None) -> tuple[DiagGMM, list]:
  """Trains the UBM on all frames of ``pieces``.

  Returns:
    (gmm, history): ``history`` is a list of ``{"components": C, "loglik": [...]}``, one per
    stage (after each split), the average frame log-likelihood at each EM iteration.
  """
  from tqdm.auto import tqdm

  dim = pieces.frames.shape[-1]
  one = DiagGMM(jnp.ones(1), jnp.zeros((1, dim)), jnp.ones((1, dim)))
  stats = accumulate_statistics(one, pieces, config.pieces_per_batch)
  # One component: every posterior is 1, so the M step gives the global mean and variance.
  global_gmm = maximization(stats, one, jnp.zeros(dim))
  floor = config.variance_floor * global_gmm.variances[0]
  gmm = init if init is not None else global_gmm
  stages = []
  sizes = []
  c = gmm.num_components
  while c < config.num_components:
    c = min(2 * c, config.num_components)
    sizes.append(c)
  total = len(sizes) * config.iterations_per_split + config.num_iterations
  with tqdm(total=total, desc="UBM EM", unit="it", dynamic_ncols=True) as progress:
    for size in sizes:
      gmm = split_components(gmm, size, config.split_offset)
      iterations = (config.iterations_per_split if size < config.num_components
                    else config.num_iterations)
      gmm, history = em_iterations(gmm, pieces, iterations, floor, config.pieces_per_batch,
                                   progress)
      stages.append({"components": size, "loglik": history})
    if not sizes:
      gmm, history = em_iterations(gmm, pieces, config.num_iterations, floor,
                                   config.pieces_per_batch, progress)
      stages.append({"components": gmm.num_components, "loglik": history})
  return gmm, stages
