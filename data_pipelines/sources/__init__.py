"""Sources of ``musicrep prepare SOURCE``: one module per source, found by name.

A source module defines::

    HELP = "one line for `musicrep prepare --help`"
    DESCRIPTION = "paragraph for `musicrep prepare SOURCE --help`"   # optional
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...  # --out is added for you
    def prepare(args: argparse.Namespace) -> dict: ...               # the prepare report

Module-level imports stay light (every source is imported to build ``--help``); import TFDS and
the builder inside ``prepare``. A module ``speech_commands.py`` is the source
``speech_commands``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def source_modules() -> dict[str, ModuleType]:
  found = {}
  for info in pkgutil.iter_modules(__path__):
    if not info.name.startswith("_"):
      found[info.name] = importlib.import_module(f"{__name__}.{info.name}")
  return dict(sorted(found.items()))
