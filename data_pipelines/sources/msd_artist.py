"""``musicrep prepare msd_artist``: MSD previews labelled by artist (papers 4, 8, 9)."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "MSD 7digital previews labelled by artist (Park et al.'s artist split, papers 4, 8, 9)"
DESCRIPTION = ("--manual-dir holds msd-artist-list.pkl (jiyoungpark527/msd-artist-split), the "
               "previews as <d0>/<d1>/<7digital id>.clip.mp3 and optionally MSD's "
               "track_metadata.db (track ids and albums). The first --num-artists x 20 lines "
               "are the artist subset; per artist, songs 1-15 train, 16-18 validation, 19-20 "
               "test (15/3/2 per artist: 263,865/52,773/35,182 for all 17,591), checked before "
               "decoding (--allow-count-mismatch for a partial copy). Label: the artist field.")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)
  parser.add_argument("--num-artists", type=int, default=None,
                      help="the first N artists of the list (default all 17,591; the papers use "
                           "500 to 10,000)")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import msd_artist_builder

  return _layout_args.prepare(msd_artist_builder.MusicrepMsdArtist, args,
                              num_artists=args.num_artists)
