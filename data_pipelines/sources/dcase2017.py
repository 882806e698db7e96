"""``musicrep prepare dcase2017``: DCASE 2017 Task 1 acoustic scenes from a local copy."""

HELP = ("DCASE 2017 Task 1 acoustic scenes (TUT 2017 development) from a local copy (paper 6, "
        "task1; the journal code's Task 4 is dcase2017_task4)")
DESCRIPTION = ("Reads audio/, meta.txt and evaluation_setup/fold<k>_{train,evaluate}.txt from "
               "--manual-dir. Splits: test = fold<k>_evaluate.txt; train = fold<k>_train.txt "
               "minus a validation of whole recording locations (--validation-percent, by a "
               "stable hash). Audio is downmixed to mono. Listed but missing, empty or corrupt "
               "files are skipped and listed in <out>/prepare_report.json.")


def add_arguments(parser) -> None:
  parser.add_argument("--manual-dir", required=True,
                      help="the unpacked TUT-acoustic-scenes-2017-development folder")
  parser.add_argument("--fold", type=int, choices=(1, 2, 3, 4), default=1,
                      help="cross-validation fold (default 1)")
  parser.add_argument("--validation-percent", type=int, default=10,
                      help="percent of the train locations held out for validation (default 10)")
  parser.add_argument("--sample-rate", type=int, default=22050,
                      help="resample to this rate in Hz (default 22050, paper 6)")
  parser.add_argument("--min-seconds", type=float, default=1.0,
                      help="skip files shorter than this (default 1.0)")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import dcase2017_builder

  return dcase2017_builder.prepare_dcase2017(
      args.out, manual_dir=args.manual_dir, fold=args.fold,
      validation_percent=args.validation_percent, sample_rate=args.sample_rate,
      min_seconds=args.min_seconds, overwrite=args.overwrite)
