"""``musicrep prepare speech_commands``: Google Speech Commands from a local copy."""

HELP = "Speech Commands v0.01/v0.02 from a local copy (paper 6, keyword spotting)"
DESCRIPTION = ("Reads <word>/*.wav, validation_list.txt and testing_list.txt from --manual-dir "
               "(the folder the archive unpacked into). --classes all: one class per word "
               "folder, background noise excluded (paper 6's journal protocol); --classes 12: "
               "ten commands + _unknown_ + _silence_ (1-s chunks of _background_noise_). Listed "
               "but missing, empty or corrupt files are skipped and listed in "
               "<out>/prepare_report.json. A v0.02 copy is checked against the official split "
               "84,843/9,981/11,005 before decoding (--allow-count-mismatch for a partial copy).")


def add_arguments(parser) -> None:
  parser.add_argument("--manual-dir", required=True, help="the unpacked Speech Commands folder")
  parser.add_argument("--classes", choices=("all", "12"), default="all",
                      help="class set (default all)")
  parser.add_argument("--sample-rate", type=int, default=22050,
                      help="resample to this rate in Hz (default 22050, paper 6)")
  parser.add_argument("--min-seconds", type=float, default=0.0,
                      help="skip files shorter than this (default 0: keep every utterance)")
  parser.add_argument("--allow-count-mismatch", action="store_true",
                      help="build even when the split sizes differ from v0.02's official "
                           "84,843/9,981/11,005 (a partial copy); listed in the report's warnings")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import speech_commands_builder

  return speech_commands_builder.prepare_speech_commands(
      args.out, manual_dir=args.manual_dir, classes=args.classes, sample_rate=args.sample_rate,
      min_seconds=args.min_seconds, overwrite=args.overwrite,
      strict_counts=not args.allow_count_mismatch)
