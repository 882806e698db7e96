"""``musicrep``: prepare shards, train, evaluate.

Examples::

  musicrep train --config configs/demo.py --workdir workdirs/demo
  musicrep eval --workdir workdirs/demo --split test
  musicrep prepare synthetic --out data/synthetic --num-clips 600
  musicrep prepare folder --audio-dir ~/music --manifest ~/music/tags.csv --out data/mine
  musicrep train --config configs/samplecnn_mtat.py --workdir workdirs/mtat --data-dir data/mtat \\
      --config.batch_size=64 --config.optimizer.learning_rate=0.02
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from musicrep_jax.errors import UserError

REPO_CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def _resolve_config_spec(spec: str) -> str:
  """``configs/demo.py[:arg]`` as given, or a bare name (``demo``) from the repo's configs/."""
  path, sep, arg = spec.partition(":")
  if not pathlib.Path(path).is_file():
    candidate = REPO_CONFIGS / (path if path.endswith(".py") else f"{path}.py")
    if not candidate.is_file():
      candidate = REPO_CONFIGS / pathlib.Path(path).name
    if candidate.is_file():
      return str(candidate) + sep + arg
  return spec


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="musicrep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  prepare = sub.add_parser("prepare", help="build pre-decoded ArrayRecord shards (offline)",
                           description="Decode audio once into int16 ArrayRecord shards (TFDS "
                           "format) that training reads through Grain.")
  prep_sub = prepare.add_subparsers(dest="source", required=True, metavar="SOURCE")
  synth = prep_sub.add_parser("synthetic", help="render the embedded synthetic music corpus")
  synth.add_argument("--out", required=True, help="output data dir (pass it as --data-dir)")
  synth.add_argument("--num-clips", type=int, default=600, help="tracks to render (default 600)")
  synth.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
  synth.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
  synth.add_argument("--clip-seconds", type=float, default=4.0, help="seconds per clip (4.0)")
  synth.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
  folder = prep_sub.add_parser(
      "folder", help="a folder of audio files plus a CSV manifest",
      description="Manifest columns: path (relative to --audio-dir, required); tags "
      "(';'-separated, optional); artist, album, track, split (optional). Without a split "
      "column, splits are assigned by track with a stable hash (80/10/10). Unreadable, empty "
      "or too-short files are skipped and listed in <out>/prepare_report.json.")
  folder.add_argument("--audio-dir", required=True)
  folder.add_argument("--manifest", required=True, help="CSV file")
  folder.add_argument("--out", required=True)
  folder.add_argument("--sample-rate", type=int, default=22050,
                      help="resample to this rate in Hz (default 22050, the papers' rate)")
  folder.add_argument("--min-seconds", type=float, default=1.0,
                      help="skip files shorter than this (default 1.0)")
  folder.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")

  train = sub.add_parser(
      "train", help="train a config (resumes from the workdir's last checkpoint)",
      description="Train or resume. Override any config value with --config.key=value, e.g. "
      "--config.batch_size=64. A config file takes an argument after a colon: "
      "configs/X.py:runlocal shrinks any experiment to a minute or two on the embedded corpus.")
  _add_run_args(train)
  train.add_argument("--config", required=True, help="configs/X.py[:arg] or a name like demo")

  evaluate = sub.add_parser("eval", help="evaluate a workdir's best checkpoint on a split",
                            description="Prints the metrics, then one JSON line.")
  _add_run_args(evaluate)
  evaluate.add_argument("--split", default="test", help="default: test")
  evaluate.add_argument("--checkpoint", choices=("best", "latest"), default="best")
  return parser


def _add_run_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("--workdir", required=True, help="checkpoints, logs and config go here")
  p.add_argument("--data-dir", default=None,
                 help="prepared shards (default: the embedded corpus, rendered into a cache)")
  group = p.add_argument_group("multi-process (see launch/)")
  group.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
  group.add_argument("--num-processes", type=int, default=None)
  group.add_argument("--process-id", type=int, default=None)


def _print_metrics(title: str, metrics: dict) -> None:
  print(title)
  for key, value in metrics.items():
    if isinstance(value, float):
      print(f"  {key:>16}: {value:.4f}")
    else:
      print(f"  {key:>16}: {value}")


def _cmd_prepare(args) -> dict:
  from data_pipelines import prepare

  if args.source == "synthetic":
    report = prepare.prepare_synthetic(args.out, num_clips=args.num_clips, seed=args.seed,
                                       sample_rate=args.sample_rate,
                                       clip_seconds=args.clip_seconds, overwrite=args.overwrite)
  else:
    report = prepare.prepare_folder(args.out, audio_dir=args.audio_dir, manifest=args.manifest,
                                    sample_rate=args.sample_rate, min_seconds=args.min_seconds,
                                    overwrite=args.overwrite)
  print(f"Prepared {args.out}: report in {pathlib.Path(args.out) / 'prepare_report.json'}")
  return report


def _cmd_train(args, overrides) -> dict:
  from musicrep_jax import config_loading, distributed

  config = config_loading.load_config(_resolve_config_spec(args.config), overrides)
  distributed.maybe_initialize(args.coordinator, args.num_processes, args.process_id)
  from musicrep_jax import trainer

  summary = trainer.train(config, args.workdir, args.data_dir)
  workdir = summary["workdir"]
  if "stopped_by" in summary:
    print(f"Stopped by {summary['stopped_by']} at step {summary['step']}; checkpoint saved in "
          f"{workdir}/checkpoints. Rerun the same command to resume.")
    return summary
  test = summary["test"]
  if test:
    _print_metrics(f"Held-out {config.data.test_split} split (best checkpoint, step "
                   f"{summary['best_step']}):", test)
  else:
    print(f"Trained {summary['step']} steps; no {config.data.test_split!r} split to evaluate.")
  print(f"Logs: {workdir}/metrics.jsonl; TensorBoard: tensorboard --logdir {workdir}/tensorboard")
  print(f"Checkpoints: {workdir}/checkpoints (latest), {workdir}/best (best by validation "
        f"{config.checkpoint.best_metric})")
  return {k: summary[k] for k in ("step", "best_step", "compilations")} | {
      k: test[k] for k in test} | {"split": config.data.test_split, "workdir": workdir}


def _cmd_eval(args) -> dict:
  from musicrep_jax import distributed

  distributed.maybe_initialize(args.coordinator, args.num_processes, args.process_id)
  from musicrep_jax import trainer

  result = trainer.evaluate_workdir(args.workdir, args.split, args.data_dir, args.checkpoint)
  _print_metrics(f"{args.split} split, {args.checkpoint} checkpoint (step {result['step']}):",
                 result)
  return result


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  overrides = [a for a in argv if a.startswith("--config.")]
  args = _parser().parse_args([a for a in argv if not a.startswith("--config.")])
  if overrides and args.command != "train":
    print(f"error: {overrides[0]} only applies to `musicrep train`.", file=sys.stderr)
    return 2
  try:
    if args.command == "prepare":
      result = _cmd_prepare(args)
    elif args.command == "train":
      result = _cmd_train(args, overrides)
    else:
      result = _cmd_eval(args)
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
