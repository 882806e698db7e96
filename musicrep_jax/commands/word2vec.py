"""``musicrep word2vec``: train the musical word embedding (paper 12) and save it."""

from musicrep_jax.commands import add_process_args
from musicrep_jax.errors import UserError

HELP = "train a musical word embedding (skip-gram, paper 12) and save word2vec text vectors"
DESCRIPTION = ("Trains skip-gram with negative sampling on general text plus the music text of "
               "the embedded corpus (or --data-dir shards), writes OUT/vectors.txt (word2vec "
               "text format) and OUT/summary.json, and scores the association of listening-"
               "context words with held-out tracks. Override values with --config.a.b=v.")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  parser.add_argument("--config", default="configs/word2vec.py",
                      help="configs/X.py[:arg] (default configs/word2vec.py)")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards for the music text (default: the embedded corpus)")
  add_process_args(parser)


def check_command(config, spec: str) -> None:
  """A config made for another command (``config.command``, default ``train``) is refused."""
  command = config.get("command", "train" if "skipgram" not in config else "word2vec")
  if command != "word2vec":
    raise UserError(f"{spec} is a `musicrep {command}` config, not a word2vec one (its "
                    f"config.command is {command!r}).")


def run(args, overrides) -> dict:
  import json
  import pathlib

  from musicrep_jax import config_loading
  from musicrep_jax.training import distributed
  from musicrep_jax.systems.word2vec import pipeline

  config = config_loading.load_config_file(config_loading.resolve_config_spec(args.config))
  config_loading.apply_overrides(config, overrides)
  check_command(config, args.config)
  distributed.maybe_initialize(args.coordinator, args.num_processes, args.process_id)
  out = pathlib.Path(args.out)
  summary = pipeline.train_and_save(config, out, data_dir=args.data_dir)
  print(f"Vectors: {out / 'vectors.txt'} ({summary['vocab_size']} words, {summary['dim']}-d); "
        f"{summary['words_per_s']:.0f} words/s; mood association ROC-AUC on held-out tracks "
        f"{summary.get('association_auc', float('nan')):.4f}")
  (out / "summary.json").write_text(json.dumps(summary, indent=2))
  return {k: v for k, v in summary.items() if not isinstance(v, (list, dict))}
