"""``musicrep compare``: training-time comparison of trainer configs over seeds
(``musicrep_jax.systems.compare``; docs/compare.md).

Trains every CONFIG[:ARGS] with seeds 0..N-1 (--config.seed; the --config.a.b=v overrides
apply to every config), each run in its own process into WORKDIR_ROOT/<config>-seed<k> (a
finished run whose config matches is reused, never overwritten: a rerun resumes the
comparison), then writes OUT/compare.md (printed), compare.csv (one row per run), compare.json
and compare.png (validation metric against steps and training time). Per run: steps/s and
samples/s without the compiling step, evaluations and checkpoints; time to the --target;
compile time; peak host and device memory; the hardware and software versions. Per config:
mean ± 95 % t-interval over seeds. Rows already in OUT are kept (appended to); rows of other
hardware are refused unless --allow-mixed-hardware.
"""

from __future__ import annotations

import argparse

HELP = "train configs over seeds and compare training time, time to a target and memory"
DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else None
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("configs", nargs="+", metavar="CONFIG[:ARGS]",
                      help="trainer configs by name or file (`musicrep configs`), e.g. "
                           "demo:runlocal resemul_mtat:runlocal")
  parser.add_argument("--seeds", type=int, default=1, help="seeds per config: 0..N-1")
  parser.add_argument("--target", default=None, metavar="METRIC=VALUE",
                      help="validation metric and value for the time-to-target columns, e.g. "
                           "roc_auc=0.8 (reached at >=; at <= for metrics ending in loss, error "
                           "or eer; or write METRIC>=VALUE / METRIC<=VALUE)")
  parser.add_argument("--out", required=True,
                      help="folder for compare.md, .csv, .json, .png (local or gs://); rows "
                           "already there are kept")
  parser.add_argument("--workdir-root", default=None,
                      help="folder of the runs' workdirs (default OUT/runs)")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards (default: the embedded corpus, rendered into a cache)")
  parser.add_argument("--plot-metric", default=None,
                      help="validation metric of compare.png (default: the target's, else loss)")
  parser.add_argument("--allow-mixed-hardware", action="store_true",
                      help="put runs from different hardware in one table")


def run(args, overrides) -> dict:
  from musicrep_jax.systems import compare

  return compare.compare(args.configs, seeds=args.seeds, out=args.out, target=args.target,
                         workdir_root=args.workdir_root, overrides=overrides,
                         data_dir=args.data_dir, allow_mixed_hardware=args.allow_mixed_hardware,
                         plot_metric=args.plot_metric)
