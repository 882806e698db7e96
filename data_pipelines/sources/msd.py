"""``musicrep prepare msd``: Million Song Dataset previews with 50 Last.fm tags."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "Million Song Dataset 7digital previews + Last.fm tags (Lee's split)"
DESCRIPTION = ("--manual-dir holds track_metadata.db, lastfm_tags.db, Lee's filtered_list_train.cP "
               "and filtered_list_test.cP, and the previews as <d0>/<d1>/<7digital id>.clip.mp3. "
               "Split 201,680/11,774/28,435, checked before decoding (use "
               "--allow-count-mismatch for a partial copy).")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import msd_builder

  return _layout_args.prepare(msd_builder.MusicrepMsd, args)
