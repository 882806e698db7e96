"""``musicrep bench NAME [ARGS...]``: run one of the benchmarks in ``bench/``.

Each ``bench/<name>_bench.py`` is the benchmark ``<name>`` (underscores become dashes), e.g.
``musicrep bench train-step --n 5 --batch 16`` runs
``python -m musicrep_jax.bench.train_step_bench --n 5 --batch 16``. Arguments after NAME go to the
benchmark unchanged (see ``musicrep bench NAME --help``); ``--write-doc`` updates its section of
docs/benchmarks.md.
"""

import argparse
import importlib
import importlib.util
import pathlib

HELP = "run a benchmark from bench/ (train-step, input-pipeline, ...)"
DESCRIPTION = __doc__.split("\n\n", 1)[1]
ACCEPTS_CONFIG_OVERRIDES = True  # --config.a.b=v go to benchmarks that take a config.


def _bench_dir() -> pathlib.Path:
  """The benchmarks' folder (the repository's ``bench/``, installed as ``musicrep_jax.bench``)."""
  spec = importlib.util.find_spec("musicrep_jax.bench")
  return pathlib.Path(next(iter(spec.submodule_search_locations)))


def benchmarks() -> dict[str, str]:
  """``{name: module}`` of the benchmarks next to this checkout."""
  return {p.stem[:-len("_bench")].replace("_", "-"): f"musicrep_jax.bench.{p.stem}"
          for p in sorted(_bench_dir().glob("*_bench.py"))}


def add_arguments(parser) -> None:
  names = list(benchmarks())
  parser.add_argument("name", choices=names, metavar="NAME", help=", ".join(names))
  parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")


def run(args, overrides) -> dict:
  module = importlib.import_module(benchmarks()[args.name])
  result = module.main(list(args.args) + list(overrides))
  return result if isinstance(result, dict) else {}
