"""Paper 14's training-time comparison (papers.md 15.4) as a benchmark: time-to-quality curves.

Runs paper 14's grid (``musicrep_jax.systems.paper14.grid.compare``, as ``musicrep
compare-paper14`` does, with its flags: the eight cells of the poster's grid, each trained on the
embedded corpus, a finished cell in ``--out`` reused) and, with ``--write-doc``, writes its table
into the "Training-time comparison" section of ``docs/benchmarks.md`` with the machine and the
command, and copies its metric-vs-time plot to ``docs/plots/paper14_metric_vs_time.png``.
Training time excludes compilation, evaluation and checkpoints (``systems/paper14/report.py``'s
module docstring); the time ratios divide by the plain classification model's, measured in the
same run on the same cores.

Example: ``musicrep bench paper14 --out /tmp/p14 --write-doc`` (about 8-10 minutes on 2
CPU cores at ``--size runlocal``).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import shlex
import shutil
import sys
from typing import Optional, Sequence

from musicrep_jax.bench.report import DOC, machine, machine_line, pin_threads, replace_section

PLOT_NAME = "paper14_metric_vs_time.png"
SECTION = "paper14-time-to-quality"


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[argparse.Namespace, list]:
  from musicrep_jax.commands import compare_paper14

  p = argparse.ArgumentParser(prog="musicrep bench paper14",
                              description=__doc__.split("\n\n")[0])
  compare_paper14.add_arguments(p)
  p.add_argument("--threads", type=int, default=None, help="pin the process to N CPUs")
  p.add_argument("--write-doc", action="store_true", help=f"update the section of {DOC.name}")
  p.add_argument("--doc", default=str(DOC), help=argparse.SUPPRESS)
  args, rest = p.parse_known_args(argv)
  unknown = [a for a in rest if not a.startswith("--config.")]
  if unknown:
    p.error(f"unrecognized arguments: {' '.join(unknown)}")
  return args, rest


def doc_section(table_md: str, info: dict, threads: int, command: str) -> str:
  """The section's markdown: the table (without its title line), machine, command, plot."""
  body = [line for line in table_md.splitlines() if not line.startswith("# ")]
  return "\n".join([
      "## Training-time comparison: paper 14's grid (time to quality)",
      "",
      "Each cell trained by `musicrep compare-paper14` (backbone, data and machine in the note "
      "below); time columns are "
      "training seconds without compilation, evaluation and checkpoints, ratios to the plain "
      "classification model in the same run.",
      "",
      f"- Date: {datetime.date.today().isoformat()}",
      machine_line(info, threads),
      f"- Command: `{command}`",
      *body,
      "",
      f"![validation metric against training time](plots/{PLOT_NAME})",
  ])


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args, overrides = parse_args(argv)
  threads = pin_threads(args.threads)
  from musicrep_jax.commands import compare_paper14

  summary = compare_paper14.run(args, overrides)
  if "table" not in summary:  # Stopped (signal): nothing to write.
    return summary
  if args.write_doc:
    doc = pathlib.Path(args.doc)
    command = "musicrep bench paper14 " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    replace_section(doc, SECTION, doc_section(pathlib.Path(summary["table"]).read_text(),
                                              machine(), threads, command))
    (doc.parent / "plots").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(summary["plot"], doc.parent / "plots" / PLOT_NAME)
  return summary


if __name__ == "__main__":
  main()
