"""``musicrep ivector fit|eval``: paper 8's i-vector / DCNN / hybrid artist recognition."""

from musicrep_jax.commands import print_metrics

HELP = "i-vector, DCNN and hybrid artist recognition (paper 8): fit or evaluate"
DESCRIPTION = (
    "fit: train the UBM, total variability, back ends (and the artist DCNN unless "
    "config.hybrid.dcnn_workdir names one) on the train split, save them in the workdir and "
    "report validation and test accuracy. eval: load a fitted workdir and score a split. "
    "Example: musicrep ivector fit --config configs/ivector_hybrid.py:runlocal --workdir W")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  sub = parser.add_subparsers(dest="action", required=True)
  fit = sub.add_parser("fit", help="fit every model on the train split and evaluate")
  fit.add_argument("--config", required=True, help="configs/ivector_hybrid.py[:runlocal]")
  evaluate = sub.add_parser("eval", help="score a split with a fitted workdir")
  evaluate.add_argument("--split", default="test", help="default: test")
  for p in (fit, evaluate):
    p.add_argument("--workdir", required=True,
                   help="fitted models and results go here: local or gs://... (etils.epath)")
    p.add_argument("--data-dir", default=None,
                   help="prepared shards (default: the embedded corpus, rendered into a cache)")


def run(args, overrides) -> dict:
  from musicrep_jax import config_loading
  from musicrep_jax.errors import UserError
  from musicrep_jax.systems.ivector import pipeline

  if args.action == "eval":
    if overrides:
      raise UserError("`musicrep ivector eval` takes no --config overrides; it uses the "
                      "fitted workdir's config.")
    result = pipeline.evaluate(args.workdir, args.split, args.data_dir)
    print_metrics(f"{args.split} split:", result)
    return result
  config = config_loading.load_config(args.config, overrides, runner="ivector")
  results = pipeline.fit(config, args.workdir, args.data_dir)
  timing = results.pop("timing")
  for split, metrics in results.items():
    print_metrics(f"{split} split:", metrics)
  print_metrics("seconds per phase:", timing)
  test = results[config.data.test_split]
  return dict(test, split=config.data.test_split, workdir=str(args.workdir))
