"""``musicrep transfer``: a trained representation evaluated on another dataset by the papers'
transfer protocols (papers 2, 4, 11; ``musicrep_jax.systems.transfer``)."""

HELP = "transfer evaluation: clip features of trained workdirs + a downstream classifier, N trials"
DESCRIPTION = (
    "Evaluates trained workdirs (any model family, embedding_net included) on a target dataset "
    "the way papers 2, 4 and 11 do (papers.md 3.3, 5.5, 12): clip features (every segment "
    "through the model, each level max-pooled over time, averaged over the clip's segments), "
    "then a downstream classifier trained N times with seeds seed..seed+N-1, reported as "
    "mean ± std of the test accuracy (single-label targets such as GTZAN: softmax) or ROC-AUC "
    "(multi-label: sigmoid). --protocol paper4: the last level (256-d for the paper's DCNN), "
    "10 segments, one global standardisation, a single softmax layer, SGD Nesterov lr 0.01, "
    "batch 16, patience 8, 10 trials. --protocol paper2: every level of every --workdir "
    "(repeat it for several scales), per-dimension standardisation, fc512-fc512 with dropout, "
    "Adam, 10 trials. Every protocol field is overridable, e.g. --config.classifier.trials=3 "
    "--config.levels=all --config.output=sigmoid --config.label_field=genre. The target is "
    "--target-data-dir (shards of `musicrep prepare`, e.g. gtzan, at the workdir's sample "
    "rate); for a workdir trained on the embedded corpus it defaults to that corpus rendered "
    "with another seed. Writes OUT/features/ and OUT/results.json (default "
    "OUT=WORKDIR/transfer/PROTOCOL_TARGET).")
ACCEPTS_CONFIG_OVERRIDES = True
PROTOCOL_NAMES = ("paper4", "paper2")  # systems.transfer.PROTOCOLS (kept light to import).


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", action="append", required=True,
                      help="a trained workdir (local or gs://...); repeat for several scales")
  parser.add_argument("--name", action="append", default=None,
                      help="a name per --workdir (default: the workdir's folder name)")
  parser.add_argument("--protocol", choices=PROTOCOL_NAMES, default="paper4",
                      help="the transfer protocol (default paper4)")
  parser.add_argument("--target-data-dir", default=None,
                      help="prepared shards of the target dataset (default for workdirs of the "
                           "embedded corpus: that corpus rendered with another seed)")
  parser.add_argument("--train-data-dir", default=None,
                      help="shards the workdirs were trained on, which give their models the "
                           "number of outputs (default: what the workdir recorded)")
  parser.add_argument("--out", default=None,
                      help="output folder, local or gs://... (default: "
                           "WORKDIR/transfer/PROTOCOL_TARGET)")


def run(args, overrides) -> dict:
  from musicrep_jax.systems import transfer

  config = transfer.protocol_config(args.protocol, overrides)
  return transfer.run_transfer(args.workdir, config, target_data_dir=args.target_data_dir,
                               train_data_dir=args.train_data_dir, names=args.name,
                               out=args.out)
