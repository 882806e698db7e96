"""Paper 14's time-to-quality analysis of a trained grid (papers.md 15.4): curves, tables, plots.

From each cell's ``metrics.jsonl`` and ``timing.json`` (``summarize_run``):

* ``table.md`` / ``table.csv`` (``write_tables``): one row per cell; the paper's four tasks as
  column groups: training time, similarity retrieval (Recall@K, relevance = same class in a tag
  dimension, averaged over the four dimensions), auto-tagging (ROC-AUC, head or linear probe),
  triplet prediction (per dimension and overall, complete space, and overall in the subspaces),
  all on the held-out test split with the best checkpoint;
* ``plots/metric_vs_time.png`` (``write_plots``): validation triplet accuracy and tagging
  ROC-AUC against training wall time (compile, evaluation and checkpoint time excluded);
* ``results.json``: everything in the table plus the curves;
* below the table in ``table.md``: the poster's numbers beside ours (``POSTER``,
  ``write_poster_table``: "ours / poster" per cell) and the orderings the poster reports,
  checked on both (``ORDERINGS``, ``check_orderings``: held, not held, or not checked when a
  cell is missing).

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

# The poster's tables (papers.md 15.4; MSD, 50 tags, Inception backbone, paper scale), keyed by
# cell name: training time ratio, Recall@1/2/4/8 in %, tagging ROC-AUC, complete-space triplet
# accuracy (genre, mood, instrument, era, overall) and sub-space triplet accuracy (the same five;
# disentangled cells only). The poster does not say what its time covers (papers.md 15.3), so its
# ratio stands beside both of ours (to target and per step).
POSTER_DIMENSIONS = ("genre", "mood", "instrument", "era")
POSTER = {
    "triplet-plain": (1.87, (31.8, 45.2, 59.9, 73.0), 0.815,
                      (0.771, 0.725, 0.653, 0.701, 0.712), None),
    "triplet-disentangled": (2.37, (36.5, 50.5, 64.1, 76.0), 0.825,
                             (0.762, 0.744, 0.696, 0.733, 0.733),
                             (0.790, 0.785, 0.798, 0.797, 0.792)),
    "triplet_track-disentangled": (3.05, (33.9, 47.5, 61.9, 74.3), 0.813,
                                   (0.757, 0.733, 0.673, 0.715, 0.720),
                                   (0.775, 0.748, 0.743, 0.742, 0.752)),
    "proxy-plain": (1.11, (45.0, 58.5, 71.0, 80.9), 0.890,
                    (0.774, 0.742, 0.645, 0.693, 0.714), None),
    "proxy-disentangled": (1.29, (44.7, 58.2, 70.7, 80.6), 0.890,
                           (0.762, 0.742, 0.660, 0.716, 0.720),
                           (0.777, 0.740, 0.734, 0.700, 0.738)),
    "classification_nonorm-plain": (1.00, (6.1, 11.5, 21.1, 35.9), 0.887,
                                    (0.783, 0.745, 0.659, 0.723, 0.728), None),
    "classification-plain": (1.00, (43.8, 57.8, 70.3, 80.3), 0.887,
                             (0.776, 0.747, 0.647, 0.704, 0.719), None),
    "classification-disentangled": (1.27, (44.7, 58.4, 70.7, 80.9), 0.890,
                                    (0.758, 0.742, 0.659, 0.715, 0.719),
                                    (0.775, 0.739, 0.732, 0.701, 0.737)),
}

_TRIPLET = ("triplet-plain", "triplet-disentangled", "triplet_track-disentangled")
_PROXY = ("proxy-plain", "proxy-disentangled")
_CLASSIFICATION = ("classification_nonorm-plain", "classification-plain",
                   "classification-disentangled")
_DISENTANGLED = ("triplet-disentangled", "triplet_track-disentangled", "proxy-disentangled",
                 "classification-disentangled")
# The orderings the poster's tables show (and its conclusions state: classification is better
# for training time, retrieval and tagging, metric learning for triplet prediction), each as
# (claim, above, below): it holds when every (cell, key) of ``above`` is strictly greater than
# every one of ``below``. Time claims are checked with both time ratios.
ORDERINGS = tuple(
    (f"{claim} ({label})", [(c, key) for c in above], [(c, key) for c in below])
    for key, label in (("time_ratio", "time to target"), ("step_time_ratio", "time per step"))
    for claim, above, below in (
        ("training time: triplet learning is slower than proxy and classification", _TRIPLET,
         _PROXY + _CLASSIFICATION),
        ("training time: proxy is slower than classification", ("proxy-plain",),
         ("classification-plain",)),
        ("training time: disentangling slows triplet learning", ("triplet-disentangled",),
         ("triplet-plain",)),
        ("training time: disentangling slows proxy learning", ("proxy-disentangled",),
         ("proxy-plain",)),
        ("training time: disentangling slows classification", ("classification-disentangled",),
         ("classification-plain",)),
        ("training time: track regularisation slows triplet learning",
         ("triplet_track-disentangled",), ("triplet-disentangled",)),
    )) + (
    ("retrieval: proxy and L2 classification beat triplet learning at R@1",
     [(c, "R@1") for c in _PROXY + _CLASSIFICATION[1:]], [(c, "R@1") for c in _TRIPLET]),
    ("retrieval: classification needs the L2 normalisation (R@1)",
     [("classification-plain", "R@1")], [("classification_nonorm-plain", "R@1")]),
    ("tagging: proxy and classification beat triplet learning at ROC-AUC",
     [(c, "roc_auc") for c in _PROXY + _CLASSIFICATION], [(c, "roc_auc") for c in _TRIPLET]),
    ("triplet prediction: disentangling helps triplet learning (complete space, overall)",
     [("triplet-disentangled", "overall_triplet_acc")],
     [("triplet-plain", "overall_triplet_acc")]),
    ("triplet prediction: disentangled triplet learning in its sub-spaces beats every cell "
     "(overall)", [("triplet-disentangled", "overall_sub_triplet_acc")],
     [(c, "overall_triplet_acc") for c in POSTER]
     + [(c, "overall_sub_triplet_acc") for c in _DISENTANGLED[1:]]),
)


def poster_rows() -> dict:
  """``POSTER`` as rows with the keys of ``summarize_run`` (R@K as fractions; the
  dimensions named as ``POSTER_DIMENSIONS``), keyed by cell name."""
  rows = {}
  for name, (ratio, recalls, auc, complete, sub) in POSTER.items():
    row = {"time_ratio": ratio, "step_time_ratio": ratio, "roc_auc": auc,
           "overall_triplet_acc": complete[-1],
           "overall_sub_triplet_acc": sub[-1] if sub else float("nan")}
    row.update({f"R@{k}": r / 100.0 for k, r in zip(RECALL_KS, recalls)})
    row.update({f"{d}_triplet_acc": v for d, v in zip(POSTER_DIMENSIONS, complete)})
    rows[name] = row
  return rows


def check_orderings(rows: dict) -> list:
  """``ORDERINGS`` on ``rows`` (cell name -> row): one (claim, held, detail) each, ``held``
  None when a cell or value it needs is missing (NaN)."""
  results = []
  for claim, above, below in ORDERINGS:
    values = [[(rows[c].get(k, float("nan")) if c in rows else float("nan"), c)
               for c, k in side] for side in (above, below)]
    if not all(np.isfinite(v) for side in values for v, _ in side):
      missing = sorted({c for side in values for v, c in side if not np.isfinite(v)})
      results.append((claim, None, f"not checked: no value for {', '.join(missing)}"))
      continue
    low, high = min(values[0]), max(values[1])
    results.append((claim, bool(low[0] > high[0]),
                    f"lowest above {low[0]:.3f} ({low[1]}) vs highest below {high[0]:.3f} "
                    f"({high[1]})"))
  return results


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


def _markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list:
  return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
          + ["| " + " | ".join(line) + " |" for line in lines])


def poster_table(rows: list, dims: tuple) -> list:
  """Markdown lines: every cell's numbers beside the poster's ("ours / poster"); our
  dimensions stand beside the poster's in order (tempo, on the embedded corpus, beside era)."""
  poster = poster_rows()
  keys = [("time_ratio", "time ratio: to target"), ("step_time_ratio", "time ratio: per step")]
  keys += [(f"R@{k}", f"R@{k}") for k in RECALL_KS] + [("roc_auc", "ROC-AUC")]
  for dim, theirs in zip(dims, POSTER_DIMENSIONS):
    ours = dim.split(":")[-1]
    keys.append((f"{ours}_triplet_acc", f"triplet: {ours}" + (
        "" if ours == theirs else f" (poster: {theirs})"), f"{theirs}_triplet_acc"))
  keys += [("overall_triplet_acc", "triplet: overall"),
           ("overall_sub_triplet_acc", "triplet: overall (sub-space)")]
  lines = []
  for row in rows:
    theirs = poster.get(row["name"], {})
    cells = [row["model"], row["l2"], row["disentangled"]]
    for key, _, *poster_key in keys:
      cells.append(f"{_fmt(row.get(key, float('nan')))} / "
                   f"{_fmt(theirs.get(poster_key[0] if poster_key else key, float('nan')))}")
    lines.append(cells)
  return _markdown(["model", "L2", "disent."] + [k[1] for k in keys], lines)


def orderings_table(rows: list) -> list:
  """Markdown lines: each of ``ORDERINGS`` on the poster's numbers and on ours."""
  verdict = {True: "held", False: "**not held**", None: "not checked"}
  ours = check_orderings({row["name"]: row for row in rows})
  theirs = check_orderings(poster_rows())
  return _markdown(["ordering the poster reports", "poster", "here", "here: detail"],
                   [[claim, verdict[p[1]], verdict[held], detail]
                    for (claim, held, detail), p in zip(ours, theirs)])


def write_tables(rows: list, out: pathlib.Path, dims: tuple, note: str) -> None:
  """``table.csv`` (our numbers) and ``table.md``: our table, the poster's numbers beside ours
  and the orderings the poster reports, checked on both."""
  cols = table_columns(dims)
  with open(out / "table.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow([key for key, _ in cols])
    for row in rows:
      writer.writerow([row.get(key, "") for key, _ in cols])
  lines = _markdown([h for _, h in cols],
                    [[_fmt(row.get(key, "")) for key, _ in cols] for row in rows])
  (out / "table.md").write_text(
      "# Paper 14 grid\n\n" + note + "\n\n" + "\n".join(lines) + "\n\n"
      "### Against the poster (papers.md 15.4)\n\n"
      "Each cell: ours / the poster's (MSD, 50 tags, paper scale; R@K as fractions; the "
      "poster's time ratio is undefined, so it stands beside both of ours).\n\n"
      + "\n".join(poster_table(rows, dims)) + "\n\n"
      "### The poster's orderings, checked\n\n"
      "Held: every cell of the upper group strictly above every cell of the lower one.\n\n"
      + "\n".join(orderings_table(rows)) + "\n")


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


def write_report(rows: list, out: storage.AnyPath, dims: Optional[Sequence[str]], *,
                 setting: str, target: str, fraction: float) -> dict:
  """The tables, the plot and ``results.json`` of the grid's ``rows`` into ``out`` (a remote
  ``out``: written locally, copied up, ``storage.local_dir``); ``setting`` says what the cells
  trained on (a sentence of the note); prints the table and returns the command's summary
  (``out``, ``cells``, ``table``, ``plot``)."""
  note = (f"{setting} Held-out test split, best checkpoint by validation loss. Time to "
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
