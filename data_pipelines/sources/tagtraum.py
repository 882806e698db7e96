"""``musicrep prepare tagtraum``: Tagtraum CD2C genres of MSD previews (paper 2)."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "Tagtraum CD2C genre annotations of MSD previews (Lee's split, paper 2)"
DESCRIPTION = ("--manual-dir holds msd_tagtraum_cd2c.cls (tagtraum.com), Lee's train_list.cP and "
               "test_list.cP (music_dataset_split/TAGTRAUM_split), MSD's track_metadata.db and "
               "the previews as <d0>/<d1>/<7digital id>.clip.mp3. Split: the first 141,372 ids "
               "of train_list.cP train, the rest validation, test_list.cP (37,817) test; checked "
               "before decoding (--allow-count-mismatch for a partial copy). Labels: one-hot "
               "genres (single-label).")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import tagtraum_builder

  return _layout_args.prepare(tagtraum_builder.MusicrepTagtraum, args)
