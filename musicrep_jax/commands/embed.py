"""``musicrep embed``: embeddings and tag scores of audio files with a trained workdir's model."""

HELP = "embeddings and tag scores of audio files or folders (streamed, any length)"
DESCRIPTION = (
    "Decodes each file in blocks, resamples it explicitly to the model's sample rate (its own "
    "rate is recorded in the index; --no-resample refuses such files instead), tiles it into "
    "model inputs, batches segments across files and writes embeddings.npy, tag_scores.npy "
    "(clip means), index.csv / index.jsonl (one row per file, failures with their reason) and "
    "embed_info.json into --out. Memory does not grow with track length. Ends with one JSON "
    "line.")


def add_arguments(parser) -> None:
  parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched "
                      "recursively)")
  parser.add_argument("--workdir", required=True, help="a training workdir (config.json + "
                      "checkpoints)")
  parser.add_argument("--out", required=True, help="folder for the outputs")
  parser.add_argument("--data-dir", default=None,
                      help="the prepared shards the model was trained on (for the tag names); "
                           "not needed for the embedded synthetic corpus")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")
  parser.add_argument("--batch-size", type=int, default=32, help="segments per forward pass")
  parser.add_argument("--hop-seconds", type=float, default=None,
                      help="seconds between segment starts (default: one segment, no overlap)")
  parser.add_argument("--no-resample", action="store_true",
                      help="refuse files not at the model's sample rate instead of resampling")
  parser.add_argument("--per-segment", action="store_true",
                      help="also write every segment's embedding and scores")
  parser.add_argument("--block-seconds", type=float, default=10.0,
                      help="seconds of audio decoded at a time (memory vs. overhead)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.serving import embed
  from musicrep_jax.errors import UserError
  from musicrep_jax.serving.inference import load_trained

  if args.batch_size < 1 or args.block_seconds <= 0 or (args.hop_seconds or 1) <= 0:
    raise UserError("--batch-size, --block-seconds and --hop-seconds must be positive.")
  paths = embed.list_audio_files(args.inputs)
  trained = load_trained(args.workdir, args.data_dir, args.checkpoint)
  forward, scores_name = embed.make_forward(trained, args.batch_size)
  hop = (max(1, round(args.hop_seconds * trained.sample_rate)) if args.hop_seconds
         else trained.input_length)
  info = {"workdir": str(trained.workdir), "step": trained.step,
          "model": trained.config.model.name, "sample_rate": trained.sample_rate,
          "input_length": trained.input_length, "hop": hop}
  summary = embed.embed_files(
      paths, forward, sample_rate=trained.sample_rate, input_length=trained.input_length,
      out_dir=args.out, batch_size=args.batch_size, hop=hop,
      allow_resample=not args.no_resample, per_segment=args.per_segment,
      block_seconds=args.block_seconds, scores_name=scores_name,
      output_names=trained.tag_names if scores_name == "tag_scores" else (), info=info,
      progress=not args.no_progress)
  print(f"Embedded {summary['ok']} of {summary['files']} files ({summary['segments']} segments, "
        f"{summary['audio_s']:.0f} s of audio, {summary['realtime_x']:.0f}x real time) into "
        f"{summary['out']}; {summary['failed']} failed (see index.csv).")
  return summary
