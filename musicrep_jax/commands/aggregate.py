"""``musicrep aggregate``: stage 3 of papers 2 and 3 (the global classifier on clip features;
``musicrep_jax.systems.multiscale.pipeline.aggregate``)."""

HELP = "train the global classifier on extracted multi-level, multi-scale features (papers 2, 3)"
DESCRIPTION = (
    "Stage 3 of multi-level, multi-scale feature aggregation (papers.md 3.1, 4.1): select levels "
    "and scales of `musicrep extract-features` output, standardise with the training split, train "
    "the fully-connected classifier (early stopping on validation loss) and report clip-level "
    "ROC-AUC / PR-AUC on the test split. --sweep also trains every single-level single-scale "
    "classifier, each scale's multi-level one and the multi-scale ones, and prints the table. "
    "Classifier settings come from --config (default configs/multiscale_mtat.py: its "
    "`classifier` and `selection` sections), e.g. --config.classifier.hidden_units=(256,).")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  parser.add_argument("--features", required=True,
                      help="folder written by extract-features (local or gs://...)")
  parser.add_argument("--config", default="multiscale_mtat",
                      help="config with `classifier` and `selection` (default: multiscale_mtat)")
  parser.add_argument("--scales", default=None,
                      help="extractor names or indices, comma-separated, or 'all' "
                           "(default: config.selection.scales)")
  parser.add_argument("--levels", default=None,
                      help="level indices per extractor, comma-separated (e.g. -3,-2,-1 for the "
                           "top three), or 'all' (default: config.selection.levels)")
  parser.add_argument("--sweep", action="store_true",
                      help="also train every single-level single-scale classifier (the table)")
  parser.add_argument("--out", default=None,
                      help="results JSON, local or gs://... (default: FEATURES/results.json)")


def run(args, overrides) -> dict:
  from musicrep_jax.systems.multiscale import pipeline

  config = pipeline.load_config(args.config, overrides)
  return pipeline.aggregate(args.features, config, scales=args.scales, levels=args.levels,
                            sweep=args.sweep, out=args.out)
