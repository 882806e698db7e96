"""Paper 8's i-vector system (papers.md 9) through `musicrep ivector fit` and `ivector eval` in
fresh processes on the tiny corpus. (Its parts: tests/unit/systems/ivector/test_ivector.py.)"""

import json

import numpy as np
import pytest

from tests.helpers import run_cli


@pytest.mark.slow
def test_cli_fit_then_eval_reproduces(tiny_data_dir, tmp_path):
  """The whole chain through the CLI on the tiny corpus (a few DCNN steps): models are saved,
  `ivector eval` reloads them and reproduces the test metrics of `ivector fit`."""
  workdir = tmp_path / "ivec"
  common = ["--config.ubm.num_components=8", "--config.ubm.num_iterations=2",
            "--config.ubm.iterations_per_split=1", "--config.tv.ivector_dim=8",
            "--config.tv.num_iterations=2", "--config.num_train_steps=4",
            "--config.batch_size=8", "--config.progress_bar=false"]
  fit = run_cli(["ivector", "fit", "--config", "configs/ivector_hybrid.py:runlocal",
                 "--workdir", str(workdir), "--data-dir", str(tiny_data_dir), *common])
  summary = json.loads(fit.stdout.strip().splitlines()[-1])
  for system in ("ivector", "dcnn", "dcnn_softmax", "hybrid_score", "hybrid_feature", "hybrid"):
    assert 0.0 <= summary[f"{system}_accuracy"] <= 1.0
  assert 0.0 <= summary["fusion_weight"] <= 1.0
  for name in ("ubm", "tv", "backend_ivector", "backend_dcnn", "backend_fused"):
    assert (workdir / "ivector" / f"{name}.npz").exists()
  history = json.loads((workdir / "ivector" / "history.json").read_text())
  for stage in history["ubm"]:
    assert np.all(np.diff(stage["loglik"]) >= -1e-4)
  evaluated = run_cli(["ivector", "eval", "--workdir", str(workdir), "--data-dir",
                       str(tiny_data_dir)])
  again = json.loads(evaluated.stdout.strip().splitlines()[-1])
  for key in ("ivector_accuracy", "dcnn_accuracy", "hybrid_accuracy", "clips", "chance"):
    assert again[key] == pytest.approx(summary[key], abs=1e-6), key
