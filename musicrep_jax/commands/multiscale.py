"""``musicrep multiscale``: papers 2 and 3 end to end (train extractors, extract, aggregate)."""

import pathlib

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
                      help="extractors/, features/ and results.json go here")
  parser.add_argument("--data-dir", default=None,
                      help="shards the extractors train on (default: the embedded corpus)")
  parser.add_argument("--target-data-dir", default=None,
                      help="shards for stages 2-3 (transfer; default: --data-dir)")


def train_extractors(config, workdir: pathlib.Path, data_dir) -> dict:
  """Stage 1: ``{name: workdir}``; each finished run leaves ``summary.json`` and is kept."""
  import json

  from musicrep_jax import config_loading
  from musicrep_jax.training import trainer

  workdirs = {}
  for name, extractor_config in config.extractors.items():
    config_loading.validate(extractor_config)
    run_dir = workdir / "extractors" / name
    summary_file = run_dir / "summary.json"
    if not summary_file.exists():
      print(f"Stage 1: training extractor {name} in {run_dir}", flush=True)
      extractor_config.progress_bar = config.get("progress_bar", True)
      summary = trainer.train(extractor_config, run_dir, data_dir)
      if "stopped_by" in summary:
        raise KeyboardInterrupt(f"stopped by {summary['stopped_by']}; rerun to resume")
      summary_file.write_text(json.dumps(summary, indent=2, default=str))
    workdirs[name] = run_dir
  return workdirs


def target_shards(config, extractor_config, data_dir, target_data_dir):
  """The shards stages 2-3 read: the target dataset for transfer, else the training data."""
  from musicrep_jax.training import run_data as data
  from musicrep_jax.errors import UserError
  from musicrep_jax.data.shards import open_shards

  rate = extractor_config.data.sample_rate
  if target_data_dir:
    return open_shards(target_data_dir, expected_sample_rate=rate)
  if config.target_synthetic_seed >= 0:
    target = extractor_config.data.copy_and_resolve_references()
    target.synthetic.seed = config.target_synthetic_seed
    return open_shards(data.ensure_synthetic(target), expected_sample_rate=rate)
  if config.get("transfer", False):
    raise UserError("The transfer variant needs --target-data-dir (the dataset the classifier "
                    "is trained on), or runlocal for the embedded corpus.")
  return data.resolve_shards(extractor_config, data_dir)


def run(args, overrides) -> dict:
  import json

  from musicrep_jax.systems.multiscale import (
      classifier as aggregate_classifier,
      features as feature_extraction,
  )
  from musicrep_jax.commands.aggregate import load_multiscale_config, report
  from musicrep_jax.errors import UserError

  config = load_multiscale_config(args.config, overrides)
  if not config.get("extractors"):
    raise UserError(f"{args.config} has no `extractors`; it is not a multiscale config.")
  workdir = pathlib.Path(args.workdir).absolute()
  workdirs = train_extractors(config, workdir, args.data_dir)

  first = next(iter(config.extractors.values()))
  shards = target_shards(config, first, args.data_dir, args.target_data_dir)
  ex = config.extraction
  extractors = [feature_extraction.load_extractor(d, name, ex.checkpoint)
                for name, d in workdirs.items()]
  features_dir = workdir / "features"
  print(f"Stage 2: extracting features of {shards.data_dir} into {features_dir}", flush=True)
  meta = feature_extraction.extract_features(
      extractors, shards, features_dir, splits=tuple(ex.splits), pooling=ex.pooling,
      segment_aggregation=ex.segment_aggregation, batch_size=ex.batch_size,
      max_segments=ex.max_segments, label_field=ex.label_field,
      progress=config.get("progress_bar", True))
  print(feature_extraction.describe(meta))

  print("Stage 3: global classifier" + (" and the comparison sweep" if config.sweep else ""),
        flush=True)
  results = aggregate_classifier.run_table(features_dir, config, sweep=config.sweep,
                                           progress=config.get("progress_bar", True))
  results["extractors"] = {
      name: json.loads((d / "summary.json").read_text()).get("test", {})
      for name, d in workdirs.items()}
  results["transfer"] = str(shards.data_dir) if (args.target_data_dir or
                                                 config.target_synthetic_seed >= 0) else None
  for name, test in results["extractors"].items():
    if "roc_auc" in test:
      print(f"Local model {name} on its own training data's test split: "
            f"ROC-AUC {test['roc_auc']:.4f}")
  return report(results, workdir / "results.json")
