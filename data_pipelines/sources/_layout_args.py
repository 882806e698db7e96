"""Arguments shared by the real-dataset sources (mtat, msd, gtzan, jamendo).

Kept free of heavy imports: every source module is imported to build ``--help``.
"""

from __future__ import annotations


def add_common_arguments(parser, variants: tuple[str, ...] = ()) -> None:
  parser.add_argument("--manual-dir", required=True,
                      help="your copy of the dataset, in its own layout (see the builder's doc)")
  parser.add_argument("--sample-rate", type=int, default=22050, choices=(22050, 16000),
                      help="resample to this rate in Hz (default 22050, the papers' rate)")
  if len(variants) > 1:
    parser.add_argument("--split", default=variants[0], choices=variants,
                        help=f"split variant (default {variants[0]})")
  parser.add_argument("--allow-count-mismatch", action="store_true",
                      help="build even when the split sizes differ from the paper's (a partial "
                           "copy); the difference is listed in the report's warnings")
  parser.add_argument("--min-seconds", type=float, default=None,
                      help="skip files shorter than this (default: the split's rule)")
  parser.add_argument("--no-resume", action="store_true",
                      help="do not keep a decode cache (a killed build then starts over)")
  parser.add_argument("--workers", type=int, default=None, help="decoding threads")


def prepare(builder_cls, args, **layout_options) -> dict:
  """Runs ``dataset_layouts.prepare_layout`` with the common arguments."""
  from musicrep_jax.data_pipelines import dataset_layouts

  return dataset_layouts.prepare_layout(
      builder_cls, args.out, manual_dir=args.manual_dir, sample_rate=args.sample_rate,
      variant=getattr(args, "split", None), strict_counts=not args.allow_count_mismatch,
      min_seconds=args.min_seconds, resumable=not args.no_resume,
      layout_options={k: v for k, v in layout_options.items() if v is not None},
      overwrite=args.overwrite, workers=args.workers, tempo=getattr(args, "tempo", None))
