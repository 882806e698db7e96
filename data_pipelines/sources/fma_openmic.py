"""``musicrep prepare fma_openmic``: FMA genres with OpenMIC-2018 instrument tags (paper 10)."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = "FMA-large genres of the OpenMIC-2018 tracks + instrument tags (paper 10's attributes)"
DESCRIPTION = ("--manual-dir holds fma_metadata/{tracks,genres}.csv, fma_large/<ddd>/<id>.mp3 and "
               "openmic-2018/{openmic-2018.npz,class-map.json}. Split 80/10/10 by a hash of the "
               "track id; 19,466 tracks in all checked before decoding (use "
               "--allow-count-mismatch for a partial copy). Train with zero_shot:fma.")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import fma_openmic_builder

  return _layout_args.prepare(fma_openmic_builder.MusicrepFmaOpenmic, args)
