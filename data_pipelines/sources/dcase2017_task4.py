"""``musicrep prepare dcase2017_task4``: DCASE 2017 Task 4 weak event labels from a local copy."""

from musicrep_jax.data_pipelines.sources import _layout_args

HELP = ("DCASE 2017 Task 4, 17 weakly labelled sound events (paper 6, journal code) from a "
        "local copy")
DESCRIPTION = ("--manual-dir holds groundtruth_weak_label_{training,testing,evaluation}_set.csv "
               "(tab-separated, as published; also under metadata/ or raw/) and the audio "
               "folders unbalanced_train_segments_{training,testing}_set_audio_formatted_and_"
               "segmented_downloads/ and evaluation_set_formatted_audio_segments/ (files "
               "Y<file>). Split as the journal code: training + testing pooled, 10% per class "
               "held out for validation (seed 123), evaluation set as test: 46,042/5,618/1,103, "
               "checked before decoding (use --allow-count-mismatch for a partial copy). Audio "
               "is downmixed to mono.")


def add_arguments(parser) -> None:
  _layout_args.add_common_arguments(parser)


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import dcase2017_task4_builder

  return _layout_args.prepare(dcase2017_task4_builder.MusicrepDcase2017Task4, args)
