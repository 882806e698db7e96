"""``musicrep plot``: the training curves of one or more workdirs overlaid in one PNG
(``musicrep_jax.training.curves``).

Reads each workdir's metrics.jsonl (local or gs://) and draws loss, learning rate and the
validation metrics (or the --metric ones) against steps and against training time (the
trainer's time without the compiling step, evaluations and checkpoints), one colour per run,
labelled with the workdir's name and its config. `musicrep train` writes the same plot of a
single run as WORKDIR/curves.png at each evaluation.
"""

from __future__ import annotations

import argparse

HELP = "overlay the training curves of several workdirs in one PNG"
DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("workdirs", nargs="+", metavar="WORKDIR",
                      help="training workdirs (local or gs://), each with a metrics.jsonl")
  parser.add_argument("--out", default="curves.png",
                      help="the PNG to write (local or gs://; default ./curves.png)")
  parser.add_argument("--metric", action="append", default=None, metavar="NAME",
                      help="a metric to plot (repeatable; train and validation rows); default: "
                           "loss, learning_rate and the first validation metrics")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.training import curves

  return curves.plot_workdirs(args.workdirs, args.out, metrics=args.metric)
