"""``musicrep eval``: evaluate a workdir's checkpoint on a split."""

from musicrep_jax.commands import add_run_args, print_metrics

HELP = "evaluate a workdir's best checkpoint on a split"
DESCRIPTION = "Prints the metrics, then one JSON line."


def add_arguments(parser) -> None:
  add_run_args(parser)
  parser.add_argument("--split", default="test", help="default: test")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.training import distributed

  distributed.maybe_initialize(args.coordinator, args.num_processes, args.process_id)
  from musicrep_jax.training import trainer

  result = trainer.evaluate_workdir(args.workdir, args.split, args.data_dir, args.checkpoint)
  print_metrics(f"{args.split} split, {args.checkpoint} checkpoint (step {result['step']}):",
                result)
  return result
