"""``musicrep compare-paper14``: train paper 14's grid and write its table and plots
(``musicrep_jax.systems.paper14``; papers.md 15).

Trains the eight cells of the poster's grid (approach x plain/disentangled,
configs/paper14.py:APPROACH,VARIANT,runlocal, or shrunk further with --size tiny) on the
embedded corpus into OUT/runs/APPROACH-VARIANT (a finished cell is reused, an unfinished one
resumes), then writes OUT/table.md and table.csv (training time, retrieval Recall@K, tagging
ROC-AUC and triplet accuracy on the test split), plots/metric_vs_time.png (validation metric
against training time without compile, evaluation and checkpoints) and results.json. The time
to target is the training time until the validation --target metric reaches chance + --fraction
x (final - chance); ratios divide by the plain classification model's.
"""

from __future__ import annotations

import argparse

HELP = "train paper 14's grid (metric learning vs classification) and write its table and plots"
DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else None
ACCEPTS_CONFIG_OVERRIDES = True
SIZES = ("runlocal", "tiny")  # musicrep_jax.systems.paper14.grid.SIZES (import-light --help).


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", required=True,
                      help="folder for runs/, table.md, table.csv, plots/: local or gs://... "
                      "(any etils.epath URI)")
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


def run(args, overrides) -> dict:
  from musicrep_jax.systems.paper14 import grid

  return grid.compare(args.out, data_dir=args.data_dir, size=args.size, cells=args.cells,
                      steps=args.steps, evals=args.evals, target=args.target,
                      fraction=args.fraction, overrides=overrides)
