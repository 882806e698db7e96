"""Paper 14's grid (papers.md 15): metric learning vs classification, plain or disentangled,
each cell trained on the embedded corpus, then compared on time to quality (``report``).

The cells (``GRID``: approach x plain/disentangled, the eight rows of the poster's tables) are
``configs/paper14.py:APPROACH,VARIANT,BACKBONE,runlocal`` (``cell_config``; ``BACKBONE`` the
Inception network by default, or ``mel_dcnn``; ``size="tiny"`` shrinks them further with
``metric_tiny``), each trained in this process by the trainer into
``OUT/runs/APPROACH-VARIANT`` (a finished cell, one with ``summary.json``, is reused when its
``config.json`` matches, and never overwritten: ``training/run_record.check_finished``; an
unfinished one resumes). ``compare`` trains the grid and writes the report
(``report.write_report``: ``table.md``, ``table.csv``, ``plots/metric_vs_time.png``,
``results.json``); ``musicrep compare-paper14`` and ``musicrep bench paper14`` call it.

``run`` is the ``"paper14"`` runner of ``musicrep_jax.registry.RUNNERS``: ``compare`` into the
workdir with the grid settings of the config, every one optional (defaults as
``compare-paper14``): ``cells`` (comma-separated ``APPROACH:VARIANT``, "" for all eight),
``size`` (``"runlocal"`` or ``"tiny"``), ``backbone`` (None or "": the Inception network),
``steps`` (0: the cells' own), ``evals``, ``target``, ``fraction`` and ``cell_overrides``
(``"--config.a.b=v"`` strings applied to every cell).
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
SIZES = ("runlocal", "tiny")
DEFAULT_TARGET = "overall/triplet_acc"
DEFAULT_FRACTION = 0.9
DEFAULT_EVALS = 8


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
  ``metric_learning.PAPER13_BACKBONE``), shrunk to ``size``, with ``evals`` validation points
  (each one a checkpoint) over ``steps`` (default: the config's)."""
  from musicrep_jax import config_loading
  from musicrep_jax.configs import metric_learning as metric_configs

  if size not in SIZES:
    raise UserError(f"size={size!r} is not one of {', '.join(SIZES)}.")
  backbone = backbone or metric_configs.PAPER13_BACKBONE
  if backbone not in metric_configs.BACKBONES:
    raise UserError(f"backbone={backbone!r} is not one of {', '.join(metric_configs.BACKBONES)}.")
  spec = config_loading.resolve_config_spec(f"paper14:{approach},{variant},{backbone},runlocal")
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


def compare(out: str | pathlib.Path, *, data_dir: Optional[str] = None,
            size: str = "runlocal", cells: Optional[str] = None, steps: Optional[int] = None,
            evals: int = DEFAULT_EVALS, target: str = DEFAULT_TARGET,
            fraction: float = DEFAULT_FRACTION, overrides: Sequence[str] = (),
            backbone: Optional[str] = None) -> dict:
  """Trains every cell of ``cells`` (``parse_cells``) into ``out/runs`` and writes the report
  into ``out``; returns its summary, or the trainer's summary of a cell a signal stopped (it
  has ``stopped_by``; rerun to resume)."""
  from musicrep_jax.training import trainer

  if not 0.0 < fraction <= 1.0:
    raise UserError(f"--fraction must be in (0, 1], got {fraction}.")
  out = storage.as_path(out)  # Local, or gs://...: the runs through the trainer, then the report.
  out.mkdir(parents=True, exist_ok=True)
  rows, dims = [], None
  for approach, variant in parse_cells(cells):
    labels = report.cell_labels(approach, variant)
    config = cell_config(approach, variant, size, steps, evals, overrides, backbone)
    dims = tuple(config.task.kwargs.labels)
    workdir = out / "runs" / labels["name"]
    done = workdir / run_record.SUMMARY
    if not run_record.check_finished(workdir, config):  # Refuses a finished other config.
      print(f"=== {labels['name']} ({config.num_train_steps} steps) ===", flush=True)
      summary = trainer.train(config, workdir, data_dir)
      if "stopped_by" in summary:
        return summary
      done.write_text(json.dumps({k: v for k, v in summary.items() if k != "test"}))
    rows.append(dict(report.summarize_run(workdir, target, fraction, dims), **labels))
  report.add_time_ratios(rows, "-".join(BASELINE))
  return report.write_report(rows, out, dims, size=size, target=target, fraction=fraction)


@RUNNERS.register("paper14")
def run(config, *, workdir: str, data_dir: Optional[str]) -> dict:
  """The ``"paper14"`` runner: ``compare`` into ``workdir`` with the config's grid settings
  (module docstring)."""
  fraction = float(config.get("fraction", DEFAULT_FRACTION))
  if not 0.0 < fraction <= 1.0:
    raise UserError(f"config.fraction must be in (0, 1], got {fraction}.")
  return compare(workdir, data_dir=data_dir, size=config.get("size", "runlocal"),
                 cells=config.get("cells", None) or None, steps=config.get("steps", None) or None,
                 evals=int(config.get("evals", DEFAULT_EVALS)),
                 target=config.get("target", DEFAULT_TARGET), fraction=fraction,
                 overrides=tuple(config.get("cell_overrides", None) or ()),
                 backbone=config.get("backbone", None) or None)
