"""Training curves read from a run's ``metrics.jsonl`` records, and the one plotting code of the
package: ``curves.png`` of a training run (``MetricWriter``), ``musicrep plot`` (several runs
overlaid), ``musicrep compare`` and ``musicrep compare-paper14`` (metric against time).

Records are the rows the writer appends (``{"step", "split", "time", <metric>: value}``,
``training/writers.py``), read by ``read_jsonl`` (local or remote); nothing here imports JAX, so
plotting never touches a device.

Training time. The x axis "time" is the trainer's training time: the train rows' ``steps_per_s``
(measured by the trainer without the first, compiling step, evaluations and checkpoints) summed
over the steps since the previous row (``train_time_at_steps``), so it survives a resume (the
writer drops the rows after the restored step) and compares runs on the same clock as
``timing.json``'s ``train_s``. An evaluation at step ``s`` is placed at the training time of
step ``s`` (interpolated between train rows).

Plots use matplotlib's Agg canvas directly (no pyplot state; imported lazily, so importing this
module costs nothing). A plot is a grid of panels: one row per metric and one column per x axis
(``"step"``, ``"time"``); with a single x axis the metrics stand side by side. In every panel a
run's train rows are a thin solid line and its evaluations (``validation``) a dashed line with
markers, in the run's colour.
"""

from __future__ import annotations

import json
import math
import pathlib
import tempfile
from typing import Mapping, Optional, Sequence

import numpy as np

from musicrep_jax import storage
from musicrep_jax.errors import UserError

TIME_LABEL = "training time, s (no compile, eval, checkpoints)"
STEP_LABEL = "step"
EVAL_SPLIT = "validation"
# Panels of ``curves.png`` beside the validation metrics (which follow, in recorded order).
TRAIN_PANELS = ("loss", "learning_rate")
# Validation metrics shown by default (``default_metrics``); ``musicrep plot --metric`` picks any.
MAX_DEFAULT_EVAL_METRICS = 4
# Bookkeeping keys of the rows, and counts that are not curves.
NOT_METRICS = frozenset(("step", "split", "time", "steps_per_s", "samples_per_s", "clips",
                         "num_tags_scored", "num_tags_with_positives"))


# ------------------------------------------------------------------------------ reading records


def read_jsonl(path: str | pathlib.Path) -> list[dict]:
  """All records of a ``metrics.jsonl`` file (local or remote)."""
  with storage.as_path(path).open() as f:
    return [json.loads(line) for line in f if line.strip()]


def train_time_at_steps(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
  """``metrics.jsonl`` records -> (steps, cumulative training seconds) at each train row,
  each ``[rows + 1]`` (the first point is step 1 at 0 s: the compiled first step).

  Each train row covers the steps since the previous row at its ``steps_per_s`` (the trainer's
  own measurement, without compile, evaluation and checkpoint time).
  """
  steps, seconds, last, total = [1], [0.0], 1, 0.0
  for r in sorted((r for r in records if r["split"] == "train"), key=lambda r: r["step"]):
    n = r["step"] - last
    if n > 0 and _is_number(r.get("steps_per_s")) and r["steps_per_s"] > 0:
      total += n / float(r["steps_per_s"])
      steps.append(r["step"])
      seconds.append(total)
      last = r["step"]
  return np.asarray(steps, float), np.asarray(seconds, float)


def curve(records: Sequence[dict], split: str,
          metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(steps, training seconds, values) of ``metric`` over the rows of ``split``, each
  ``[points]`` (non-finite values, written as strings, are left out)."""
  log_steps, log_seconds = train_time_at_steps(records)
  points = sorted((r["step"], float(r[metric])) for r in records
                  if r["split"] == split and _is_number(r.get(metric)))
  steps = np.asarray([p[0] for p in points], float)
  values = np.asarray([p[1] for p in points], float)
  return steps, np.interp(steps, log_steps, log_seconds), values


def time_to_threshold(steps, seconds, values, threshold: float,
                      mode: str = "max") -> tuple[float, float]:
  """(step, training seconds) of the first point whose value reaches ``threshold`` (``>=`` for
  ``mode="max"``, ``<=`` for ``"min"``); NaNs when no point does."""
  values = np.asarray(values, float)
  reached = np.flatnonzero(values >= threshold if mode == "max" else values <= threshold)
  if not len(reached):
    return float("nan"), float("nan")
  i = int(reached[0])
  return float(steps[i]), float(seconds[i])


def metric_names(records: Sequence[dict], split: str) -> list:
  """The numeric metrics of ``split``'s rows, in the order they first appear."""
  names = {}
  for r in records:
    if r["split"] == split:
      names.update((k, None) for k, v in r.items() if k not in NOT_METRICS and _is_number(v))
  return list(names)


def default_metrics(records: Sequence[dict], limit: int = MAX_DEFAULT_EVAL_METRICS) -> list:
  """The panels of ``curves.png``: loss and learning rate (train rows), then the first
  ``limit`` validation metrics other than the loss: whole-split metrics (``roc_auc``) first,
  then ``overall/...`` ones, then per-dimension ones (``tag:genre/map``), each in recorded
  order."""
  train = metric_names(records, "train")
  evals = [m for m in metric_names(records, EVAL_SPLIT) if m not in TRAIN_PANELS]
  evals.sort(key=lambda m: 0 if "/" not in m else 1 if m.startswith("overall/") else 2)
  return [m for m in TRAIN_PANELS if m in train] + evals[:limit]


def run_curves(records: Sequence[dict], metrics: Sequence[str],
               splits: Sequence[str] = ("train", EVAL_SPLIT)) -> dict:
  """``{metric: {split: (steps, seconds, values)}}`` for every metric and split with points."""
  out = {}
  for metric in metrics:
    per_split = {s: curve(records, s, metric) for s in splits}
    out[metric] = {s: c for s, c in per_split.items() if len(c[0])}
  return out


# ------------------------------------------------------------------------------ plotting


def plot(lines: Sequence[Mapping], path: str | pathlib.Path, *, metrics: Sequence[str],
         x_axes: Sequence[str] = ("step", "time"), title: Optional[str] = None,
         thresholds: Optional[Mapping[str, float]] = None, titles: Optional[Mapping] = None,
         dpi: int = 80) -> pathlib.Path:
  """Writes a PNG of ``metrics`` (rows; side by side with one x axis) against ``x_axes``
  (columns: ``"step"`` and/or ``"time"``) to the local file ``path``.

  ``lines``: one entry per run, ``{"label": str, "curves": run_curves(...), "style": dict}``
  (label "": no legend entry)
  (``style``: matplotlib keywords such as ``color``, ``linestyle``; runs without a colour get
  the cycle's). ``thresholds``: a horizontal line per metric (a target). ``titles``: a panel
  title per metric (default the metric's name).
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  metrics = list(metrics) or ["loss"]
  side_by_side = len(x_axes) == 1
  nrows, ncols = (1, len(metrics)) if side_by_side else (len(metrics), len(x_axes))
  fig = Figure(figsize=(5.2 * ncols, 2.8 * nrows + 0.6), dpi=dpi)
  FigureCanvasAgg(fig)
  axes = fig.subplots(nrows, ncols, squeeze=False)
  colors = [f"C{i % 10}" for i in range(len(lines))]
  for m, metric in enumerate(metrics):
    for x, axis in enumerate(x_axes):
      ax = axes[0][m] if side_by_side else axes[m][x]
      for line, color in zip(lines, colors):
        style = dict({"color": color}, **line.get("style", {}))
        for split, (steps, seconds, values) in line["curves"].get(metric, {}).items():
          xs = steps if axis == "step" else seconds
          if split == "train":
            ax.plot(xs, values, linewidth=1.0, alpha=0.8,
                    **{k: v for k, v in style.items() if k != "marker"})
          else:
            ax.plot(xs, values, **dict({"linestyle": "--", "marker": "o", "markersize": 3},
                                       **style))
      if thresholds and metric in thresholds:
        ax.axhline(thresholds[metric], color="k", linewidth=0.8, linestyle=":")
      ax.set_xlabel(STEP_LABEL if axis == "step" else TIME_LABEL, fontsize=8)
      ax.set_title((titles or {}).get(metric, metric), fontsize=9)
      ax.tick_params(labelsize=7)
      ax.grid(alpha=0.3)
  _legend(fig, lines, colors)
  if title:
    fig.suptitle(title, fontsize=10)
  # Fixed margins in inches (tight_layout would measure every label: half the plot's time).
  height, width = fig.get_figheight(), fig.get_figwidth()
  fig.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, bottom=0.55 / height,
                      top=1 - (0.75 if title else 0.35) / height, wspace=0.2, hspace=0.4)
  path = pathlib.Path(path)
  fig.savefig(path)
  return path


def _legend(fig, lines: Sequence[Mapping], colors: Sequence[str]) -> None:
  """In the first panel: one entry per run label (runs sharing a label, e.g. seeds, share the
  entry) in its colour and line style, and the train / evaluation line styles when a plot
  holds both."""
  from matplotlib.lines import Line2D

  handles, seen = [], set()
  for line, color in zip(lines, colors):
    if line["label"] and line["label"] not in seen:
      seen.add(line["label"])
      style = dict({"color": color}, **line.get("style", {}))
      handles.append(Line2D([], [], color=style["color"], linestyle=style.get("linestyle", "-"),
                            label=line["label"]))
  splits = {s for line in lines for per_split in line["curves"].values() for s in per_split}
  if "train" in splits and len(splits) > 1:
    handles += [Line2D([], [], color="gray", linewidth=1.0, label="train"),
                Line2D([], [], color="gray", linestyle="--", marker="o", markersize=3,
                       label=EVAL_SPLIT)]
  if handles:
    fig.axes[0].legend(handles=handles, fontsize=7)


def write_curves(records: Sequence[dict], path: str | pathlib.Path,
                 title: Optional[str] = None) -> pathlib.Path:
  """``curves.png`` of one run: ``default_metrics`` against steps and training time."""
  metrics = default_metrics(records)
  return plot([{"label": "", "curves": run_curves(records, metrics)}], path, metrics=metrics,
              title=title)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plot_workdirs(workdirs: Sequence[str], out: str, metrics: Optional[Sequence[str]] = None,
                  ) -> dict:
  """``musicrep plot``: the curves of ``workdirs`` (local or remote) overlaid in the PNG ``out``
  (local or remote), each run labelled with its folder's name and its config; ``metrics``:
  the panels (default: every run's ``default_metrics``)."""
  lines, available = [], {}
  for workdir in workdirs:
    path = storage.as_path(workdir)
    if not (path / "metrics.jsonl").exists():
      raise UserError(f"{workdir} has no metrics.jsonl; pass training workdirs.")
    records = read_jsonl(path / "metrics.jsonl")
    for split in ("train", EVAL_SPLIT):
      available.update(dict.fromkeys(metric_names(records, split)))
    lines.append({"label": f"{path.name} ({_config_name(path)})", "records": records})
  if metrics:
    missing = [m for m in metrics if m not in available]
    if missing:
      raise UserError(f"--metric {missing[0]!r} is in none of the runs' train or validation rows; "
                      f"they have {', '.join(available)}.")
  else:
    metrics = list(dict.fromkeys(m for line in lines for m in default_metrics(line["records"])))
  for line in lines:
    line["curves"] = run_curves(line.pop("records"), metrics)
  title = "training curves" if len(lines) > 1 else lines[0]["label"]
  if storage.is_remote(out):
    with tempfile.TemporaryDirectory(prefix="musicrep-plot-") as tmp:
      local = plot(lines, pathlib.Path(tmp) / "curves.png", metrics=metrics, title=title)
      storage.upload_file(local, storage.as_path(out))
  else:
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    plot(lines, out, metrics=metrics, title=title)
  return {"out": str(out), "runs": len(lines), "metrics": ",".join(metrics)}


def _config_name(workdir) -> str:
  """``demo:runlocal``: the config file's stem and argument from ``config.json`` ("?" when
  missing)."""
  try:
    config = json.loads((workdir / "config.json").read_text())
  except (OSError, ValueError):
    return "?"
  stem = pathlib.Path(str(config.get("config_file", "?"))).stem
  return f"{stem}:{config['config_arg']}" if config.get("config_arg") else stem
