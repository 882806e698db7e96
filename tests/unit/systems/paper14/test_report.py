"""Paper 14's time-to-quality analysis (``systems/paper14/report.py``): training time rebuilt
from the trainer's logs, time to target, the ratios to the baseline and the table's labels."""

import math

import numpy as np

from musicrep_jax.systems.paper14 import report


def test_time_to_target_and_train_time_reconstruction():
  records = [{"split": "train", "step": 10, "steps_per_s": 9.0},
             {"split": "train", "step": 20, "steps_per_s": 5.0},
             {"split": "validation", "step": 10, "acc": 0.6},
             {"split": "validation", "step": 20, "acc": 0.7}]
  steps, seconds, values = report.curve(records, "validation", "acc")
  np.testing.assert_allclose(seconds, [1.0, 3.0])  # 9 steps at 9/s, then 10 at 5/s.
  assert report.time_to_target(steps, seconds, values, 0.9) == (20.0, 3.0)
  assert report.time_to_target(steps, seconds, values, 0.5) == (10.0, 1.0)
  nan = report.time_to_target(np.array([]), np.array([]), np.array([]), 0.9)
  assert all(math.isnan(x) for x in nan)


def test_time_ratios_divide_by_the_baseline_row():
  rows = [{"name": "a-plain", "s_to_target": 6.0, "s_per_step": 0.75},
          {"name": "classification-plain", "s_to_target": 2.0, "s_per_step": 0.25}]
  report.add_time_ratios(rows, "classification-plain")
  assert [r["time_ratio"] for r in rows] == [3.0, 1.0]
  assert [r["step_time_ratio"] for r in rows] == [3.0, 1.0]
  report.add_time_ratios(rows[:1], "classification-plain")  # No baseline in the grid.
  assert math.isnan(rows[0]["time_ratio"]) and math.isnan(rows[0]["step_time_ratio"])


def test_cell_labels_name_the_poster_rows():
  assert report.cell_labels("classification_nonorm", "plain") == {
      "name": "classification_nonorm-plain", "model": "classification + no L2", "l2": "no",
      "disentangled": "no"}
  assert report.cell_labels("triplet_track", "disentangled")["model"] == "triplet + track"
  assert report.cell_labels("proxy", "disentangled")["disentangled"] == "yes"
