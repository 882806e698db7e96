"""``musicrep prepare mtat``: MagnaTagATune from your copy (annotations_final.csv + mp3 folders)."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "MagnaTagATune (annotations_final.csv + mp3 folders 0-f)"
DESCRIPTION = ("Splits: lee (default; top-50 tags, >= 1 tag, >= 29.1 s, folders 0-b/c/d-f: "
               "15,244/1,529/4,332) or full (every clip: 18,706/1,825/5,329). The counts are "
               "checked before decoding; the three broken mp3s are reported as skipped.")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser, ("lee", "full"))
  parser.add_argument("--split-lists", default=None,
                      help="folder with Lee's {train,valid,test}_list_pub.cP to use instead of "
                           "deriving the lee split")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import mtat_builder

  return _layout_args.prepare(mtat_builder.MusicrepMtat, args, lists=args.split_lists)
