"""``musicrep train``: train or resume a config."""

from musicrep_jax.commands import add_run_args, print_metrics

HELP = "train a config (resumes from the workdir's last checkpoint)"
DESCRIPTION = ("Train or resume. Override any config value with --config.key=value, e.g. "
               "--config.batch_size=64. A config file takes an argument after a colon: "
               "configs/X.py:runlocal shrinks any experiment to a minute or two on the embedded "
               "corpus.")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  add_run_args(parser)
  parser.add_argument("--config", required=True, help="configs/X.py[:arg] or a name like demo")


def run(args, overrides) -> dict:
  from musicrep_jax import config_loading
  from musicrep_jax.training import distributed

  config = config_loading.load_config(config_loading.resolve_config_spec(args.config), overrides)
  distributed.maybe_initialize(args.coordinator, args.num_processes, args.process_id)
  from musicrep_jax.training import trainer

  summary = trainer.train(config, args.workdir, args.data_dir)
  workdir = summary["workdir"]
  if "stopped_by" in summary:
    print(f"Stopped by {summary['stopped_by']} at step {summary['step']}; checkpoint saved in "
          f"{workdir}/checkpoints. Rerun the same command to resume.")
    return summary
  test = summary["test"]
  if test:
    print_metrics(f"Held-out {config.data.test_split} split (best checkpoint, step "
                  f"{summary['best_step']}):", test)
  else:
    print(f"Trained {summary['step']} steps; no {config.data.test_split!r} split to evaluate.")
  print(f"Logs: {workdir}/metrics.jsonl; TensorBoard: tensorboard --logdir {workdir}/tensorboard")
  print(f"Checkpoints: {workdir}/checkpoints (latest), {workdir}/best (best by validation "
        f"{config.checkpoint.best_metric})")
  return {k: summary[k] for k in ("step", "best_step", "compilations")} | {
      k: test[k] for k in test} | {"split": config.data.test_split, "workdir": workdir}
