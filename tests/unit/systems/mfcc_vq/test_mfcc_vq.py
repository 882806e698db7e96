"""Paper 13's MFCC-VQ baseline: k-means finds planted clusters (as well as scikit-learn), and
``musicrep mfcc-vq`` on the tiny corpus writes the codebook and scores the histograms with the
metric-learning evaluation and a miniature dim-sim file (real WAV clips)."""

import json

import numpy as np
import pytest
from sklearn.cluster import KMeans

from musicrep_jax import cli
from musicrep_jax.errors import UserError
from musicrep_jax.systems.mfcc_vq import kmeans
from tests.helpers import write_dimsim


def test_kmeans_recovers_planted_clusters():
  rng = np.random.default_rng(0)
  centres = rng.normal(scale=10.0, size=(8, 5))
  labels = rng.integers(0, 8, 4000)
  x = (centres[labels] + rng.normal(scale=0.3, size=(4000, 5))).astype(np.float32)
  codebook, info = kmeans.kmeans(x, 8, iterations=30, seed=0, chunk=512)
  ours = info["inertia"]
  theirs = KMeans(8, n_init=10, random_state=0).fit(x).inertia_ / len(x)
  assert ours <= theirs * 1.05, (ours, theirs)
  codes = kmeans.assign(x, codebook, chunk=333)
  # Each planted cluster maps to one codeword (a permutation).
  pairs = set(zip(labels.tolist(), codes.tolist()))
  assert len(pairs) == 8 and len({c for _, c in pairs}) == 8
  assert info["iterations"] < 30  # converged: no assignment changed
  with pytest.raises(UserError, match="needs at least 8 frames"):
    kmeans.kmeans(x[:5], 8)


def _dimsim_files(tmp_path, sr):
  """Three tracks: A and B the same two-tone chord, C white noise; every rater chose B."""
  t = np.arange(5 * sr) / sr
  chord = 0.3 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 660 * t))
  noise = 0.3 * np.random.default_rng(0).normal(size=len(t))
  tracks = {"TRA": chord, "TRB": chord[::-1].copy(), "TRC": noise}
  return write_dimsim(tmp_path, sr, tracks, [("TRA", "TRB", "TRC", (7, 0)),
                                             ("TRA", "TRC", "TRB", (1, 6))])


def test_mfcc_vq_command_on_the_tiny_corpus(tiny_data_dir, tmp_path, capsys):
  path, audio = _dimsim_files(tmp_path, 16000)
  workdir = tmp_path / "w"
  assert cli.main(["mfcc-vq", "--config", "mfcc_vq:runlocal", "--workdir", str(workdir),
                   "--data-dir", str(tiny_data_dir), "--config.codebook.size=16",
                   "--config.codebook.frames=3000", "--config.task.eval_triplets=500",
                   "--config.data.segments_per_clip=2", f"--config.dimsim.path={path}",
                   f"--config.dimsim.audio_dir={audio}"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  codebook = np.load(workdir / "codebook.npy")
  assert codebook.shape == (16, 39) and np.isfinite(codebook).all()
  saved = json.loads((workdir / "results.json").read_text())
  assert saved["codebook_frames"] == result["codebook_frames"] == 3000
  for dim in ("tag:genre", "tag:mood", "tag:instrument", "tag:tempo"):
    assert 0.0 <= result[f"{dim}/triplet_acc"] <= 1.0
    assert 0.0 <= result[f"{dim}/recall@8"] <= 1.0
  assert "overall/triplet_acc" in result and "probe_roc_auc" in result
  assert "loss" not in result and "tag:genre/sub_triplet_acc" not in result
  # Two windows of one clip share its sound: track triplets well above chance.
  assert result["track/triplet_acc"] > 0.7
  assert result["dimsim/agreement"] == 1.0 and result["dimsim/triplets"] == 2
