"""``musicrep prepare synthetic``: render the embedded synthetic music corpus."""

HELP = "render the embedded synthetic music corpus"
DESCRIPTION = ("Render the seeded synthetic corpus (genres, moods, instruments, tempo, artists, "
               "users) into shards; interactions and user factors are saved beside them.")


def add_arguments(parser) -> None:
  parser.add_argument("--num-clips", type=int, default=600, help="tracks to render (default 600)")
  parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
  parser.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
  parser.add_argument("--clip-seconds", type=float, default=4.0, help="seconds per clip (4.0)")


def prepare(args) -> dict:
  from musicrep_jax.data_pipelines import prepare as prepare_lib

  return prepare_lib.prepare_synthetic(args.out, num_clips=args.num_clips, seed=args.seed,
                                       sample_rate=args.sample_rate,
                                       clip_seconds=args.clip_seconds, overwrite=args.overwrite)
