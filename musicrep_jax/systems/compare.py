"""Training-time comparisons of any trainer configs (``musicrep compare``): each config trained
with several seeds, then its throughput, time to a target quality, compile time and peak memory
as mean ± 95 % interval over the seeds, with the hardware and software of every run.

For each config spec (``CONFIG[:ARGS][@KEY=VALUE...]``: the ``@`` overrides apply to that
config, the command's ``--config.a.b=v`` ones to all; ``parse_spec``) and seed ``0..N-1``
(``--config.seed``), ``compare``:

1. trains the run in its own process (``musicrep train --record-resources``), so that compile
   time, host memory and device memory are the run's alone, into
   ``WORKDIR_ROOT/<config>[-<overrides hash>]-seed<k>`` (``run_name``); a workdir with a
   ``summary.json`` is a finished run and is reused, never retrained or overwritten, when its
   ``config.json`` matches (``training/run_record.check_finished``; any other difference is
   refused), and an unfinished one resumes: rerunning a comparison continues it;
2. reads each run's records (``run_row``): ``timing.json`` (the trainer's training time without
   the compiling first step, evaluations and checkpoints, and the steps it timed), the
   validation curve of the target metric from ``metrics.jsonl`` (``training/curves.py``: time to
   the target is the training time at the first evaluation that reaches it), the test row, and
   ``summary.json`` (``training/run_record.py``: peak memory, hardware, software versions);
3. writes ``compare.md`` (printed), ``compare.csv`` (one row per run), ``compare.json`` (runs,
   per-config summary, curves) and ``compare.png`` (the plot metric against steps and training
   time, one colour per config) into ``--out`` (``write_report``). Rows already in
   ``--out/compare.json`` are kept (a run with the same workdir is replaced), so comparisons
   append; rows of different hardware (``hardware_key``) in one table are refused unless
   ``allow_mixed_hardware``.

Intervals are Student-t 95 % intervals of the mean over seeds (``t_interval``; none for one
seed); time to target averages the seeds that reached it and says how many did.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import pathlib
import re
import subprocess
import sys
from typing import Optional, Sequence

from musicrep_jax import config_loading, storage
from musicrep_jax.errors import UserError
from musicrep_jax.training.run_record import (HARDWARE, SOFTWARE, SUMMARY, check_finished,
                                              hardware_key, hardware_text)

RUNS = "runs"
FILES = {"md": "compare.md", "csv": "compare.csv", "json": "compare.json", "png": "compare.png"}
_MINIMISED = ("loss", "error", "eer")  # METRIC=VALUE on these: reached when <= VALUE.


# ------------------------------------------------------------------------------ inputs


def parse_target(text: Optional[str]) -> Optional[dict]:
  """``"METRIC=VALUE"`` (``>=`` VALUE counts as reached; ``<=`` for metrics ending in loss,
  error or eer), ``"METRIC>=VALUE"`` or ``"METRIC<=VALUE"`` -> ``{"metric", "value", "mode",
  "text"}``; None for no target."""
  if not text:
    return None
  found = re.fullmatch(r"\s*([^<>=\s]+)\s*(<=|>=|=)\s*([-+0-9.eE]+|nan|inf)\s*", text)
  try:
    metric, op, value = found.group(1), found.group(2), float(found.group(3))
  except (AttributeError, ValueError):
    raise UserError(f"--target {text!r} is not METRIC=VALUE (or METRIC>=VALUE, METRIC<=VALUE), "
                    f"e.g. roc_auc=0.8 or loss<=0.2.") from None
  if not math.isfinite(value):
    raise UserError(f"--target {text!r}: the value must be a finite number.")
  if op == "=":
    op = "<=" if metric.lower().endswith(_MINIMISED) else ">="
  return {"metric": metric, "value": value, "mode": "min" if op == "<=" else "max",
          "text": f"{metric}{op}{value:g}"}


def parse_spec(text: str) -> tuple[str, list]:
  """``"demo:runlocal@batch_size=16@model.kwargs.n=5"`` -> (``"demo:runlocal"``,
  ``["--config.batch_size=16", "--config.model.kwargs.n=5"]``): a config and its own
  overrides (the same config with other settings is another row of the comparison)."""
  spec, *own = text.split("@")
  for item in own:
    if "=" not in item:
      raise UserError(f"{text!r}: {item!r} is not KEY=VALUE (CONFIG[:ARGS]@KEY=VALUE@...).")
  return spec, [f"--config.{item.removeprefix('config.')}" for item in own]


def run_name(spec: str, overrides: Sequence[str], seed: int) -> str:
  """The workdir name of one run: the spec's file stem and argument, a hash of the overrides
  when there are any, and the seed (``demo-runlocal-seed0``)."""
  path, _, arg = spec.partition(":")
  name = re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(p for p in (pathlib.Path(path).stem, arg) if p))
  if overrides:
    name += "-" + hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:8]
  return f"{name}-seed{seed}"


def run_config(spec: str, overrides: Sequence[str], seed: int):
  """``spec`` with ``overrides`` and ``seed`` applied; a trainer config (one line otherwise)."""
  config = config_loading.load_config(spec, overrides)
  runner = config_loading.runner_of(config)
  if runner != config_loading.DEFAULT_RUNNER:
    raise UserError(f"{spec} runs the {runner!r} runner; musicrep compare compares trainer "
                    f"configs (`musicrep configs` lists each config's runner).")
  config_loading.apply_overrides(config, [f"--config.seed={seed}"])
  return config


# ------------------------------------------------------------------------------ the machine


def probe_hardware() -> dict:
  """``hardware()`` as a run's process sees it, from a short child process (this one never
  starts JAX's backend: a GPU it held would be missing to the runs)."""
  proc = subprocess.run(
      [sys.executable, "-c", "import json; from musicrep_jax.training import run_record; "
       "print(json.dumps(run_record.hardware()))"], capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise UserError(f"Could not start JAX to read the hardware: "
                    f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ statistics


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
  """(mean, half-width of the Student-t ``confidence`` interval of the mean) of the finite
  ``values``; the half-width is NaN below two values, both NaN with none."""
  from scipy import stats

  finite = [float(v) for v in values if v is not None and math.isfinite(v)]
  if not finite:
    return float("nan"), float("nan")
  n = len(finite)
  mean = sum(finite) / n
  if n < 2:
    return mean, float("nan")
  sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
  return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))


# ------------------------------------------------------------------------------ one run


def run_row(workdir: storage.AnyPath, target: Optional[dict], plot_metric: str) -> dict:
  """One finished run's row: throughput, times, time to ``target``, final metrics, memory,
  hardware, software, and the ``plot_metric`` curves (``curves``)."""
  from musicrep_jax.training import curves
  from musicrep_jax.training.writers import read_jsonl

  record = json.loads((workdir / SUMMARY).read_text())
  config = json.loads((workdir / "config.json").read_text())
  timing = json.loads((workdir / "timing.json").read_text())
  records = read_jsonl(workdir / "metrics.jsonl")
  train_s = float(timing["train_s"])
  timed = int(timing.get("train_steps", max(int(timing["steps"]) - 1, 0)))
  steps_per_s = timed / train_s if train_s > 0 else float("nan")
  row = {"steps": int(timing["steps"]), "batch_size": int(config["batch_size"]),
         "steps_per_s": steps_per_s, "samples_per_s": steps_per_s * int(config["batch_size"]),
         "train_s": train_s, "compile_s": float(timing["compile_s"]),
         "eval_s": float(timing.get("eval_s", float("nan"))),
         "checkpoint_s": float(timing.get("checkpoint_s", float("nan"))),
         "peak_rss_mb": float(record.get("peak_rss_mb", float("nan"))),
         "device_peak_mb": float(record.get("device_peak_mb", float("nan")))}
  if target:
    steps, seconds, values = curves.curve(records, curves.EVAL_SPLIT, target["metric"])
    row["steps_to_target"], row["s_to_target"] = curves.time_to_threshold(
        steps, seconds, values, target["value"], target["mode"])
  tests = [r for r in records if r["split"] == config["data"]["test_split"]]
  last_eval = [r for r in records if r["split"] == curves.EVAL_SPLIT]
  for metric in dict.fromkeys(([target["metric"]] if target else []) + [plot_metric]):
    row[f"val_{metric}"] = _number(last_eval[-1].get(metric)) if last_eval else float("nan")
    row[f"test_{metric}"] = _number(tests[-1].get(metric)) if tests else float("nan")
  row.update(record.get("hardware", {}))
  row.update(record.get("software", {}))
  steps, seconds, values = curves.curve(records, curves.EVAL_SPLIT, plot_metric)
  row["curves"] = {plot_metric: {curves.EVAL_SPLIT: [steps.tolist(), seconds.tolist(),
                                                     values.tolist()]}}
  return row


def _number(value) -> float:
  return float(value) if isinstance(value, (int, float)) else float("nan")


def train_run(spec: str, overrides: Sequence[str], seed: int, workdir: storage.AnyPath,
              data_dir: Optional[str]) -> int:
  """Trains one run in a child process (``musicrep train ... --record-resources
  WORKDIR/summary.json``, its output passed through); returns its exit status."""
  command = [sys.executable, "-m", "musicrep_jax.cli", "train", "--config", spec,
             "--workdir", str(workdir), "--record-resources", str(workdir / SUMMARY),
             *overrides, f"--config.seed={seed}"]
  if data_dir:
    command += ["--data-dir", str(data_dir)]
  sys.stdout.flush()
  return subprocess.run(command, check=False).returncode


# ------------------------------------------------------------------------------ the comparison


def compare(specs: Sequence[str], *, seeds: int, out, target: Optional[str] = None,
            workdir_root=None, overrides: Sequence[str] = (), data_dir: Optional[str] = None,
            allow_mixed_hardware: bool = False, plot_metric: Optional[str] = None) -> dict:
  """Trains (or reuses) every config of ``specs`` with seeds ``0..seeds-1`` and writes the
  report into ``out`` (module docstring); returns the command's summary, or ``stopped_by``
  when a signal stopped a run (rerun to resume)."""
  if not specs:
    raise UserError("musicrep compare needs at least one CONFIG[:ARGS].")
  if seeds < 1:
    raise UserError(f"--seeds must be at least 1, got {seeds}.")
  goal = parse_target(target)
  plot_metric = plot_metric or (goal["metric"] if goal else "loss")
  out = storage.as_path(out)
  root = storage.as_path(workdir_root) if workdir_root else out / RUNS
  plan = []  # Every config is loaded (and refused) before anything trains.
  for text in specs:
    spec, own = parse_spec(text)
    for seed in range(seeds):
      workdir = root / run_name(spec, [*overrides, *own], seed)
      config = run_config(spec, [*overrides, *own], seed)
      plan.append((text, seed, workdir, check_finished(workdir, config)))
  previous = read_rows(out)
  if previous and not allow_mixed_hardware and any(not done for *_, done in plan):
    _refuse_mixed(previous + [probe_hardware()], out)
  rows, trained = [], 0
  for spec, seed, workdir, done in plan:
    if not done:
      print(f"=== {spec} seed {seed} -> {workdir} ===", flush=True)
      config_spec, own = parse_spec(spec)
      code = train_run(config_spec, [*overrides, *own], seed, workdir, data_dir)
      if code in (130, 143):
        return {"stopped_by": "SIGTERM" if code == 143 else "SIGINT", "step": -1,
                "workdir": str(workdir)}
      if code != 0 or not (workdir / SUMMARY).exists():
        raise UserError(f"Training {spec} (seed {seed}) into {workdir} failed with exit status "
                        f"{code} (its output is above); fix it and rerun to resume.")
      trained += 1
    row = {"config": spec, "overrides": " ".join(overrides), "seed": seed,
           "run": workdir.name, "workdir": str(workdir)}
    rows.append(dict(row, **run_row(workdir, goal, plot_metric)))
  new = {r["workdir"] for r in rows}
  rows = [r for r in previous if r["workdir"] not in new] + rows
  if not allow_mixed_hardware:
    _refuse_mixed(rows, out)
  summary = write_report(rows, out, goal, plot_metric)
  return dict(summary, trained=trained, reused=len(plan) - trained)


def _refuse_mixed(rows: Sequence[dict], out) -> None:
  kinds = list(dict.fromkeys(hardware_key(r) for r in rows))
  if len(kinds) > 1:
    texts = "; ".join(hardware_text(dict(zip(HARDWARE, k))) for k in kinds)
    raise UserError(f"{out} would mix rows from different hardware ({texts}); use another "
                    f"--out, or pass --allow-mixed-hardware to put them in one table.")


def read_rows(out) -> list:
  """The runs already in ``out/compare.json`` (none without it)."""
  path = storage.as_path(out) / FILES["json"]
  if not path.exists():
    return []
  try:
    return list(json.loads(path.read_text())["runs"])
  except (ValueError, KeyError, TypeError) as error:
    raise UserError(f"{path} is unreadable ({error}); remove it or choose another --out.") \
        from None


# ------------------------------------------------------------------------------ the report

# (key, header) of the per-run table; the summary table takes the numeric ones as mean ± CI.
RUN_COLUMNS = (("config", "config"), ("seed", "seed"), ("steps", "steps"),
               ("batch_size", "batch"), ("steps_per_s", "steps/s"),
               ("samples_per_s", "samples/s"), ("s_to_target", "s to target"),
               ("steps_to_target", "steps to target"), ("compile_s", "compile s"),
               ("train_s", "train s"), ("eval_s", "eval s"), ("checkpoint_s", "checkpoint s"),
               ("peak_rss_mb", "peak host MiB"), ("device_peak_mb", "peak device MiB"))
SUMMARY_KEYS = ("steps_per_s", "samples_per_s", "s_to_target", "compile_s", "peak_rss_mb",
                "device_peak_mb")
CSV_EXTRA = ("overrides", "run", "workdir") + HARDWARE + SOFTWARE


def metric_columns(goal: Optional[dict], plot_metric: str) -> list:
  metrics = dict.fromkeys(([goal["metric"]] if goal else []) + [plot_metric])
  return [(f"{split}_{m}", f"{split} {m}") for m in metrics for split in ("val", "test")]


def summarize(rows: Sequence[dict], keys: Sequence[str]) -> list:
  """One entry per (config, overrides) in order of appearance: ``seeds``, ``reached`` (seeds
  with a time to target) and ``KEY`` / ``KEY_ci`` (mean, 95 % half-width) for every key."""
  groups = {}
  for row in rows:
    groups.setdefault((row["config"], row["overrides"]), []).append(row)
  summary = []
  for (config, overrides), group in groups.items():
    entry = {"config": config, "overrides": overrides, "seeds": len(group),
             "reached": sum(math.isfinite(r.get("s_to_target", float("nan"))) for r in group)}
    for key in keys:
      entry[key], entry[key + "_ci"] = t_interval([r.get(key, float("nan")) for r in group])
    summary.append(entry)
  return summary


def _fmt(value) -> str:
  if isinstance(value, float):
    if not math.isfinite(value):
      return "-"
    if value.is_integer():  # Steps to target, a zero time.
      return str(int(value))
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
  return str(value)


def _pm(entry: dict, key: str) -> str:
  mean, half = entry.get(key, float("nan")), entry.get(key + "_ci", float("nan"))
  return _fmt(mean) if not math.isfinite(half) else f"{_fmt(mean)} ± {_fmt(half)}"


def markdown(rows: Sequence[dict], summary: Sequence[dict], goal: Optional[dict],
             plot_metric: str) -> str:
  """``compare.md``: the hardware, software and shared overrides (columns where rows differ),
  the per-config summary (mean ± 95 % t-interval over seeds) and the per-run table."""
  metric_cols = metric_columns(goal, plot_metric)
  mixed = len({hardware_key(r) for r in rows}) > 1
  software = list(dict.fromkeys(", ".join(f"{k} {r.get(k)}" for k in SOFTWARE) for r in rows))
  shared = len({r["overrides"] for r in rows}) == 1
  lines = ["# Training-time comparison", "",
           "- Hardware: " + ("MIXED (--allow-mixed-hardware): see each run's row" if mixed
                             else hardware_text(rows[0])),
           "- Software: " + "; ".join(software)]
  if shared:
    lines.append(f"- Overrides of every config: {rows[0]['overrides'] or 'none'}")
  lines += [f"- Target: {goal['text'] if goal else 'none'} (validation; time is training "
            f"seconds without compile, evaluation and checkpoints; docs/compare.md)",
            "", "Mean ± 95 % t-interval over seeds:", ""]
  head = (["config"] + ([] if shared else ["overrides"]) + ["seeds"]
          + [h for k, h in RUN_COLUMNS if k in SUMMARY_KEYS] + (["reached"] if goal else [])
          + [h for _, h in metric_cols])
  lines += [_row(head), _row(["---"] * len(head))]
  for entry in summary:
    cells = [entry["config"]] + ([] if shared else [entry["overrides"] or "-"]) + [entry["seeds"]]
    cells += [_pm(entry, k) for k, _ in RUN_COLUMNS if k in SUMMARY_KEYS]
    cells += [f"{entry['reached']}/{entry['seeds']}"] if goal else []
    cells += [_pm(entry, k) for k, _ in metric_cols]
    lines.append(_row(cells))
  lines += ["", "Runs:", ""]
  cols = (list(RUN_COLUMNS) + metric_cols + ([] if shared else [("overrides", "overrides")])
          + ([("hardware", "hardware")] if mixed else [])
          + ([("software", "software")] if len(software) > 1 else []))
  lines += [_row([h for _, h in cols]), _row(["---"] * len(cols))]
  for row in rows:
    row = dict(row, hardware=hardware_text(row),
               software=", ".join(f"{k} {row.get(k)}" for k in SOFTWARE))
    lines.append(_row([_fmt(row.get(k, float("nan"))) for k, _ in cols]))
  return "\n".join(lines) + "\n"


def _row(cells) -> str:
  return "| " + " | ".join(str(c) for c in cells) + " |"


def write_report(rows: Sequence[dict], out, goal: Optional[dict], plot_metric: str) -> dict:
  """``compare.md``, ``compare.csv``, ``compare.json`` and ``compare.png`` of ``rows`` into
  ``out`` (local or remote: ``storage.local_dir``); prints the table; returns the command's
  summary."""
  from musicrep_jax.training import curves

  metric_cols = metric_columns(goal, plot_metric)
  summary = summarize(rows, list(SUMMARY_KEYS) + [k for k, _ in metric_cols])
  text = markdown(rows, summary, goal, plot_metric)
  configs = list(dict.fromkeys((r["config"], r["overrides"]) for r in rows))
  lines = []
  for row in rows:
    key = (row["config"], row["overrides"])
    label = row["config"] + (f" ({row['overrides']})" if len(configs) > len(
        {r["config"] for r in rows}) and row["overrides"] else "")  # Overrides tell rows apart.
    points = row["curves"].get(plot_metric, {})
    lines.append({"label": label, "style": {"color": f"C{configs.index(key) % 10}"},
                  "curves": {plot_metric: {s: tuple(c) for s, c in points.items()}}})
  with storage.local_dir(out) as local:
    local.joinpath(FILES["md"]).write_text(text)
    with open(local / FILES["csv"], "w", newline="") as f:
      writer = csv.writer(f)
      keys = [k for k, _ in RUN_COLUMNS] + [k for k, _ in metric_cols] + list(CSV_EXTRA)
      writer.writerow(keys)
      for row in rows:
        writer.writerow([row.get(k, "") for k in keys])
    local.joinpath(FILES["json"]).write_text(json.dumps(
        {"target": goal, "plot_metric": plot_metric, "summary": summary, "runs": list(rows)},
        indent=1))
    curves.plot(lines, local / FILES["png"], metrics=[plot_metric],
                thresholds={goal["metric"]: goal["value"]} if goal else None,
                title=f"validation {plot_metric}, one colour per config", dpi=110)
  print(text)
  return {"out": str(out), "runs": len(rows), "configs": len(configs),
          **{key: str(out / name) for key, name in
             (("table", FILES["md"]), ("csv", FILES["csv"]), ("plot", FILES["png"]))}}
