"""``musicrep compare-paper14``: train paper 14's grid at any scale and write its table and
plots, or gather finished cells from several machines (``musicrep_jax.systems.paper14``;
papers.md 15).

Trains the eight cells of the poster's grid (approach x plain/disentangled,
configs/paper14.py:APPROACH,VARIANT,BACKBONE[,runlocal]; --backbone inception, the default, or
mel_dcnn) at --size paper (the paper-scale configs on --data-dir, prepared MSD-layout shards
with tag groups), runlocal (the embedded corpus) or tiny (seconds, tests) into
OUT/runs/APPROACH-VARIANT: a finished cell is reused, an interrupted one resumes from its
checkpoint, one of another config, data or schedule fails. --cells runs a subset, so cells can
run on separate machines into separate --out folders (or one gs:// folder); --gather OUT1 OUT2
... then writes the report of their finished cells into --out without training. The report:
OUT/table.md (training time, retrieval Recall@K, tagging ROC-AUC and triplet accuracy on the
test split; the poster's numbers beside ours; the orderings the poster reports, held or not),
table.csv, plots/metric_vs_time.png (validation metric against training time without compile,
evaluation and checkpoints) and results.json. The time to target is the training time until the
validation --target metric reaches chance + --fraction x (final - chance); ratios divide by the
plain classification model's.
"""

from __future__ import annotations

import argparse

HELP = "train paper 14's grid (metric learning vs classification) and write its table and plots"
DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else None
ACCEPTS_CONFIG_OVERRIDES = True
# musicrep_jax.systems.paper14.grid.SIZES and configs/metric_learning.py:BACKBONES, written out
# for an import-light --help (tests/unit/systems/paper14/test_grid.py checks they agree).
SIZES = ("paper", "runlocal", "tiny")
BACKBONES = ("inception", "mel_dcnn")
# The training flags, which --gather does not take (it trains nothing).
TRAINING_FLAGS = ("data_dir", "size", "steps", "evals", "backbone")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", required=True,
                      help="folder for runs/, table.md, table.csv, plots/: local or gs://... "
                      "(any etils.epath URI); with --gather, the report only")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards (required by --size paper; default: the embedded "
                      "corpus, rendered into a cache)")
  parser.add_argument("--size", choices=SIZES, default=None,
                      help="paper: the papers' configs on --data-dir; runlocal (default): "
                      "minutes per cell on the embedded corpus; tiny: seconds (tests)")
  parser.add_argument("--backbone", choices=BACKBONES, default=None,
                      help="every cell's backbone (default inception: papers 13/14's network)")
  parser.add_argument("--cells", default=None,
                      help="comma-separated APPROACH:VARIANT cells (default: the 8 of the poster)")
  parser.add_argument("--steps", type=int, default=None, help="training steps per cell")
  parser.add_argument("--evals", type=int, default=None,
                      help="validation points per cell (default 8)")
  parser.add_argument("--gather", nargs="+", default=None, metavar="OUT",
                      help="write the report of the finished cells in these outputs of "
                      "compare-paper14 (any machines) into --out, without training")
  parser.add_argument("--target", default="overall/triplet_acc",
                      help="validation metric for the time-to-target columns")
  parser.add_argument("--fraction", type=float, default=0.9,
                      help="fraction of the final gain over chance that counts as reached")


def run(args, overrides) -> dict:
  from musicrep_jax.errors import UserError
  from musicrep_jax.systems.paper14 import grid

  if args.gather:
    given = [f"--{k.replace('_', '-')}" for k in TRAINING_FLAGS if getattr(args, k) is not None]
    if given or overrides:
      raise UserError(f"--gather trains nothing, so it takes no {' '.join(given + overrides)}.")
    return grid.gather(args.gather, args.out, cells=args.cells, target=args.target,
                       fraction=args.fraction)
  return grid.compare(args.out, data_dir=args.data_dir, size=args.size, cells=args.cells,
                      steps=args.steps, evals=args.evals, target=args.target,
                      fraction=args.fraction, overrides=overrides, backbone=args.backbone)
