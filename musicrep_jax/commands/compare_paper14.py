"""``musicrep compare-paper14``: train paper 14's grid on the embedded corpus, write its table
and plots (papers.md 15; issue 4 item 6).

Each cell of the grid (approach x plain/disentangled, the eight rows of the poster's tables) is
``configs/paper14.py:APPROACH,VARIANT,runlocal`` (or shrunk further with ``--size tiny``),
trained in this process by the trainer into ``OUT/runs/APPROACH-VARIANT`` (a finished cell is
reused; an unfinished one resumes). Then, from each run's ``metrics.jsonl`` and ``timing.json``:

* ``table.md`` / ``table.csv``: one row per cell; the paper's four tasks as column groups:
  training time, similarity retrieval (Recall@K, relevance = same class in a tag dimension,
  averaged over the four dimensions), auto-tagging (ROC-AUC, head or linear probe), triplet
  prediction (per dimension and overall, complete space, and overall in the subspaces), all on
  the held-out test split with the best checkpoint;
* ``plots/metric_vs_time.png``: validation triplet accuracy and tagging ROC-AUC against
  training wall time (compile, evaluation and checkpoint time excluded);
* ``results.json``: everything in the table plus the curves.

Training time. ``train_s`` is the trainer's wall time of the training steps without the first
step (the compile), evaluations and checkpoints; ``compile_s`` is reported beside it. The
time to a target is the training time at the first validation point whose metric reaches
``chance + fraction * (final - chance)`` (``--target``, ``--fraction``; chance 0.5 for triplet
accuracy and ROC-AUC); ``time ratio`` divides it by the plain classification model's, as the
poster's "training time ratio" (whose definition the paper does not give, papers.md 15.4).
"""

from __future__ import annotations

import argparse
import pathlib

HELP = "train paper 14's grid (metric learning vs classification) and write its table and plots"
DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else None
ACCEPTS_CONFIG_OVERRIDES = True

GRID = (("triplet", "plain"), ("triplet", "disentangled"), ("triplet_track", "disentangled"),
        ("proxy", "plain"), ("proxy", "disentangled"), ("classification_nonorm", "plain"),
        ("classification", "plain"), ("classification", "disentangled"))
BASELINE = ("classification", "plain")
SIZES = ("runlocal", "tiny")
CHANCE = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", required=True, help="folder for runs/, table.md, table.csv, plots/")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards (default: the embedded corpus, rendered into a cache)")
  parser.add_argument("--size", choices=SIZES, default="runlocal",
                      help="runlocal: minutes per cell; tiny: seconds (tests)")
  parser.add_argument("--cells", default=None,
                      help="comma-separated APPROACH:VARIANT cells (default: the 8 of the poster)")
  parser.add_argument("--steps", type=int, default=None, help="training steps per cell")
  parser.add_argument("--evals", type=int, default=8, help="validation points per cell")
  parser.add_argument("--target", default="overall/triplet_acc",
                      help="validation metric for the time-to-target columns")
  parser.add_argument("--fraction", type=float, default=0.9,
                      help="fraction of the final gain over chance that counts as reached")


def parse_cells(text) -> tuple:
  from musicrep_jax.errors import UserError

  if not text:
    return GRID
  cells = []
  for item in text.split(","):
    approach, _, variant = item.strip().partition(":")
    if (approach, variant) not in GRID:
      raise UserError(f"--cells: {item!r} is not a cell of the grid; cells are "
                      f"{', '.join(a + ':' + v for a, v in GRID)}.")
    cells.append((approach, variant))
  return tuple(cells)


def cell_config(approach: str, variant: str, size: str, steps, evals: int, overrides):
  """The config of one cell (``configs/paper14.py``), shrunk to ``size``."""
  from musicrep_jax import config_loading
  from musicrep_jax.configs import metric_learning as metric_configs

  spec = config_loading.resolve_config_spec(f"paper14:{approach},{variant},runlocal")
  config = config_loading.load_config_file(spec)
  if size == "tiny":
    metric_configs.metric_tiny(config)
  if steps:
    config.num_train_steps = steps
  n = config.num_train_steps
  config.eval_every = config.checkpoint_every = max(n // max(evals, 1), 1)
  config.log_every = min(config.log_every, config.eval_every)
  config.progress_bar = size != "tiny"
  config_loading.apply_overrides(config, overrides)
  config_loading.validate(config)
  return config


# ------------------------------------------------------------------------------ reading runs


def train_time_at_steps(records: list) -> tuple:
  """``metrics.jsonl`` records -> (steps, cumulative training seconds) at each train log.

  Each train record covers the steps since the previous log at ``steps_per_s`` (the trainer's
  own measurement, without compile, evaluation and checkpoint time); the first log starts after
  the compiled first step.
  """
  import numpy as np

  steps, seconds, last, total = [1], [0.0], 1, 0.0
  for r in sorted((r for r in records if r["split"] == "train"), key=lambda r: r["step"]):
    n = max(r["step"] - last, 1) if r["step"] > last else 0
    if n and r.get("steps_per_s"):
      total += n / float(r["steps_per_s"])
      steps.append(r["step"])
      seconds.append(total)
      last = r["step"]
  return np.asarray(steps, float), np.asarray(seconds, float)


def curve(records: list, split: str, metric: str) -> tuple:
  """(steps, training seconds, values) of ``metric`` over the ``split`` evaluations."""
  import numpy as np

  log_steps, log_seconds = train_time_at_steps(records)
  points = sorted((r["step"], float(r[metric])) for r in records
                  if r["split"] == split and isinstance(r.get(metric), (int, float)))
  steps = np.asarray([p[0] for p in points], float)
  values = np.asarray([p[1] for p in points], float)
  return steps, np.interp(steps, log_steps, log_seconds), values


def time_to_target(steps, seconds, values, fraction: float, chance: float = CHANCE) -> tuple:
  """(step, seconds) of the first point reaching ``chance + fraction * (final - chance)``."""
  import numpy as np

  if len(values) == 0 or not np.isfinite(values[-1]):
    return float("nan"), float("nan")
  target = chance + fraction * (values[-1] - chance)
  reached = np.flatnonzero(values >= target)
  i = int(reached[0]) if len(reached) else len(values) - 1
  return float(steps[i]), float(seconds[i])


def summarize_run(workdir: pathlib.Path, target: str, fraction: float, dims: tuple) -> dict:
  """One cell's numbers: timing, test metrics, curves."""
  import json

  from musicrep_jax.training.writers import read_jsonl

  records = read_jsonl(workdir / "metrics.jsonl")
  timing = json.loads((workdir / "timing.json").read_text())
  tests = [r for r in records if r["split"] == "test"]
  test = tests[-1] if tests else {}
  steps, seconds, values = curve(records, "validation", target)
  step_at, seconds_at = time_to_target(steps, seconds, values, fraction)
  _, auc_seconds, auc_values = curve(records, "validation", "roc_auc")
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
  for k in (1, 2, 4, 8):
    row[f"R@{k}"] = test.get(f"overall/recall@{k}", float("nan"))
  for dim in dims:
    row[f"{dim.split(':')[-1]}_triplet_acc"] = test.get(f"{dim}/triplet_acc", float("nan"))
  row["curves"] = {"target": {"steps": steps.tolist(), "seconds": seconds.tolist(),
                              "values": values.tolist()},
                   "roc_auc": {"seconds": auc_seconds.tolist(), "values": auc_values.tolist()}}
  return row


# ------------------------------------------------------------------------------ writing


def table_columns(dims: tuple) -> list:
  """(key, header) of the table: the paper's four tasks as column groups."""
  cols = [("model", "model"), ("l2", "L2"), ("disentangled", "disent."),
          ("time_ratio", "time: ratio to target"), ("step_time_ratio", "time: s/step ratio"),
          ("s_to_target", "time: s to target"), ("steps_to_target", "time: steps to target"),
          ("train_s", "time: train s"), ("compile_s", "time: compile s")]
  cols += [(f"R@{k}", f"retrieval: R@{k}") for k in (1, 2, 4, 8)]
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
  import csv

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
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
  for row in rows:
    disentangled = row["disentangled"] == "yes"
    style = dict(marker="o", linestyle="--" if disentangled else "-",
                 label=f"{row['model']} ({'disentangled' if disentangled else 'plain'})")
    axes[0].plot(row["curves"]["target"]["seconds"], row["curves"]["target"]["values"], **style)
    axes[1].plot(row["curves"]["roc_auc"]["seconds"], row["curves"]["roc_auc"]["values"], **style)
  for ax, title in zip(axes, (f"validation {target}", "validation tagging ROC-AUC")):
    ax.set_xlabel("training wall time, s (compile, eval and checkpoints excluded)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  (out / "plots").mkdir(exist_ok=True)
  path = out / "plots" / "metric_vs_time.png"
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def run(args, overrides) -> dict:
  import json

  from musicrep_jax.training import trainer
  from musicrep_jax.errors import UserError

  out = pathlib.Path(args.out).absolute()
  out.mkdir(parents=True, exist_ok=True)
  if not 0.0 < args.fraction <= 1.0:
    raise UserError(f"--fraction must be in (0, 1], got {args.fraction}.")
  rows, dims = [], None
  for approach, variant in parse_cells(args.cells):
    name = f"{approach}-{variant}"
    config = cell_config(approach, variant, args.size, args.steps, args.evals, overrides)
    dims = tuple(config.task.kwargs.labels)
    workdir = out / "runs" / name
    done = workdir / "summary.json"
    if not done.exists():
      print(f"=== {name} ({config.num_train_steps} steps) ===", flush=True)
      summary = trainer.train(config, workdir, args.data_dir)
      if "stopped_by" in summary:
        return summary
      done.write_text(json.dumps({k: v for k, v in summary.items() if k != "test"}))
    row = summarize_run(workdir, args.target, args.fraction, dims)
    row.update(name=name, model=approach.replace("_", " + ").replace("nonorm", "no L2"),
               l2="no" if approach == "classification_nonorm" else "yes",
               disentangled="yes" if variant == "disentangled" else "no")
    rows.append(row)
  base = next((r for r in rows if r["name"] == "-".join(BASELINE)), None)
  for row in rows:
    row["time_ratio"] = row["s_to_target"] / base["s_to_target"] if base else float("nan")
    row["step_time_ratio"] = row["s_per_step"] / base["s_per_step"] if base else float("nan")
  note = (f"Held-out test split, best checkpoint by validation loss. Size {args.size}. Time to "
          f"target: training seconds (no compile/eval) until validation {args.target} reaches "
          f"chance + {args.fraction} x (final - chance); ratios are to plain classification. "
          "R@K: a clip of the same class in the top K, averaged over the tag dimensions.")
  write_tables(rows, out, dims, note)
  plot = write_plots(rows, out, args.target)
  (out / "results.json").write_text(json.dumps(rows, indent=1))
  print((out / "table.md").read_text())
  return {"out": str(out), "cells": len(rows), "table": str(out / "table.md"), "plot": str(plot)}
