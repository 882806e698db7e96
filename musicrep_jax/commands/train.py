"""``musicrep train``: run any config with the runner it names (``config.runner``)."""

from musicrep_jax.commands import add_run_args, print_report

HELP = "run a config: train (resuming from the workdir) or its paper's system"
DESCRIPTION = ("Runs a config with the runner it names (config.runner): trainer configs train or "
               "resume in the workdir; the multiscale, word2vec, ivector and paper14:grid configs "
               "run their paper's system (as `musicrep multiscale|word2vec|ivector fit|"
               "compare-paper14`). --config takes a packaged name (demo, samplecnn_mtat:runlocal; "
               "`musicrep configs` lists them) or a file, configs/X.py[:arg]; :runlocal shrinks "
               "any experiment to a minute or two on the embedded corpus. Override any value with "
               "--config.key=value, e.g. --config.batch_size=64; --print-config shows the "
               "resolved config and exits.")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  add_run_args(parser, workdir_required=False)
  parser.add_argument("--config", required=True, help="a name like demo[:runlocal], or X.py[:arg]")
  parser.add_argument("--print-config", action="store_true",
                      help="print the resolved config (after overrides) as JSON and exit")
  parser.add_argument(
      "--allow-config-change", default="", metavar="KEY[,KEY]",
      help="trainer configs: config keys (dotted; a section allows its keys) that may differ from "
           "the workdir's config.json when resuming; num_train_steps, log_every, eval_every, "
           "checkpoint_every, progress_bar, eval_batch_size, checkpoint.keep, "
           "checkpoint.async_save and mesh.* always may, any other difference is refused")
  parser.add_argument(
      "--record-resources", default=None, metavar="FILE",
      help="after a finished run, write FILE (JSON, local or gs://): its summary, this "
           "process's peak host memory (RSS) and peak device memory (where the backend reports "
           "it), the hardware and the software versions; `musicrep compare` trains through it")


def run(args, overrides) -> dict:
  from musicrep_jax import config_loading
  from musicrep_jax.errors import UserError

  config = config_loading.load_config(args.config, overrides)
  runner = config_loading.runner_of(config)
  if args.print_config:
    print(config_loading.to_json(config))
    return {"config": config.config_file, "arg": config.config_arg, "runner": runner}
  if not args.workdir:
    raise UserError("musicrep train needs --workdir (only --print-config runs without one).")
  from musicrep_jax.training import distributed

  # Before the runners' modules are imported, as the trainer has always been.
  distributed.maybe_initialize(args.coordinator, args.num_processes, args.process_id)
  from musicrep_jax import systems  # noqa: F401  (registers every runner)
  from musicrep_jax.registry import RUNNERS

  extra = {}
  if args.allow_config_change:
    if runner != config_loading.DEFAULT_RUNNER:
      raise UserError(f"--allow-config-change applies to trainer configs; {args.config} runs "
                      f"the {runner!r} runner.")
    extra["allow_config_change"] = tuple(
        k.strip().removeprefix("config.") for k in args.allow_config_change.split(",")
        if k.strip())
  result = RUNNERS.get(runner)(config, workdir=args.workdir, data_dir=args.data_dir, **extra)
  print_report(result.pop("report", ()))
  if args.record_resources and not result.get("stopped_by"):
    from musicrep_jax.training import run_record

    run_record.write_resources(args.record_resources, result)
  return result
