"""``musicrep prepare folder``: a folder of audio files plus a CSV manifest."""

HELP = "a folder of audio files plus a CSV manifest"
DESCRIPTION = ("Manifest columns: path (relative to --audio-dir, required); tags (';'-separated, "
               "optional); tags:GROUP (';'-separated tags of the tag group GROUP, e.g. "
               "tags:genre, optional); artist, album, track, split (optional). "
               "Without a split column, "
               "splits are assigned by track with a stable hash (80/10/10). Unreadable, empty, "
               "truncated (less audio than the header declares: one warning each) or too-short "
               "files are skipped and listed in <out>/prepare_report.json.")


def add_arguments(parser) -> None:
  parser.add_argument("--audio-dir", required=True)
  parser.add_argument("--manifest", required=True, help="CSV file")
  parser.add_argument("--sample-rate", type=int, default=22050,
                      help="resample to this rate in Hz (default 22050, the papers' rate)")
  parser.add_argument("--min-seconds", type=float, default=1.0,
                      help="skip files shorter than this (default 1.0)")
  parser.add_argument("--allow-outside-audio-dir", action="store_true",
                      help="accept manifest paths that are absolute or lead out of --audio-dir "
                           "(refused by default: a manifest must not pick files elsewhere)")
  parser.add_argument("--tag-groups", default=None, metavar="FILE",
                      help="CSV with the columns tag,group: the tag groups (similarity "
                           "dimensions 'tag:GROUP'), besides any tags:GROUP manifest columns")
  parser.add_argument("--tempo", action="store_true",
                      help="estimate each clip's tempo in BPM (the tempo_bpm field, paper 13's "
                           "tempo dimension; ~0.1 s of CPU per 30 s of audio)")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import prepare as prepare_lib

  return prepare_lib.prepare_folder(args.out, audio_dir=args.audio_dir, manifest=args.manifest,
                                    sample_rate=args.sample_rate, min_seconds=args.min_seconds,
                                    overwrite=args.overwrite,
                                    allow_outside_audio_dir=args.allow_outside_audio_dir,
                                    tag_groups=args.tag_groups, tempo=args.tempo)
