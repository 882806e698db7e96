"""Paper 14's grid (papers.md 15): metric learning vs classification, plain or disentangled,
each cell trained at any scale, then compared on time to quality (``report``).

The cells (``GRID``: approach x plain/disentangled, the eight rows of the poster's tables) are
``configs/paper14.py:APPROACH,VARIANT,BACKBONE[,runlocal]`` (``cell_config``; ``BACKBONE`` the
Inception network by default, or ``mel_dcnn``) at a ``size``: ``paper`` (the paper-scale
config, on prepared MSD-layout shards with tag groups: ``--data-dir`` is required),
``runlocal`` (the embedded corpus) or ``tiny`` (``runlocal`` shrunk by ``metric_tiny``: seconds,
for tests). Each is trained in this process by the trainer into ``OUT/runs/APPROACH-VARIANT``:

* a finished cell (``summary.json``) is reused, never retrained or overwritten, when its
  ``config.json`` and data match (``training/run_record.check_finished``, ``_check_data``);
  another config or data fails with one line;
* an interrupted cell resumes from its last checkpoint (the trainer's resume, which refuses
  another config); the grid also refuses another schedule (``--steps``, ``--evals``:
  ``_check_schedule``), so that one cell's curve never mixes two.

Cells can run on separate machines (``--cells`` subsets into separate ``--out`` folders, or the
same ``gs://`` one); ``gather`` then builds the report from the finished cells of several
outputs without training. ``compare`` trains and reports its cells; both write
``report.write_report``'s ``table.md`` (with the poster's numbers and orderings), ``table.csv``,
``plots/metric_vs_time.png`` and ``results.json``; ``musicrep compare-paper14`` and ``musicrep
bench paper14`` call them. Cells gathered from different machines are reported with their
hardware: their time ratios then compare different clocks.

``run`` is the ``"paper14"`` runner of ``musicrep_jax.registry.RUNNERS``: ``compare`` into the
workdir with the grid settings of the config, every one optional (defaults as
``compare-paper14``): ``cells`` (comma-separated ``APPROACH:VARIANT``, "" for all eight),
``size`` (``SIZES``), ``backbone`` (None or "": the Inception network), ``steps`` (0: the
cells' own), ``evals``, ``target``, ``fraction`` and ``cell_overrides`` (``"--config.a.b=v"``
strings applied to every cell).
"""

from __future__ import annotations

import json
import pathlib
from typing import Optional, Sequence

from musicrep_jax import storage
from musicrep_jax.errors import UserError
from musicrep_jax.registry import RUNNERS
from musicrep_jax.training import run_record
from musicrep_jax.systems.paper14 import report

GRID = (("triplet", "plain"), ("triplet", "disentangled"), ("triplet_track", "disentangled"),
        ("proxy", "plain"), ("proxy", "disentangled"), ("classification_nonorm", "plain"),
        ("classification", "plain"), ("classification", "disentangled"))
BASELINE = ("classification", "plain")
SIZES = ("paper", "runlocal", "tiny")
DEFAULT_SIZE = "runlocal"
DEFAULT_TARGET = "overall/triplet_acc"
DEFAULT_FRACTION = 0.9
DEFAULT_EVALS = 8
# What a cell's schedule is: a resumed cell must keep it (``_check_schedule``).
SCHEDULE_KEYS = ("num_train_steps", "eval_every")


def parse_cells(text: Optional[str], key: str = "--cells") -> tuple:
  """``"APPROACH:VARIANT,..."`` -> cells of ``GRID`` in the given order (empty: all of it)."""
  if not text:
    return GRID
  cells = []
  for item in text.split(","):
    approach, _, variant = item.strip().partition(":")
    if (approach, variant) not in GRID:
      raise UserError(f"{key}: {item!r} is not a cell of the grid; cells are "
                      f"{', '.join(a + ':' + v for a, v in GRID)}.")
    cells.append((approach, variant))
  return tuple(cells)


def cell_config(approach: str, variant: str, size: str, steps: Optional[int], evals: int,
                overrides: Sequence[str] = (), backbone: Optional[str] = None):
  """The config of one cell (``configs/paper14.py``) on ``backbone`` (default
  ``metric_learning.PAPER13_BACKBONE``) at ``size`` (``SIZES``), with ``evals`` validation
  points (each one a checkpoint) over ``steps`` (default: the config's)."""
  from musicrep_jax import config_loading
  from musicrep_jax.configs import metric_learning as metric_configs

  if size not in SIZES:
    raise UserError(f"size={size!r} is not one of {', '.join(SIZES)}.")
  backbone = backbone or metric_configs.PAPER13_BACKBONE
  if backbone not in metric_configs.BACKBONES:
    raise UserError(f"backbone={backbone!r} is not one of {', '.join(metric_configs.BACKBONES)}.")
  local = "" if size == "paper" else ",runlocal"
  spec = config_loading.resolve_config_spec(f"paper14:{approach},{variant},{backbone}{local}")
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


def _data_text(data_dir: Optional[str]) -> Optional[str]:
  """``data_dir`` as the trainer records it in ``run_info.json`` (absolute, or a URI)."""
  if data_dir is None or storage.is_remote(data_dir):
    return data_dir
  return str(pathlib.Path(data_dir).expanduser().absolute())


def _check_data(workdir, data_dir: Optional[str]) -> None:
  """Refuses a finished cell trained on other data than ``data_dir``."""
  from musicrep_jax.training import trainer

  recorded = trainer.read_run_info(workdir)
  if recorded and recorded.get("data_dir") != _data_text(data_dir):
    raise UserError(f"{workdir} holds a finished cell trained on "
                    f"{recorded.get('data_dir') or 'the embedded corpus'}, not "
                    f"{_data_text(data_dir) or 'the embedded corpus'}; it is not overwritten: "
                    f"choose another --out, or remove it.")


def _check_schedule(workdir, config) -> None:
  """Refuses to resume an interrupted cell with another ``SCHEDULE_KEYS`` (the trainer's
  resume allows them): its curve would mix two schedules."""
  if not (workdir / "config.json").exists():
    return
  old = json.loads((workdir / "config.json").read_text())
  changed = [k for k in SCHEDULE_KEYS if old.get(k) != config[k]]
  if changed:
    was = ", ".join(f"{k}={old.get(k)}" for k in changed)
    now = ", ".join(f"{k}={config[k]}" for k in changed)
    raise UserError(f"{workdir} is an interrupted cell with {was}, not {now}; rerun with its "
                    f"--steps and --evals to resume it, or remove it to start over.")


def compare(out: str | pathlib.Path, *, data_dir: Optional[str] = None,
            size: Optional[str] = None, cells: Optional[str] = None,
            steps: Optional[int] = None, evals: Optional[int] = None,
            target: str = DEFAULT_TARGET, fraction: float = DEFAULT_FRACTION,
            overrides: Sequence[str] = (), backbone: Optional[str] = None) -> dict:
  """Trains every cell of ``cells`` (``parse_cells``) at ``size`` (default ``runlocal``) into
  ``out/runs`` and writes the report of those cells into ``out``; returns its summary, or the
  trainer's summary of a cell a signal stopped (it has ``stopped_by``; rerun to resume)."""
  from musicrep_jax import config_loading
  from musicrep_jax.training import trainer

  size = size or DEFAULT_SIZE
  evals = DEFAULT_EVALS if evals is None else evals
  _check_fraction(fraction, "--fraction")
  if size == "paper" and data_dir is None:
    raise UserError("--size paper trains on prepared MSD-layout shards with tag groups: pass "
                    "--data-dir (or --size runlocal for the embedded corpus).")
  configs = [(a, v, cell_config(a, v, size, steps, evals, overrides, backbone))
             for a, v in parse_cells(cells)]  # Every cell's config checked before training.
  out = storage.as_path(out)  # Local, or gs://...: the runs through the trainer, then the report.
  out.mkdir(parents=True, exist_ok=True)
  found = []
  for approach, variant, config in configs:
    name = report.cell_labels(approach, variant)["name"]
    workdir = out / "runs" / name
    if run_record.check_finished(workdir, config):  # Refuses a finished other config.
      _check_data(workdir, data_dir)
    else:
      _check_schedule(workdir, config)
      print(f"=== {name} ({config.num_train_steps} steps) ===", flush=True)
      summary = trainer.train(config, workdir, data_dir)
      if "stopped_by" in summary:
        return summary
      (workdir / run_record.SUMMARY).write_text(
          json.dumps({k: v for k, v in summary.items() if k != "test"}))
    found.append((approach, variant, workdir, json.loads(config_loading.to_json(config))))
  return _report(found, out, target, fraction)


def gather(outs: Sequence[str | pathlib.Path], out: str | pathlib.Path, *,
           cells: Optional[str] = None, target: str = DEFAULT_TARGET,
           fraction: float = DEFAULT_FRACTION) -> dict:
  """The report of the finished cells (of ``cells``, default all) found in the ``runs/`` of
  every folder of ``outs`` (outputs of ``compare`` on any machines), written into ``out``
  without training. A cell finished in two of them, or cells of different backbones,
  dimensions or data, fail with one line; unfinished cells are named and left out."""
  _check_fraction(fraction, "--fraction")
  found, unfinished = [], []
  for folder in map(storage.as_path, outs):
    if not (folder / "runs").is_dir():
      raise UserError(f"--gather: {folder} has no runs/ folder: not an output of "
                      f"compare-paper14.")
    for approach, variant in parse_cells(cells):
      workdir = folder / "runs" / report.cell_labels(approach, variant)["name"]
      if not (workdir / run_record.SUMMARY).exists():
        if workdir.exists():
          unfinished.append(str(workdir))
        continue
      twin = next((w for a, v, w, _ in found if (a, v) == (approach, variant)), None)
      if twin is not None:
        raise UserError(f"--gather: the cell {approach}:{variant} is finished in both {twin} "
                        f"and {workdir}; gather one of them.")
      if not (workdir / "config.json").exists():
        raise UserError(f"--gather: {workdir} has no config.json: not a cell trained by "
                        f"compare-paper14.")
      found.append((approach, variant, workdir,
                    json.loads((workdir / "config.json").read_text())))
  if not found:
    raise UserError(f"--gather: no finished cell in {', '.join(map(str, outs))}.")
  order = {cell: i for i, cell in enumerate(GRID)}
  found.sort(key=lambda cell: order[cell[:2]])
  for workdir in unfinished:
    print(f"Note: {workdir} is not finished; left out of the report.", flush=True)
  out = storage.as_path(out)
  out.mkdir(parents=True, exist_ok=True)
  return _report(found, out, target, fraction)


def _report(found: list, out, target: str, fraction: float) -> dict:
  """The report of ``found`` cells (approach, variant, workdir, config as JSON): one
  backbone, one set of dimensions and one dataset, else one line."""
  from musicrep_jax.training import trainer

  settings = []
  for approach, variant, workdir, config in found:
    info = trainer.read_run_info(workdir)
    settings.append({
        "backbone": config.get("model", {}).get("kwargs", {}).get("backbone", "?"),
        "dims": tuple(config.get("task", {}).get("kwargs", {}).get("labels", ())),
        "data": info.get("data_dir") or "the embedded corpus",
        "steps": config.get("num_train_steps"), "hardware": info.get("hardware")})
  for key in ("backbone", "dims", "data"):
    values = {s[key] for s in settings}
    if len(values) > 1:
      each = "; ".join(f"{c[0]}:{c[1]} {s[key]}" for c, s in zip(found, settings))
      raise UserError(f"The cells differ in {key} ({each}); report one grid at a time.")
  rows = [dict(report.summarize_run(workdir, target, fraction, settings[0]["dims"]),
               **report.cell_labels(approach, variant))
          for approach, variant, workdir, _ in found]
  report.add_time_ratios(rows, "-".join(BASELINE))
  steps = "/".join(str(n) for n in sorted({s["steps"] for s in settings if s["steps"]}))
  hardware = sorted({s["hardware"] for s in settings if s["hardware"]})
  setting = f"Backbone {settings[0]['backbone']}, {settings[0]['data']}, {steps or '?'} steps"
  if len(hardware) == 1:
    setting += f" per cell, trained on {hardware[0]}."
  elif hardware:
    setting += (f" per cell; the cells ran on different machines ({'; '.join(hardware)}), so "
                f"the time ratios compare different clocks.")
  else:
    setting += " per cell."
  return report.write_report(rows, out, settings[0]["dims"], setting=setting, target=target,
                             fraction=fraction)


def _check_fraction(fraction: float, key: str) -> None:
  if not 0.0 < fraction <= 1.0:
    raise UserError(f"{key} must be in (0, 1], got {fraction}.")


@RUNNERS.register("paper14")
def run(config, *, workdir: str, data_dir: Optional[str]) -> dict:
  """The ``"paper14"`` runner: ``compare`` into ``workdir`` with the config's grid settings
  (module docstring)."""
  fraction = float(config.get("fraction", DEFAULT_FRACTION))
  _check_fraction(fraction, "config.fraction")
  return compare(workdir, data_dir=data_dir, size=config.get("size", DEFAULT_SIZE),
                 cells=config.get("cells", None) or None, steps=config.get("steps", None) or None,
                 evals=int(config.get("evals", DEFAULT_EVALS)),
                 target=config.get("target", DEFAULT_TARGET), fraction=fraction,
                 overrides=tuple(config.get("cell_overrides", None) or ()),
                 backbone=config.get("backbone", None) or None)
