"""``musicrep prepare SOURCE``: decode audio once into int16 ArrayRecord shards (TFDS format).

Sources live in ``data_pipelines/sources/`` (one module each).
"""

import pathlib

HELP = "build pre-decoded ArrayRecord shards (offline)"
DESCRIPTION = ("Decode audio once into int16 ArrayRecord shards (TFDS format) that training "
               "reads through Grain. Every source writes <out>/prepare_report.json listing what "
               "was written and every file skipped, with the reason.")


def add_arguments(parser) -> None:
  from musicrep_jax.data_pipelines.sources import source_modules

  sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
  for name, module in source_modules().items():
    p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", None))
    p.add_argument("--out", required=True, help="output data dir (pass it as --data-dir)")
    module.add_arguments(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset already in --out")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.data_pipelines.sources import source_modules

  report = source_modules()[args.source].prepare(args)
  for warning in report.get("warnings", []):
    print(f"warning: {warning}")
  total = report["total"]
  truncated = f" ({report['truncated']} truncated)" if report.get("truncated") else ""
  print(f"Prepared {args.out}: {total['seen']} file(s) seen, {total['written']} written, "
        f"{total['skipped']} skipped{truncated}; report in "
        f"{pathlib.Path(args.out) / 'prepare_report.json'}")
  return report
