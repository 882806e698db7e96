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


def test_the_orderings_hold_on_the_posters_own_numbers_and_fail_when_one_flips():
  poster = report.poster_rows()
  assert set(poster) == set(report.POSTER) and poster["proxy-plain"]["R@1"] == 0.45
  assert [held for _, held, _ in report.check_orderings(poster)] == [True] * len(
      report.ORDERINGS)
  flipped = {name: dict(row) for name, row in poster.items()}
  flipped["triplet-plain"]["R@1"] = 0.50  # Above every proxy / classification cell.
  results = {claim: (held, detail) for claim, held, detail in report.check_orderings(flipped)}
  held, detail = results["retrieval: proxy and L2 classification beat triplet learning at R@1"]
  assert held is False and "0.438 (classification-plain)" in detail and "0.500" in detail
  assert sum(held is False for held, _ in results.values()) == 1
  del flipped["proxy-plain"]
  missing = report.check_orderings(flipped)
  assert [h for c, h, _ in missing if "proxy is slower" in c] == [None, None]
  assert all(h is not None for c, h, _ in missing if "track regularisation" in c)


def test_the_poster_table_puts_ours_beside_the_posters():
  row = dict(report.cell_labels("proxy", "plain"), time_ratio=1.5, step_time_ratio=0.9,
             roc_auc=0.8, overall_triplet_acc=0.7, tempo_triplet_acc=0.6, **{"R@1": 0.5})
  header, _, line = report.poster_table([row], ("tag:genre", "tag:mood", "tag:instrument",
                                                "tag:tempo"))
  cells = dict(zip(header.strip("| ").split(" | "), line.strip("| ").split(" | ")))
  assert cells["time ratio: to target"] == "1.500 / 1.110"
  assert cells["time ratio: per step"] == "0.900 / 1.110"
  assert cells["R@1"] == "0.500 / 0.450" and cells["R@8"] == "- / 0.809"
  assert cells["triplet: tempo (poster: era)"] == "0.600 / 0.693"
  assert cells["triplet: genre"] == "- / 0.774" and cells["triplet: overall"] == "0.700 / 0.714"
