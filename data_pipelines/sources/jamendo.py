"""``musicrep prepare jamendo``: MTG-Jamendo, top-50 tags."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "MTG-Jamendo top-50 tags (the dataset's split-0..4 tsvs)"
DESCRIPTION = ("--manual-dir holds a checkout of MTG/mtg-jamendo-dataset (data/splits/split-K/"
               "autotagging_top50tags-*.tsv) and the audio folders 00-99 (at the root or under "
               "audio/).")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser, tuple(f"split{k}" for k in range(5)))
  parser.add_argument("--low-quality", action="store_true",
                      help="read the .low.mp3 files of the audio-low download")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import jamendo_builder

  return _layout_args.prepare(jamendo_builder.MusicrepJamendo, args,
                              low_quality=args.low_quality or None)
