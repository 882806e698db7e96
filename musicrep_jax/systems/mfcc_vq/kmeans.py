"""K-means (Lloyd) on the host's accelerator for paper 13's MFCC-VQ codebook (papers.md 14.5:
K = 1024 over 2,500,000 MFCC frames), and nearest-codeword assignment.

Vectorized in JAX over fixed-size row chunks (one compilation per shape; memory ``chunk x K``):
squared distances ``|x|^2 - 2 x c^T + |c|^2``, argmin, then per-codeword sums and counts by a
one-hot matmul. Initialisation and iteration count are [unknown] in the paper: ``K`` distinct
random frames (Forgy), a fixed number of iterations (stopping early when no assignment changes),
and an empty cluster re-seeded with a random frame (all deterministic in ``seed``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.errors import UserError


@jax.jit
def _nearest(x, codebook):
  """``x`` ``[n, D]``, ``codebook`` ``[K, D]`` -> nearest codeword int32 ``[n]``."""
  d = (jnp.sum(codebook * codebook, axis=1)[None, :]
       - 2.0 * jnp.matmul(x, codebook.T, precision=jax.lax.Precision.HIGHEST))
  return jnp.argmin(d, axis=1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("k",))
def _chunk_stats(x, valid, codebook, k: int):
  """Codes ``[n]`` of a chunk and its per-codeword sums ``[K, D]`` / counts ``[K]`` over the
  ``valid`` rows."""
  codes = _nearest(x, codebook)
  onehot = jax.nn.one_hot(codes, k, dtype=x.dtype) * valid[:, None].astype(x.dtype)
  sums = jnp.matmul(onehot.T, x, precision=jax.lax.Precision.HIGHEST)
  return codes, sums, jnp.sum(onehot, axis=0)


def _chunks(n: int, chunk: int):
  for start in range(0, n, chunk):
    yield start, min(start + chunk, n)


def _padded(x: np.ndarray, start: int, stop: int, chunk: int):
  rows = x[start:stop]
  pad = chunk - len(rows)
  valid = np.arange(chunk) < len(rows)
  return (np.concatenate([rows, np.zeros((pad, x.shape[1]), x.dtype)]) if pad else rows), valid


def assign(x, codebook, *, chunk: int = 65536) -> np.ndarray:
  """Nearest codeword (squared Euclidean) of each row: ``x`` ``[n, D]`` -> int32 ``[n]``."""
  x = np.asarray(x, np.float32)
  codebook = jnp.asarray(codebook, jnp.float32)
  chunk = max(1, min(chunk, len(x)))
  out = np.empty(len(x), np.int32)
  for start, stop in _chunks(len(x), chunk):
    rows, _ = _padded(x, start, stop, chunk)
    out[start:stop] = np.asarray(_nearest(jnp.asarray(rows), codebook))[:stop - start]
  return out


def kmeans(x, k: int, *, iterations: int = 20, seed: int = 0,
           chunk: int = 65536) -> tuple[np.ndarray, dict]:
  """Lloyd's k-means of ``x`` ``[n, D]`` -> (codebook float32 ``[k, D]``, info: ``iterations``
  run, final ``inertia`` (mean squared distance to the nearest codeword), ``reseeded`` empty
  clusters). ``UserError`` when ``n < k``."""
  x = np.asarray(x, np.float32)
  n = len(x)
  if k < 1 or iterations < 1:
    raise UserError(f"k-means needs k >= 1 and iterations >= 1; got k={k}, "
                    f"iterations={iterations}.")
  if n < k:
    raise UserError(f"k-means with k={k} needs at least {k} frames; got {n}.")
  rng = np.random.default_rng(seed)
  codebook = x[rng.choice(n, size=k, replace=False)].copy()
  chunk = max(1, min(chunk, n))
  codes = np.full(n, -1, np.int32)
  reseeded, done = 0, 0
  for _ in range(iterations):
    sums = np.zeros_like(codebook, dtype=np.float64)
    counts = np.zeros(k, np.float64)
    new_codes = np.empty(n, np.int32)
    cb = jnp.asarray(codebook)
    for start, stop in _chunks(n, chunk):
      rows, valid = _padded(x, start, stop, chunk)
      c, s, m = _chunk_stats(jnp.asarray(rows), jnp.asarray(valid), cb, k)
      new_codes[start:stop] = np.asarray(c)[:stop - start]
      sums += np.asarray(s, np.float64)
      counts += np.asarray(m, np.float64)
    done += 1
    empty = counts == 0
    codebook = np.where(empty[:, None], codebook,
                        sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)
    if empty.any():
      codebook[empty] = x[rng.choice(n, size=int(empty.sum()), replace=False)]
      reseeded += int(empty.sum())
    elif np.array_equal(new_codes, codes):
      break
    codes = new_codes
  final = assign(x, codebook, chunk=chunk)
  inertia = float(np.mean(np.sum((x - codebook[final]) ** 2, axis=1)))
  return codebook, {"iterations": done, "inertia": inertia, "reseeded": reseeded}
