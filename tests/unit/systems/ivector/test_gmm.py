"""GMM-UBM with EM in JAX (paper 8's 256-component UBM, papers.md 9): densities, chunking,
monotone EM, recovery of a known mixture."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.systems.ivector import frames as frames_lib
from musicrep_jax.systems.ivector import gmm as gmm_lib

TRUE_MEANS = np.array([[-4.0, 0.0, 1.0], [4.0, 0.0, -1.0], [0.0, 5.0, 0.0], [0.0, -5.0, 2.0]])
TRUE_SD = np.array([[0.5, 1.0, 0.7], [1.0, 0.4, 0.6], [0.8, 0.8, 0.3], [0.6, 0.5, 1.2]])
TRUE_WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])


def _clips(num_clips: int = 30, seed: int = 0) -> list:
  """Variable-length clips of frames drawn from the known 4-component mixture."""
  rng = np.random.default_rng(seed)
  clips = []
  for _ in range(num_clips):
    n = int(rng.integers(40, 160))
    comp = rng.choice(4, n, p=TRUE_WEIGHTS)
    clips.append((TRUE_MEANS[comp] + TRUE_SD[comp] * rng.normal(size=(n, 3))).astype(np.float32))
  return clips


def test_component_log_probs_match_scipy():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(0)
  gmm = gmm_lib.DiagGMM(jnp.asarray(TRUE_WEIGHTS, jnp.float32), jnp.asarray(TRUE_MEANS,
                                                                            jnp.float32),
                        jnp.asarray(TRUE_SD ** 2, jnp.float32))
  x = rng.normal(0, 3, (50, 3))
  ours = np.asarray(gmm_lib.component_log_probs(gmm, jnp.asarray(x, jnp.float32)))
  ref = np.stack([np.log(w) + stats.multivariate_normal(m, np.diag(s ** 2)).logpdf(x)
                  for w, m, s in zip(TRUE_WEIGHTS, TRUE_MEANS, TRUE_SD)], axis=1)
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-3)
  _, loglik = gmm_lib.posteriors(gmm, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(np.asarray(loglik), np.logaddexp.reduce(ref, axis=1), atol=1e-3)


def test_statistics_do_not_depend_on_chunking():
  clips = _clips(12)
  all_frames = np.concatenate(clips)
  gmm = gmm_lib.DiagGMM(jnp.asarray(TRUE_WEIGHTS, jnp.float32),
                        jnp.asarray(TRUE_MEANS, jnp.float32), jnp.ones((4, 3)))
  post, loglik = gmm_lib.posteriors(gmm, jnp.asarray(all_frames))
  post = np.asarray(post, np.float64)
  results = []
  for piece_frames, per_batch in ((32, 3), (200, 5)):
    pieces = frames_lib.cut_into_pieces(clips, piece_frames)
    assert pieces.num_frames == len(all_frames)
    results.append(gmm_lib.accumulate_statistics(gmm, pieces, per_batch))
  for stats in results:
    np.testing.assert_allclose(np.asarray(stats.zeroth), post.sum(0), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(stats.first), post.T @ all_frames, rtol=1e-4,
                               atol=1e-2)
    np.testing.assert_allclose(np.asarray(stats.second), post.T @ all_frames ** 2, rtol=1e-4,
                               atol=1e-2)
    np.testing.assert_allclose(float(stats.loglik), float(np.sum(loglik)), rtol=1e-5)
    assert float(stats.frames) == len(all_frames)


def test_em_never_decreases_and_recovers_the_mixture():
  pieces = frames_lib.cut_into_pieces(_clips(), 64)
  config = gmm_lib.UbmConfig(num_components=4, num_iterations=15, iterations_per_split=6,
                             piece_frames=64, pieces_per_batch=8)
  compiled_before = gmm_lib._accumulate._cache_size()
  gmm, stages = gmm_lib.train_ubm(pieces, config)
  assert [s["components"] for s in stages] == [2, 4]
  for stage in stages:
    ll = np.asarray(stage["loglik"])
    assert np.all(np.diff(ll) >= -1e-4), ll
  assert stages[-1]["loglik"][-1] > stages[0]["loglik"][0] + 0.5
  # One E-step compilation per component count (1, 2, 4): batches are fixed-shape and masked.
  assert gmm_lib._accumulate._cache_size() - compiled_before <= 3
  order = [int(np.argmin(np.linalg.norm(np.asarray(gmm.means) - m, axis=1))) for m in TRUE_MEANS]
  assert sorted(order) == [0, 1, 2, 3]
  np.testing.assert_allclose(np.asarray(gmm.means)[order], TRUE_MEANS, atol=0.25)
  np.testing.assert_allclose(np.sqrt(np.asarray(gmm.variances))[order], TRUE_SD, rtol=0.2)
  np.testing.assert_allclose(np.asarray(gmm.weights)[order], TRUE_WEIGHTS, atol=0.05)


def test_split_components_reaches_a_non_power_of_two():
  gmm = gmm_lib.DiagGMM(jnp.asarray([0.7, 0.3]), jnp.zeros((2, 2)), jnp.ones((2, 2)))
  split = gmm_lib.split_components(gmm, 3, 0.2)
  assert split.num_components == 3
  np.testing.assert_allclose(np.asarray(split.weights), [0.35, 0.3, 0.35])
  np.testing.assert_allclose(float(jnp.sum(split.weights)), 1.0)
