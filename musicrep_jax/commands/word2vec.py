"""``musicrep word2vec``: train the musical word embedding (paper 12) and save it; an alias of
``musicrep train --config word2vec --workdir OUT`` (the ``word2vec`` runner)."""

from musicrep_jax.commands import add_process_args, print_report

HELP = "train a musical word embedding (skip-gram, paper 12) and save word2vec text vectors"
DESCRIPTION = ("Trains skip-gram with negative sampling on general text plus the music text of "
               "the embedded corpus (or --data-dir shards), writes OUT/vectors.txt (word2vec "
               "text format) and OUT/summary.json, and scores the association of listening-"
               "context words with held-out tracks. Override values with --config.a.b=v. The "
               "same as `musicrep train --config word2vec --workdir OUT`.")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  parser.add_argument("--config", default="word2vec",
                      help="a word2vec config: name[:arg] or X.py[:arg] (default word2vec)")
  parser.add_argument("--out", required=True,
                      help="output directory: local or gs://... (any etils.epath URI)")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards for the music text (default: the embedded corpus)")
  add_process_args(parser)


def run(args, overrides) -> dict:
  from musicrep_jax import config_loading

  config = config_loading.load_config(args.config, overrides, runner="word2vec")
  from musicrep_jax.systems.word2vec import pipeline
  from musicrep_jax.training import distributed

  distributed.maybe_initialize(args.coordinator, args.num_processes, args.process_id)
  result = pipeline.run(config, workdir=args.out, data_dir=args.data_dir)
  print_report(result.pop("report", ()))
  return result
