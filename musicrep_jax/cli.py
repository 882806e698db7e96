"""``musicrep``: prepare shards, train, evaluate, and the paper-specific commands.

Examples::

  musicrep train --config demo --workdir workdirs/demo
  musicrep eval --workdir workdirs/demo --split test
  musicrep configs                    # every packaged config: name, runner, summary, variants
  musicrep train --config word2vec:runlocal --workdir workdirs/w2v     # any config, its runner
  musicrep train --config samplecnn_mtat --print-config --config.batch_size=64
  musicrep prepare synthetic --out data/synthetic --num-clips 600
  musicrep prepare folder --audio-dir ~/music --manifest ~/music/tags.csv --out data/mine
  musicrep train --config samplecnn_mtat --workdir workdirs/mtat --data-dir data/mtat \\
      --config.batch_size=64 --config.optimizer.learning_rate=0.02

``--config`` takes a packaged config by name (``musicrep configs``) or a file
(``path/to/X.py[:arg]``).

Every command ends with one JSON line (its summary); errors the user must fix are one line
starting with ``error:`` and exit status 2. Commands live in ``musicrep_jax/commands/``.
"""

from __future__ import annotations

import argparse
import json
import sys

from musicrep_jax.commands import command_modules
from musicrep_jax.errors import UserError


def _parser(modules) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="musicrep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for name, module in modules.items():
    p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", None))
    module.add_arguments(p)
  return parser


def _version() -> str:
  """The installed distribution's version (``importlib.metadata``); the package's own
  ``__version__`` when run from a checkout that is not installed."""
  from importlib import metadata

  try:
    return metadata.version("musicrep-jax")
  except metadata.PackageNotFoundError:
    from musicrep_jax import __version__

    return __version__


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  modules = command_modules()
  overrides = [a for a in argv if a.startswith("--config.")]
  args = _parser(modules).parse_args([a for a in argv if not a.startswith("--config.")])
  module = modules[args.command]
  if overrides and not getattr(module, "ACCEPTS_CONFIG_OVERRIDES", False):
    accepting = [n for n, m in modules.items() if getattr(m, "ACCEPTS_CONFIG_OVERRIDES", False)]
    print(f"error: {overrides[0]} only applies to `musicrep {'|'.join(accepting)}`.",
          file=sys.stderr)
    return 2
  try:
    result = module.run(args, overrides)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if result.get("stopped_by"):
    print(json.dumps({"stopped_by": result["stopped_by"], "step": result["step"]}))
    return 143 if result["stopped_by"] == "SIGTERM" else 130
  print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
