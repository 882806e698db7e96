"""``musicrep embed``: embeddings and tag scores of audio files with a trained workdir's model."""

import pathlib

HELP = "embeddings and tag scores of audio files or folders (streamed, any length)"
DESCRIPTION = (
    "Decodes each file in blocks, resamples it explicitly to the model's sample rate (its own "
    "rate is recorded in the index; --no-resample refuses such files instead), tiles it into "
    "model inputs, batches segments across files and writes embeddings.npy, the scores where "
    "the model has a head (tag_scores.npy, ...; clip means), index.csv / index.jsonl (one row "
    "per file; skipped files (unsupported format, truncated audio) and failures with their "
    "reason, also printed) and embed_info.json into --out. Memory does not grow with track "
    "length. Exits 2 when no file was embedded. Ends with one JSON line.")


def add_arguments(parser) -> None:
  parser.add_argument("inputs", nargs="+", help="local audio files and/or folders (searched "
                      "recursively; copy remote audio to this host first)")
  parser.add_argument("--workdir", required=True, help="a training workdir (config.json + "
                      "checkpoints), local or gs://...")
  parser.add_argument("--out", required=True, help="folder for the outputs: local or gs://... "
                      "(any etils.epath URI; written locally, copied up at the end)")
  parser.add_argument("--data-dir", default=None,
                      help="the prepared shards the model was trained on (for the tag names); "
                           "by default the data the run recorded (run_info.json)")
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
  from musicrep_jax import storage
  from musicrep_jax.serving import embed
  from musicrep_jax.errors import UserError
  from musicrep_jax.serving.inference import load_trained

  if args.batch_size < 1 or args.block_seconds <= 0 or (args.hop_seconds or 1) <= 0:
    raise UserError("--batch-size, --block-seconds and --hop-seconds must be positive.")
  paths = embed.list_audio_files(args.inputs)
  trained = load_trained(args.workdir, args.data_dir, args.checkpoint)
  forward, spec = embed.make_forward(trained, args.batch_size)
  hop = (max(1, round(args.hop_seconds * trained.sample_rate)) if args.hop_seconds
         else trained.input_length)
  info = {"workdir": str(trained.workdir), "step": trained.step,
          "model": trained.config.model.name, "sample_rate": trained.sample_rate,
          "input_length": trained.input_length, "hop": hop, "embedding": spec.embedding,
          "subspaces": list(spec.subspaces)}
  summary = embed.embed_files(
      paths, forward, sample_rate=trained.sample_rate, input_length=trained.input_length,
      out_dir=args.out, batch_size=args.batch_size, hop=hop,
      allow_resample=not args.no_resample, per_segment=args.per_segment,
      block_seconds=args.block_seconds, scores_name=spec.scores, output_names=spec.score_names,
      info=info, progress=not args.no_progress)
  _report_not_embedded(storage.as_path(args.out) / "index.csv" if storage.is_remote(args.out)
                       else pathlib.Path(args.out) / "index.csv")
  if summary["ok"] == 0:
    raise UserError(f"None of the {summary['files']} files was embedded ({summary['skipped']} "
                    f"skipped, {summary['failed']} failed; reasons in {args.out}/index.csv).")
  print(f"Embedded {summary['ok']} of {summary['files']} files ({summary['segments']} segments, "
        f"{summary['audio_s']:.0f} s of audio, {summary['realtime_x']:.0f}x real time) into "
        f"{summary['out']}; {summary['skipped']} skipped, {summary['failed']} failed (see "
        f"index.csv).")
  return summary


def _report_not_embedded(index_csv, limit: int = 10) -> None:
  """One stderr line per skipped or failed file (the first ``limit``) with its reason."""
  import csv
  import io
  import sys

  text = index_csv.read_bytes().decode()  # Local or remote; newlines kept as csv wants them.
  rows = [r for r in csv.DictReader(io.StringIO(text, newline="")) if r["status"] != "ok"]
  for row in rows[:limit]:
    status = "failed" if row["status"] == "error" else row["status"]  # One "error:" line.
    print(f"{status} {row['path']}: {row['reason']}", file=sys.stderr)
  if len(rows) > limit:
    print(f"... and {len(rows) - limit} more (see {index_csv})", file=sys.stderr)
