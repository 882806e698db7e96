"""``musicrep prepare gtzan``: GTZAN with the fault-filtered split."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "GTZAN genres (fault-filtered split, shipped)"
DESCRIPTION = ("--manual-dir holds the genre folders (genres/ with .au, or the Kaggle "
               "genres_original/ with .wav). Split 443/197/290 (Kereliuk et al.), checked "
               "before decoding.")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import gtzan_builder

  return _layout_args.prepare(gtzan_builder.MusicrepGtzan, args)
