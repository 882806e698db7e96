"""Training curves (``training/curves.py``) and their writer (``training/writers.py``): training
time rebuilt from the trainer's rows, time to a threshold, the panels of ``curves.png``, the
plot redrawn at evaluations and never stopping training, and the TensorBoard hint."""

import importlib.util
import math

import numpy as np
import pytest

from musicrep_jax.errors import UserError
from musicrep_jax.training import curves, writers

PNG = b"\x89PNG\r\n\x1a\n"


def _rows():
  rows = [{"split": "train", "step": s, "loss": 1.0 / s, "learning_rate": 0.1 - 0.001 * s,
           "grad_norm": 1.0, "steps_per_s": 10.0, "samples_per_s": 80.0} for s in (2, 4, 6)]
  rows.append({"split": "train", "step": 8, "loss": "nan", "steps_per_s": 5.0})
  rows += [{"split": "validation", "step": s, "loss": 2.0 / s, "roc_auc": auc, "pr_auc": 0.3,
            "clips": 10} for s, auc in ((4, 0.6), (8, 0.7))]
  rows.append({"split": "test", "step": 8, "roc_auc": 0.65})
  return rows


def test_curve_places_evaluations_on_the_training_clock():
  rows = _rows()
  steps, seconds = curves.train_time_at_steps(rows)
  np.testing.assert_allclose(steps, [1, 2, 4, 6, 8])
  np.testing.assert_allclose(seconds, [0.0, 0.1, 0.3, 0.5, 0.9])  # The last 2 steps at 5/s.
  steps, seconds, values = curves.curve(rows, "validation", "roc_auc")
  np.testing.assert_allclose(steps, [4, 8])
  np.testing.assert_allclose(seconds, [0.3, 0.9])
  np.testing.assert_allclose(values, [0.6, 0.7])
  assert len(curves.curve(rows, "train", "loss")[0]) == 3  # The "nan" row is left out.


def test_time_to_threshold_for_rising_and_falling_metrics():
  steps, seconds, values = [4.0, 8.0], [0.3, 0.9], [0.6, 0.7]
  assert curves.time_to_threshold(steps, seconds, values, 0.65) == (8.0, 0.9)
  assert curves.time_to_threshold(steps, seconds, values, 0.6) == (4.0, 0.3)
  assert all(math.isnan(x) for x in curves.time_to_threshold(steps, seconds, values, 0.8))
  assert curves.time_to_threshold(steps, seconds, [0.5, 0.2], 0.3, mode="min") == (8.0, 0.9)


def test_default_panels_are_loss_learning_rate_and_validation_metrics():
  rows = _rows()
  assert curves.default_metrics(rows) == ["loss", "learning_rate", "roc_auc", "pr_auc"]
  assert curves.default_metrics(rows, limit=1) == ["loss", "learning_rate", "roc_auc"]
  rows.append({"split": "validation", "step": 8, "tag:genre/map": 0.2,
               "overall/triplet_acc": 0.6, "accuracy": 0.5})
  assert curves.default_metrics(rows) == ["loss", "learning_rate", "roc_auc", "pr_auc",
                                          "accuracy", "overall/triplet_acc"]
  panels = curves.run_curves(rows, ["loss", "learning_rate", "roc_auc"])
  assert set(panels["loss"]) == {"train", "validation"} and set(panels["roc_auc"]) == {
      "validation"}


def test_writer_plots_at_evaluations_and_close(tmp_path, monkeypatch):
  monkeypatch.setattr(writers, "PLOT_AFTER_S", 0.0)
  writer = writers.MetricWriter(tmp_path)
  for row in _rows()[:3]:
    writer.write(row["step"], "train", {k: v for k, v in row.items() if k not in ("split",
                                                                                 "step")})
  assert not (tmp_path / "curves.png").exists()  # Train rows alone do not redraw.
  writer.write(4, "validation", {"loss": 0.5, "roc_auc": 0.6})
  first = (tmp_path / "curves.png").read_bytes()
  assert first[:8] == PNG
  writer.write(8, "train", {"loss": 0.1, "learning_rate": 0.01, "steps_per_s": 5.0})
  writer.close()  # Rows since the last plot: redrawn.
  assert (tmp_path / "curves.png").read_bytes() != first


def test_a_failing_plot_is_one_warning_line_and_training_goes_on(tmp_path, monkeypatch, capsys):
  def broken(*args, **kwargs):
    raise RuntimeError("no display")

  monkeypatch.setattr(writers, "PLOT_AFTER_S", 0.0)
  monkeypatch.setattr(curves, "write_curves", broken)
  writer = writers.MetricWriter(tmp_path)
  for step in (1, 2, 3):
    writer.write(step, "train", {"loss": 1.0, "steps_per_s": 1.0})
    writer.write(step, "validation", {"roc_auc": 0.5})
  writer.close()
  lines = [l for l in capsys.readouterr().out.splitlines() if "curves.png" in l]
  assert len(lines) == 1 and lines[0].startswith("Warning:") and "no display" in lines[0]
  assert len(writers.read_jsonl(tmp_path / "metrics.jsonl")) == 6


def test_plot_workdirs_refuses_unknown_metrics_and_non_workdirs(tmp_path):
  (tmp_path / "a").mkdir()
  with pytest.raises(UserError, match="has no metrics.jsonl"):
    curves.plot_workdirs([str(tmp_path / "a")], str(tmp_path / "x.png"))
  writer = writers.MetricWriter(tmp_path / "a", plots=False)
  writer.write(2, "train", {"loss": 1.0, "steps_per_s": 1.0})
  writer.close()
  with pytest.raises(UserError, match="--metric 'roc_auc' is in none of the runs"):
    curves.plot_workdirs([str(tmp_path / "a")], str(tmp_path / "x.png"), metrics=["roc_auc"])
  summary = curves.plot_workdirs([str(tmp_path / "a")], str(tmp_path / "out" / "x.png"))
  assert summary["metrics"] == "loss" and (tmp_path / "out" / "x.png").read_bytes()[:8] == PNG


def test_tensorboard_hint_says_how_to_install_it(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "tensorboard" else real(name, *a))
  assert writers.tensorboard_hint("w/tensorboard") == (
      "pip install -e '.[tensorboard]' (TensorBoard is not installed), then "
      "tensorboard --logdir w/tensorboard")
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
  assert writers.tensorboard_hint("w/tensorboard") == "tensorboard --logdir w/tensorboard"
