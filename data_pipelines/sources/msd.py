"""``musicrep prepare msd``: Million Song Dataset previews with 50 Last.fm tags."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "Million Song Dataset 7digital previews + Last.fm tags (Lee's split)"
DESCRIPTION = ("--manual-dir holds track_metadata.db, lastfm_tags.db, Lee's filtered_list_train.cP "
               "and filtered_list_test.cP, and the previews as <d0>/<d1>/<7digital id>.clip.mp3. "
               "Split 201,680/11,774/28,435, checked before decoding (use "
               "--allow-count-mismatch for a partial copy). Writes the tag groups genre/mood/"
               "instrument/era (28/12/5/5, splits/msd_50_tag_groups.csv) and each clip's "
               "estimated tempo (tempo_bpm; --no-tempo skips it).")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)
  parser.add_argument("--tag-groups", default=None, metavar="FILE",
                      help="CSV with the columns tag,group grouping the 50 tags (default: the "
                           "shipped reconstruction of papers 13-14's 28/12/5/5 grouping)")
  parser.add_argument("--no-tempo", dest="tempo", action="store_false", default=None,
                      help="do not estimate each clip's tempo (saves ~0.1 s of CPU per clip)")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import msd_builder

  return _layout_args.prepare(msd_builder.MusicrepMsd, args, tag_groups=args.tag_groups)
