"""Back end of the i-vector and deep-feature systems (papers.md 9: i-vectors scored with PLDA).

``fit_backend`` learns, from training vectors and their artist labels:

1. centring and (optionally) whitening by the training covariance, then length normalisation
   (Garcia-Romero & Espy-Wilson, 2011);
2. LDA to ``lda_dim`` dimensions (at most ``classes - 1``): generalised eigenvectors of the
   between- / within-class scatter;
3. WCCN (Hatch et al., 2006): ``B B' = S_w^-1`` in the LDA space; recentring and length
   normalisation again;
4. the artist models: ``"cosine"``, the normalised mean of each artist's training vectors, scored
   by cosine similarity; or ``"plda"``, a two-covariance PLDA (Brummer & de Villiers, 2010;
   ``x = y + e``, ``y ~ N(mu, B)`` the artist, ``e ~ N(0, W)``) with moment estimates of ``B``
   and ``W``, scored by the log posterior-predictive density of a test vector under each
   artist's training vectors, ``N(x; m_k, W + S_k)`` with ``S_k = (B^-1 + n_k W^-1)^-1``,
   ``m_k = S_k (B^-1 mu + n_k W^-1 xbar_k)`` (closed-set identification).

Paper 8 says PLDA [first page]; the pre-processing chain is [unknown] and follows the standard
i-vector recipe, each step switchable in ``BackendConfig``. All pieces are jnp and small.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.errors import UserError

SCORINGS = ("plda", "cosine")


@dataclasses.dataclass(frozen=True)
class BackendConfig:
  scoring: str = "plda"
  lda_dim: int = 0          # 0: classes - 1 (capped at the input dimension)
  whiten: bool = True
  wccn: bool = True
  regularization: float = 1e-3  # added to covariance diagonals, relative to their mean


def length_normalize(x: jnp.ndarray) -> jnp.ndarray:
  """Rows scaled to unit L2 norm ``[n, d]``."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _regularized(cov: jnp.ndarray, reg: float) -> jnp.ndarray:
  scale = jnp.maximum(jnp.mean(jnp.diag(cov)), 1e-12)
  return cov + reg * scale * jnp.eye(cov.shape[0])


@functools.partial(jax.jit, static_argnames=("num_classes",))
def class_scatter(x: jnp.ndarray, labels: jnp.ndarray, num_classes: int):
  """-> (class means ``[K, d]``, counts ``[K]``, within-class covariance ``[d, d]``,
  between-class covariance of the class means weighted by counts ``[d, d]``, global mean)."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)
  counts = jnp.sum(onehot, axis=0)
  means = (onehot.T @ x) / jnp.maximum(counts, 1.0)[:, None]
  mu = jnp.mean(x, axis=0)
  resid = x - means[labels]
  within = resid.T @ resid / x.shape[0]
  dm = (means - mu) * jnp.sqrt(counts / x.shape[0])[:, None]
  return means, counts, within, dm.T @ dm, mu


@jax.jit
def _inverse_sqrt(cov: jnp.ndarray) -> jnp.ndarray:
  vals, vecs = jnp.linalg.eigh(cov)
  return vecs / jnp.sqrt(jnp.maximum(vals, 1e-12))[None, :]


@functools.partial(jax.jit, static_argnames=("num_classes", "dim"))
def lda_projection(x, labels, num_classes: int, dim: int, reg: float) -> jnp.ndarray:
  """``[d, dim]``: the ``dim`` leading generalised eigenvectors of ``(S_b, S_w)``."""
  _, _, within, between, _ = class_scatter(x, labels, num_classes)
  w_isqrt = _inverse_sqrt(_regularized(within, reg))
  vals, vecs = jnp.linalg.eigh(w_isqrt.T @ between @ w_isqrt)
  return w_isqrt @ vecs[:, ::-1][:, :dim]


def fit_backend(x: np.ndarray, labels: np.ndarray, config: BackendConfig) -> dict:
  """Training vectors ``[n, d]`` and integer labels ``[n]`` -> backend parameters (numpy)."""
  if config.scoring not in SCORINGS:
    raise UserError(f"backend scoring must be one of {SCORINGS}, got {config.scoring!r}.")
  class_ids, y = np.unique(np.asarray(labels), return_inverse=True)
  k = len(class_ids)
  if k < 2:
    raise UserError("The back end needs training vectors of at least two artists.")
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y)
  params = {"class_ids": class_ids, "mean": np.asarray(jnp.mean(x, axis=0))}
  centred = x - params["mean"]
  d = x.shape[1]
  if config.whiten:
    params["whitener"] = np.asarray(_inverse_sqrt(_regularized(
        centred.T @ centred / x.shape[0], config.regularization)))
  else:
    params["whitener"] = np.eye(d, dtype=np.float32)
  z = length_normalize(centred @ params["whitener"])
  dim = min(config.lda_dim or k - 1, k - 1, d)
  params["lda"] = np.asarray(lda_projection(z, y, k, dim, config.regularization))
  z = z @ params["lda"]
  if config.wccn:
    _, _, within, _, _ = class_scatter(z, y, k)
    inv = jnp.linalg.inv(_regularized(within, config.regularization))
    params["wccn"] = np.asarray(jnp.linalg.cholesky((inv + inv.T) / 2))
  else:
    params["wccn"] = np.eye(dim, dtype=np.float32)
  z = z @ params["wccn"]
  params["mean2"] = np.asarray(jnp.mean(z, axis=0))
  z = length_normalize(z - params["mean2"])
  means, counts, within, between, mu = class_scatter(z, y, k)
  params["scoring"] = np.asarray(SCORINGS.index(config.scoring))
  params["class_means"] = np.asarray(means)
  params["class_counts"] = np.asarray(counts)
  params["plda_mu"] = np.asarray(mu)
  params["plda_within"] = np.asarray(_regularized(within, config.regularization))
  params["plda_between"] = np.asarray(_regularized(between, config.regularization))
  return {key: np.asarray(v) for key, v in params.items()}


def transform(params: dict, x) -> jnp.ndarray:
  """Vectors ``[n, d]`` -> the scoring space ``[n, dim]`` (unit length)."""
  keys = ("mean", "whitener", "lda", "wccn", "mean2")
  return _transform(*(jnp.asarray(params[k]) for k in keys), jnp.asarray(x, jnp.float32))


@jax.jit
def _transform(mean, whitener, lda, wccn, mean2, x):
  z = length_normalize((x - mean) @ whitener) @ lda @ wccn
  return length_normalize(z - mean2)


@jax.jit
def plda_scores(z: jnp.ndarray, class_means, counts, mu, within, between) -> jnp.ndarray:
  """Log posterior-predictive densities ``[n, K]`` of ``z [n, dim]`` under each class."""
  b_inv = jnp.linalg.inv(between)
  w_inv = jnp.linalg.inv(within)
  post_prec = b_inv[None] + counts[:, None, None] * w_inv[None]          # [K, dim, dim]
  post_cov = jnp.linalg.inv(post_prec)
  rhs = (b_inv @ mu)[None] + counts[:, None] * (class_means @ w_inv.T)   # [K, dim]
  post_mean = jnp.einsum("kij,kj->ki", post_cov, rhs)
  pred_cov = within[None] + post_cov
  chol = jnp.linalg.cholesky(pred_cov)                                    # [K, dim, dim]
  diff = z[None, :, :] - post_mean[:, None, :]                            # [K, n, dim]
  sol = jax.scipy.linalg.solve_triangular(chol, jnp.swapaxes(diff, 1, 2), lower=True)
  maha = jnp.sum(jnp.square(sol), axis=1)                                 # [K, n]
  logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)
  dim = z.shape[1]
  return (-0.5 * (maha + logdet[:, None] + dim * jnp.log(2.0 * jnp.pi))).T


def score(params: dict, x) -> np.ndarray:
  """Artist scores ``[n, K]`` (columns in ``params["class_ids"]`` order)."""
  z = transform(params, x)
  if SCORINGS[int(params["scoring"])] == "cosine":
    return np.asarray(z @ length_normalize(jnp.asarray(params["class_means"])).T)
  return np.asarray(plda_scores(z, *(jnp.asarray(params[k]) for k in (
      "class_means", "class_counts", "plda_mu", "plda_within", "plda_between"))))


def accuracy(params: dict, scores: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy of ``scores [n, K]`` against integer labels ``[n]``."""
  predicted = params["class_ids"][np.argmax(scores, axis=1)]
  return float(np.mean(predicted == np.asarray(labels)))
