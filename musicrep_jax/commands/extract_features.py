"""``musicrep extract-features``: stage 2 of papers 2 and 3 (multi-level, multi-scale features;
``musicrep_jax.systems.multiscale.pipeline.extract``)."""

HELP = "extract multi-level, multi-scale clip features from trained workdirs (papers 2, 3)"
DESCRIPTION = (
    "Stage 2 of multi-level, multi-scale feature aggregation (papers.md 3.1, 4.1). Each --workdir "
    "is a trained model (one scale); every conv layer / block of it is a level (of an "
    "embedding_net, its backbone's: papers 4, 9, 13, 14). Each clip of each "
    "split is cut into non-overlapping segments of the model's input length, every level is "
    "max-pooled over time per segment and averaged over the clip's segments. Writes "
    "OUT/{split}_features.npy [clips, dims], {split}_labels.npy, {split}_clip_ids.npy and "
    "OUT/features.json (extractors, levels and their column ranges). For transfer, pass the "
    "target dataset as --data-dir (same sample rate as the extractors) and, when its tags differ "
    "from the training data's, the training data as --train-data-dir. Then run "
    "`musicrep aggregate --features OUT`.")


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", action="append", required=True,
                      help="a trained extractor's workdir; repeat for several scales")
  parser.add_argument("--name", action="append", default=None,
                      help="a name per --workdir (default: the workdir's folder name)")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards to extract (default: the first workdir's training "
                           "data, the embedded corpus for synthetic configs)")
  parser.add_argument("--train-data-dir", default=None,
                      help="shards the extractors were trained on, which give their models "
                           "the number of outputs (default: --data-dir; for synthetic configs "
                           "without --data-dir, the embedded corpus)")
  parser.add_argument("--out", required=True,
                      help="output folder for the features: local or gs://... "
                      "(written locally, copied up at the end)")
  parser.add_argument("--splits", default="train,validation,test",
                      help="comma-separated splits (default: train,validation,test)")
  parser.add_argument("--pooling", choices=("max", "mean"), default="max",
                      help="pooling of each level over time per segment (paper: max)")
  parser.add_argument("--segment-aggregation", choices=("mean", "max"), default="mean",
                      help="aggregation of a clip's segments (paper: mean)")
  parser.add_argument("--batch-size", type=int, default=64, help="segments per jitted batch")
  parser.add_argument("--max-segments", type=int, default=0,
                      help="cap on segments per clip (0: the whole clip)")
  parser.add_argument("--label-field", default="tags", help="record field saved as labels")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.systems.multiscale import pipeline

  return pipeline.extract(
      args.workdir, args.out, names=args.name, data_dir=args.data_dir,
      train_data_dir=args.train_data_dir, which=args.checkpoint,
      splits=[s for s in args.splits.split(",") if s], pooling=args.pooling,
      segment_aggregation=args.segment_aggregation, batch_size=args.batch_size,
      max_segments=args.max_segments, label_field=args.label_field)
