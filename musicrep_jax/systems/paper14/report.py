"""Paper 14's time-to-quality analysis of a trained grid (papers.md 15.4): curves, tables, plots.

From each cell's ``metrics.jsonl`` and ``timing.json`` (``summarize_run``):

* ``table.md`` / ``table.csv`` (``write_tables``): one row per cell; the paper's four tasks as
  column groups: training time, similarity retrieval (Recall@K, relevance = same class in a tag
  dimension, averaged over the four dimensions), auto-tagging (ROC-AUC, head or linear probe),
  triplet prediction (per dimension and overall, complete space, and overall in the subspaces),
  all on the held-out test split with the best checkpoint;
* ``plots/metric_vs_time.png`` (``write_plots``): validation triplet accuracy and tagging
  ROC-AUC against training wall time (compile, evaluation and checkpoint time excluded);
* ``results.json``: everything in the table plus the curves.

Training time. ``train_s`` is the trainer's wall time of the training steps without the first
step (the compile), evaluations and checkpoints; ``compile_s`` is reported beside it. The time
to a target is the training time at the first validation point whose metric reaches
``chance + fraction * (final - chance)`` (``time_to_target``; chance 0.5 for triplet accuracy
and ROC-AUC); ``time ratio`` divides it by the baseline cell's (the plain classification model,
``add_time_ratios``), as the poster's "training time ratio" (whose definition the paper does not
give, papers.md 15.4).
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Optional, Sequence

import numpy as np

from musicrep_jax import storage
from musicrep_jax.training.curves import curve, read_jsonl, time_to_threshold

CHANCE = 0.5
RECALL_KS = (1, 2, 4, 8)


# ------------------------------------------------------------------------------ reading runs


def time_to_target(steps, seconds, values, fraction: float, chance: float = CHANCE) -> tuple:
  """(step, seconds) of the first point reaching ``chance + fraction * (final - chance)`` (the
  last point when none does: a final value below chance)."""
  if len(values) == 0 or not np.isfinite(values[-1]):
    return float("nan"), float("nan")
  reached = time_to_threshold(steps, seconds, values, chance + fraction * (values[-1] - chance))
  return reached if np.isfinite(reached[0]) else (float(steps[-1]), float(seconds[-1]))


def summarize_run(workdir: pathlib.Path, target: str, fraction: float, dims: tuple) -> dict:
  """One cell's numbers: timing, test metrics, curves."""
  records = read_jsonl(workdir / "metrics.jsonl")
  timing = json.loads((workdir / "timing.json").read_text())
  tests = [r for r in records if r["split"] == "test"]
  test = tests[-1] if tests else {}
  steps, seconds, values = curve(records, "validation", target)
  step_at, seconds_at = time_to_target(steps, seconds, values, fraction)
  auc_steps, auc_seconds, auc_values = curve(records, "validation", "roc_auc")
  row = {
      "train_s": float(timing["train_s"]), "compile_s": float(timing["compile_s"]),
      "eval_s": float(timing["eval_s"]), "steps": int(timing["steps"]),
      "s_per_step": float(timing["train_s"]) / max(int(timing["steps"]) - 1, 1),
      "steps_to_target": step_at, "s_to_target": seconds_at,
      "roc_auc": test.get("roc_auc", float("nan")),
      "overall_triplet_acc": test.get("overall/triplet_acc", float("nan")),
      "overall_sub_triplet_acc": test.get("overall/sub_triplet_acc", float("nan")),
      "track_triplet_acc": test.get("track/triplet_acc", float("nan")),
  }
  for k in RECALL_KS:
    row[f"R@{k}"] = test.get(f"overall/recall@{k}", float("nan"))
  for dim in dims:
    row[f"{dim.split(':')[-1]}_triplet_acc"] = test.get(f"{dim}/triplet_acc", float("nan"))
  row["curves"] = {"target": {"steps": steps.tolist(), "seconds": seconds.tolist(),
                              "values": values.tolist()},
                   "roc_auc": {"steps": auc_steps.tolist(), "seconds": auc_seconds.tolist(),
                               "values": auc_values.tolist()}}
  return row


def cell_labels(approach: str, variant: str) -> dict:
  """The table's name columns of a cell: ``name``, ``model``, ``l2``, ``disentangled``."""
  return {"name": f"{approach}-{variant}",
          "model": approach.replace("_", " + ").replace("nonorm", "no L2"),
          "l2": "no" if approach == "classification_nonorm" else "yes",
          "disentangled": "yes" if variant == "disentangled" else "no"}


def add_time_ratios(rows: list, baseline: str) -> None:
  """``time_ratio`` (seconds to target) and ``step_time_ratio`` (seconds per step) of every row
  to the row named ``baseline``'s, in place; NaN when the grid lacks the baseline."""
  base = next((r for r in rows if r["name"] == baseline), None)
  for row in rows:
    row["time_ratio"] = row["s_to_target"] / base["s_to_target"] if base else float("nan")
    row["step_time_ratio"] = row["s_per_step"] / base["s_per_step"] if base else float("nan")


# ------------------------------------------------------------------------------ writing


def table_columns(dims: tuple) -> list:
  """(key, header) of the table: the paper's four tasks as column groups."""
  cols = [("model", "model"), ("l2", "L2"), ("disentangled", "disent."),
          ("time_ratio", "time: ratio to target"), ("step_time_ratio", "time: s/step ratio"),
          ("s_to_target", "time: s to target"), ("steps_to_target", "time: steps to target"),
          ("train_s", "time: train s"), ("compile_s", "time: compile s")]
  cols += [(f"R@{k}", f"retrieval: R@{k}") for k in RECALL_KS]
  cols += [("roc_auc", "tagging: ROC-AUC")]
  cols += [(f"{d.split(':')[-1]}_triplet_acc", f"triplet: {d.split(':')[-1]}") for d in dims]
  cols += [("overall_triplet_acc", "triplet: overall"),
           ("overall_sub_triplet_acc", "triplet: overall (sub-space)"),
           ("track_triplet_acc", "triplet: track")]
  return cols


def _fmt(value) -> str:
  if isinstance(value, float):
    if value != value:
      return "-"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
  return str(value)


def write_tables(rows: list, out: pathlib.Path, dims: tuple, note: str) -> None:
  cols = table_columns(dims)
  with open(out / "table.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow([key for key, _ in cols])
    for row in rows:
      writer.writerow([row.get(key, "") for key, _ in cols])
  lines = ["| " + " | ".join(h for _, h in cols) + " |",
           "|" + "---|" * len(cols)]
  lines += ["| " + " | ".join(_fmt(row.get(key, "")) for key, _ in cols) + " |" for row in rows]
  (out / "table.md").write_text("# Paper 14 grid on the embedded corpus\n\n" + note + "\n\n"
                                + "\n".join(lines) + "\n")


def write_plots(rows: list, out: pathlib.Path, target: str) -> pathlib.Path:
  """``plots/metric_vs_time.png``: validation ``target`` and ROC-AUC against training time, one
  line per cell (dashed: disentangled), drawn by ``training/curves.py``."""
  from musicrep_jax.training import curves

  lines = []
  for row in rows:
    disentangled = row["disentangled"] == "yes"
    points = {name: {"validation": (c.get("steps", []), c["seconds"], c["values"])}
              for name, c in (("target", row["curves"]["target"]),
                              ("roc_auc", row["curves"]["roc_auc"]))}
    lines.append({"label": f"{row['model']} ({'disentangled' if disentangled else 'plain'})",
                  "style": {"linestyle": "--" if disentangled else "-"}, "curves": points})
  (out / "plots").mkdir(exist_ok=True)
  return curves.plot(lines, out / "plots" / "metric_vs_time.png", metrics=["target", "roc_auc"],
                     x_axes=("time",), dpi=110,
                     titles={"target": f"validation {target}",
                             "roc_auc": "validation tagging ROC-AUC"})


def write_report(rows: list, out: storage.AnyPath, dims: Optional[Sequence[str]], *, size: str,
                 target: str, fraction: float) -> dict:
  """The tables, the plot and ``results.json`` of the grid's ``rows`` into ``out`` (a remote
  ``out``: written locally, copied up, ``storage.local_dir``); prints the table and returns the
  command's summary (``out``, ``cells``, ``table``, ``plot``)."""
  note = (f"Held-out test split, best checkpoint by validation loss. Size {size}. Time to "
          f"target: training seconds (no compile/eval) until validation {target} reaches "
          f"chance + {fraction} x (final - chance); ratios are to plain classification. "
          "R@K: a clip of the same class in the top K, averaged over the tag dimensions.")
  dims = tuple(dims or ())
  with storage.local_dir(out) as local:
    write_tables(rows, local, dims, note)
    plot = write_plots(rows, local, target).relative_to(local)
    (local / "results.json").write_text(json.dumps(rows, indent=1))
    table = (local / "table.md").read_text()
  print(table)
  return {"out": str(out), "cells": len(rows), "table": str(out / "table.md"),
          "plot": str(out.joinpath(*plot.parts))}
