"""``musicrep dimsim``: paper 13's dim-sim user-triplet agreement of a trained workdir."""

from musicrep_jax.commands import print_metrics

HELP = "dim-sim human-judgement triplet agreement of a trained workdir (papers 13, 14)"
DESCRIPTION = (
    "Reads the dim-sim CSV release (a local copy of Zenodo 3889149, CC BY-NC), cuts its 3-s "
    "clips from the MSD audio under --audio-dir (files named TRACK_ID.ext), embeds each clip "
    "with the workdir's model (mean of its input windows) and reports the fraction of triplets "
    "where the clip most raters chose is closer to the anchor: in the complete space and, for "
    "a disentangled model, in each dimension's subspace. Reads the workdir only. Ends with one "
    "JSON line. Example: musicrep dimsim --workdir W --csv dim_sim.csv --audio-dir msd_audio")


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="a training workdir (config.json + "
                      "checkpoints)")
  parser.add_argument("--csv", required=True, help="the dim-sim CSV release")
  parser.add_argument("--audio-dir", required=True,
                      help="folder holding the MSD audio of the dim-sim tracks (searched "
                           "recursively, file stem = track id)")
  parser.add_argument("--min-consensus", type=float, default=0.9,
                      help="keep triplets whose majority / total votes is at least this (0.9: "
                           "the clean 879 triplets; 0: every triplet without a tie)")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best")
  parser.add_argument("--data-dir", default=None,
                      help="the prepared shards the model was trained on (default: the data "
                           "the run recorded)")
  parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")


def run(args, overrides) -> dict:
  del overrides
  from musicrep_jax.errors import UserError
  from musicrep_jax.serving import dimsim_eval

  if args.batch_size < 1:
    raise UserError("--batch-size must be positive.")
  result = dimsim_eval.evaluate(args.workdir, args.csv, args.audio_dir,
                                min_consensus=args.min_consensus, checkpoint=args.checkpoint,
                                data_dir=args.data_dir, batch_size=args.batch_size)
  print_metrics("dim-sim agreement:", result)
  return result
