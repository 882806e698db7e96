"""Subcommands of ``musicrep``: one module per command, found by name.

A command module defines::

    HELP = "one line for `musicrep --help`"
    DESCRIPTION = "paragraph for `musicrep COMMAND --help`"   # optional
    ACCEPTS_CONFIG_OVERRIDES = False                           # optional: --config.a.b=v
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace, overrides: list[str]) -> dict: ...

``run`` returns a dict whose scalar entries become the final JSON line; it raises
``musicrep_jax.errors.UserError`` for anything the user must fix. Keep module-level imports
light (argparse, pathlib): every module is imported to build ``--help``; import JAX and TFDS
inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType


def command_modules() -> dict[str, ModuleType]:
  """``{command name: module}``; a module ``foo_bar.py`` is the command ``foo-bar``."""
  found = {}
  for info in pkgutil.iter_modules(__path__):
    if info.name.startswith("_"):
      continue
    module = importlib.import_module(f"{__name__}.{info.name}")
    found[getattr(module, "NAME", info.name.replace("_", "-"))] = module
  return dict(sorted(found.items()))


def add_run_args(p: argparse.ArgumentParser, workdir_required: bool = True) -> None:
  """--workdir, --data-dir and the multi-process flags shared by train-like commands."""
  p.add_argument("--workdir", required=workdir_required,
                 help="checkpoints, logs and config go here")
  p.add_argument("--data-dir", default=None,
                 help="prepared shards (default: the embedded corpus, rendered into a cache)")
  add_process_args(p)


def add_process_args(p: argparse.ArgumentParser) -> None:
  group = p.add_argument_group("multi-process (see launch/)")
  group.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
  group.add_argument("--num-processes", type=int, default=None)
  group.add_argument("--process-id", type=int, default=None)


def print_metrics(title: str, metrics: dict) -> None:
  print(title)
  for key, value in metrics.items():
    if isinstance(value, float):
      print(f"  {key:>16}: {value:.4f}")
    elif not isinstance(value, (dict, list)):
      print(f"  {key:>16}: {value}")


def print_report(report) -> None:
  """Prints a runner's ``report``: lines, and ``(title, metrics)`` pairs (``print_metrics``)."""
  for item in report:
    if isinstance(item, str):
      print(item)
    else:
      print_metrics(*item)
