"""Paper 13 (ICASSP 2020): the MFCC-VQ baseline (K = 1024 codebook, histograms); papers.md 14.5.

``musicrep mfcc-vq --config mfcc_vq[:runlocal] --workdir W [--data-dir D]`` (runner ``mfcc_vq``,
``musicrep_jax/systems/mfcc_vq/pipeline.py``): 13 MFCCs + deltas + delta-deltas, a codebook of
``codebook.size`` codewords learned by k-means on ``codebook.frames`` random frames of the train
split, each test window / track a normalised histogram of codewords, scored with the same
triplets and metrics as the metric-learning models (``evaluators.retrieval``: per-dimension and
track triplet accuracy, Recall@K, tagging probe), raw histograms with the Euclidean distance.
``dimsim.path`` (a local copy of the dim-sim CSV, Zenodo 3889149, CC BY-NC) and
``dimsim.audio_dir`` (the MSD audio of its tracks, files named TRACK_ID.ext) add the user-study
agreement; ``dimsim.min_consensus`` 0.9 turns the raw release into the clean 879 triplets.

Paper scale: MSD (``--data-dir`` with genre / mood / instrument tag groups and ``tempo_bpm``),
3-s windows, 10 per 30-s preview from its start, 40,000 triplets per dimension and 40,000 track
triplets. ``:runlocal``: the embedded corpus (tempo classes stand in for BPM), 64 codewords on
20,000 frames, 1-s windows. MFCC framing, mel bands, CMVN and k-means settings are [unknown] in
the paper: see the runner's docstring.
"""

import ml_collections

from musicrep_jax.configs.common import data_config, use_embedded_corpus
from musicrep_jax.configs.metric_learning import PAPER13_DIMENSIONS, TAG_DIMENSIONS

VARIANTS = ("runlocal",)


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.runner = "mfcc_vq"
  c.seed = 0
  c.data = data_config("msd", 22050, segments_per_clip=10, eval_placement="start")
  # Evaluation windows (paper 13: song embedding = mean over non-overlapping 3-s windows).
  c.segment_seconds = 3.0
  # 13 MFCCs + deltas + delta-deltas (paper); 23 ms / 50 % framing of the papers' mel front end.
  c.mfcc = dict(n_mfcc=13, n_mels=40, n_fft=512, win_length=512, hop_length=256, fmin=0.0,
                fmax=None, delta_order=2, delta_width=9, cmvn=False, center=True,
                pad_mode="constant")
  # K-means: K codewords on `frames` random train frames; `chunk` rows per distance block.
  c.codebook = dict(size=1024, frames=2_500_000, iterations=20, chunk=65536)
  c.clips_per_batch = 16   # clips per MFCC forward pass
  c.clips_per_chunk = 512  # clips whose MFCCs are in memory at once
  # The metric-learning task's evaluation settings (MetricLearningTask fields).
  c.task = dict(labels=PAPER13_DIMENSIONS, eval_labels=PAPER13_DIMENSIONS, eval_triplets=40_000,
                retrieval_ks=(1, 2, 4, 8), tempo_tolerance=5.0)
  # The dim-sim user triplets: a local CSV and the audio of its tracks ("" = not evaluated).
  c.dimsim = dict(path="", audio_dir="", min_consensus=0.0)
  if arg == "runlocal":
    use_embedded_corpus(c.data)
    c.segment_seconds = 1.0
    c.mfcc.update(n_fft=512, win_length=400, hop_length=160)
    c.codebook.update(size=64, frames=20_000, iterations=10)
    c.task.update(labels=TAG_DIMENSIONS, eval_labels=TAG_DIMENSIONS, eval_triplets=2000)
  elif arg:
    raise ValueError(f"configs/mfcc_vq.py knows the argument 'runlocal', not {arg!r}")
  return c
