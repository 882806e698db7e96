"""Total variability, i-vectors, back end and hybrid of paper 8 (papers.md 9)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.systems.ivector import backend as backend_lib
from musicrep_jax.systems.ivector import frames as frames_lib
from musicrep_jax.systems.ivector import gmm as gmm_lib
from musicrep_jax.systems.ivector import hybrid as hybrid_lib
from musicrep_jax.systems.ivector import total_variability as tv_lib
from tests.helpers import run_cli


def _small_gmm(rng, c=3, d=2):
  return gmm_lib.DiagGMM(jnp.asarray(rng.dirichlet(np.ones(c)), jnp.float32),
                         jnp.asarray(rng.normal(size=(c, d)), jnp.float32),
                         jnp.asarray(rng.uniform(0.5, 2.0, (c, d)), jnp.float32))


def test_ivector_matches_closed_form_supervector_solution():
  rng = np.random.default_rng(0)
  c, d, r, u = 3, 2, 2, 5
  gmm = _small_gmm(rng, c, d)
  t_matrix = rng.normal(size=(c, d, r)).astype(np.float32)
  zeroth = rng.uniform(0.0, 20.0, (u, c)).astype(np.float32)
  first = (rng.normal(size=(u, c, d)) * 5).astype(np.float32)
  ours = tv_lib.extract_ivectors(gmm, jnp.asarray(t_matrix),
                                 tv_lib.ClipStatistics(zeroth, first), clips_per_batch=2)
  # Direct: w = (I + T' S^-1 N T)^-1 T' S^-1 (F - N m) on the whole [C*D] supervector.
  t_sv = t_matrix.reshape(c * d, r).astype(np.float64)
  sigma = np.asarray(gmm.variances, np.float64).reshape(-1)
  means = np.asarray(gmm.means, np.float64)
  for i in range(u):
    n_sv = np.repeat(zeroth[i].astype(np.float64), d)
    f_sv = (first[i] - zeroth[i][:, None] * means).reshape(-1)
    precision = np.eye(r) + t_sv.T @ np.diag(n_sv / sigma) @ t_sv
    w = np.linalg.solve(precision, t_sv.T @ (f_sv / sigma))
    np.testing.assert_allclose(ours[i], w, rtol=1e-4, atol=1e-5)


def test_baum_welch_statistics_match_direct_posteriors():
  rng = np.random.default_rng(1)
  gmm = _small_gmm(rng, 4, 3)
  clips = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 40, 0, 13, 1, 0, 27)]
  pieces = frames_lib.cut_into_pieces(clips, 8)  # clips span pieces and batches; empty clips
  stats = tv_lib.baum_welch_statistics(gmm, pieces, pieces_per_batch=3)
  all_post = np.asarray(gmm_lib.posteriors(gmm, jnp.asarray(np.concatenate(clips)))[0],
                        np.float64)
  ends = np.cumsum([len(c) for c in clips])
  for i, (clip, post) in enumerate(zip(clips, np.split(all_post, ends[:-1]))):
    np.testing.assert_allclose(stats.zeroth[i], post.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.first[i], post.T @ clip, rtol=1e-4, atol=1e-4)


def _artist_frames(num_artists=6, clips_per_artist=8, seed=0):
  """Frames of clips whose GMM means are shifted by an artist offset in a 3-d subspace."""
  rng = np.random.default_rng(seed)
  d, c = 6, 4
  base = rng.normal(0, 3, (c, d))
  basis = rng.normal(size=(3, c * d))
  offsets = rng.normal(0, 1.0, (num_artists, 3))
  clips, labels = [], []
  for a in range(num_artists):
    for _ in range(clips_per_artist):
      shift = (offsets[a] + 0.3 * rng.normal(size=3)) @ basis
      means = base + shift.reshape(c, d) * 0.5
      comp = rng.integers(0, c, 150)
      clips.append((means[comp] + rng.normal(size=(150, d))).astype(np.float32))
      labels.append(a)
  return clips, np.asarray(labels)


@pytest.fixture(scope="module")
def fitted():
  clips, labels = _artist_frames()
  pieces = frames_lib.cut_into_pieces(clips, 64)
  ubm, _ = gmm_lib.train_ubm(pieces, gmm_lib.UbmConfig(
      num_components=4, num_iterations=5, iterations_per_split=3, piece_frames=64,
      pieces_per_batch=16))
  stats = tv_lib.baum_welch_statistics(ubm, pieces, 16)
  return clips, labels, ubm, stats


@pytest.mark.parametrize("min_divergence", [False, True])
def test_total_variability_em_objective_never_decreases(fitted, min_divergence):
  _, _, ubm, stats = fitted
  _, history = tv_lib.train_total_variability(ubm, stats, tv_lib.TvConfig(
      ivector_dim=5, num_iterations=8, clips_per_batch=16, min_divergence=min_divergence))
  history = np.asarray(history)
  assert np.all(np.diff(history) >= -1e-3 * np.abs(history[1:])), history
  assert history[-1] > history[0]


@pytest.mark.parametrize("scoring", backend_lib.SCORINGS)
def test_ivectors_identify_held_out_artists(fitted, scoring):
  clips, labels, ubm, stats = fitted
  t_matrix, _ = tv_lib.train_total_variability(ubm, stats, tv_lib.TvConfig(
      ivector_dim=5, num_iterations=6, clips_per_batch=16))
  ivectors = tv_lib.extract_ivectors(ubm, t_matrix, stats, 16)
  held_out = np.arange(len(labels)) % 4 == 0
  params = backend_lib.fit_backend(ivectors[~held_out], labels[~held_out],
                                   backend_lib.BackendConfig(scoring=scoring))
  acc = backend_lib.accuracy(params, backend_lib.score(params, ivectors[held_out]),
                             labels[held_out])
  assert acc >= 0.75, acc  # chance: 1/6


def test_plda_scores_match_direct_gaussian_densities():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(3)
  dim, k = 3, 4
  a = rng.normal(size=(dim, dim))
  within, between = a @ a.T + np.eye(dim), np.diag(rng.uniform(1, 3, dim))
  mu, means, counts = rng.normal(size=dim), rng.normal(size=(k, dim)), np.array([1., 2, 5, 9])
  z = rng.normal(size=(6, dim))
  ours = np.asarray(backend_lib.plda_scores(*(jnp.asarray(v, jnp.float32) for v in (
      z, means, counts, mu, within, between))))
  for j in range(k):
    post_cov = np.linalg.inv(np.linalg.inv(between) + counts[j] * np.linalg.inv(within))
    post_mean = post_cov @ (np.linalg.solve(between, mu) + counts[j] * np.linalg.solve(
        within, means[j]))
    ref = stats.multivariate_normal(post_mean, within + post_cov).logpdf(z)
    np.testing.assert_allclose(ours[:, j], ref, rtol=1e-4, atol=1e-3)


def test_fusion_weight_follows_the_informative_system():
  rng = np.random.default_rng(4)
  labels = rng.integers(0, 5, 40)
  good = np.eye(5)[labels] + 0.1 * rng.normal(size=(40, 5))
  noise = rng.normal(size=(40, 5))
  class_ids = np.arange(5)
  assert hybrid_lib.choose_fusion_weight(good, noise, labels, class_ids) >= 0.5
  assert hybrid_lib.choose_fusion_weight(noise, good, labels, class_ids) <= 0.5
  fused = hybrid_lib.fuse_scores(good, noise, 1.0)
  np.testing.assert_array_equal(np.argmax(fused, 1), np.argmax(good, 1))


def test_cli_rejects_a_bad_backend_before_fitting(tmp_path):
  proc = run_cli(["ivector", "fit", "--config", "configs/ivector_hybrid.py:runlocal",
                  "--workdir", str(tmp_path / "w"), "--config.backend.scoring=lda"],
                 check=False)
  assert proc.returncode == 2
  assert "config.backend.scoring must be one of" in proc.stderr


def test_fit_checks_the_dcnn_trainer_keys_before_any_work(tmp_path):
  """The ``ivector`` runner trains the DCNN with the config's trainer keys: bad ones are a
  ``UserError`` before features are computed (``load_config`` validates trainer configs only)."""
  from musicrep_jax import config_loading
  from musicrep_jax.errors import UserError
  from musicrep_jax.systems.ivector import pipeline

  config = config_loading.load_config("ivector_hybrid:runlocal", ["--config.batch_size=0"])
  assert config.runner == "ivector"
  with pytest.raises(UserError, match="config.batch_size must be a positive number"):
    pipeline.fit(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()
