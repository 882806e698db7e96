"""``musicrep mfcc-vq``: paper 13's MFCC-VQ baseline (codebook, histograms, triplet metrics)."""

from musicrep_jax.commands import print_metrics

HELP = "MFCC-VQ baseline of paper 13: k-means codebook, codeword histograms, triplet metrics"
DESCRIPTION = (
    "Learns a K-codeword k-means codebook on MFCC frames of the train split, turns every test "
    "window and track into a codeword histogram and reports the metric-learning evaluation "
    "(triplet accuracy per dimension and on track triplets, Recall@K, tagging probe; dim-sim "
    "agreement when config.dimsim.path is set). Writes codebook.npy and results.json into "
    "--workdir. Example: musicrep mfcc-vq --config mfcc_vq:runlocal --workdir W")
ACCEPTS_CONFIG_OVERRIDES = True


def add_arguments(parser) -> None:
  parser.add_argument("--config", default="mfcc_vq", help="mfcc_vq[:runlocal] or a config file")
  parser.add_argument("--workdir", required=True, help="codebook.npy and results.json go here")
  parser.add_argument("--data-dir", default=None,
                      help="prepared shards (default: the embedded corpus, rendered into a cache)")


def run(args, overrides) -> dict:
  from musicrep_jax import config_loading
  from musicrep_jax.systems.mfcc_vq import pipeline

  config = config_loading.load_config(args.config, overrides, runner="mfcc_vq")
  result = pipeline.run(config, workdir=args.workdir, data_dir=args.data_dir)
  for title, values in result.pop("report"):
    print_metrics(title, values)
  print_metrics(f"{result['split']} split:", result)
  return result
