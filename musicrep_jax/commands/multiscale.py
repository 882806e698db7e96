"""``musicrep multiscale``: papers 2 and 3 end to end (train extractors, extract, aggregate);
the stages are ``musicrep_jax.systems.multiscale.pipeline``."""

HELP = "papers 2/3 end to end: train extractors at several scales, extract, aggregate"
DESCRIPTION = (
    "Multi-level, multi-scale feature aggregation (papers.md 3, 4) from one config, e.g. "
    "configs/multiscale_mtat.py[:runlocal|sample|transfer, comma-separated]. Stage 1 trains "
    "every config.extractors.NAME into WORKDIR/extractors/NAME (finished ones are kept; "
    "interrupted ones resume); stage 2 writes WORKDIR/features (as `musicrep extract-features`); "
    "stage 3 trains the global classifier and, with config.sweep, every single-level "
    "single-scale classifier (as `musicrep aggregate --sweep`) into WORKDIR/results.json. "
    "Transfer: --target-data-dir (or the config's target_synthetic_seed) holds the dataset "
    "stages 2-3 use; the extractors train on --data-dir.")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True, help="configs/multiscale_mtat.py[:ARGS]")
  parser.add_argument("--workdir", required=True,
                      help="extractors/, features/ and results.json go here: local or "
                           "gs://... (any etils.epath URI)")
  parser.add_argument("--data-dir", default=None,
                      help="shards the extractors train on (default: the embedded corpus)")
  parser.add_argument("--target-data-dir", default=None,
                      help="shards for stages 2-3 (transfer; default: --data-dir)")


def run(args, overrides) -> dict:
  from musicrep_jax.systems.multiscale import pipeline

  config = pipeline.load_config(args.config, overrides)
  return pipeline.run_multiscale(config, args.workdir, args.data_dir, args.target_data_dir)
