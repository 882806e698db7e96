"""Paper 13 (ICASSP 2020): disentangled metric learning, conditional similarity nets; papers.md 14.

Disentangled multidimensional metric learning with conditional similarity networks.
``--config csn_disentangled[:ARGS]`` with ARGS from ``fixed|learned`` (the masks:
fixed disjoint 4 x 64, the paper's choice, or CSN's learned masks with an L1 penalty),
``plain|disentangled`` (``plain`` = the paper's "Category" baseline: the same triplets on the
whole embedding), ``notrack|track`` (track regularisation, lambda 0.5) and ``runlocal``.

Per batch, one P x K block per dimension (genre, mood, instrument, tempo: tags shared = similar;
the embedded corpus has tempo classes, where the paper used madmom BPM within 5), the triplet
hinge (margin 0.1, Euclidean on L2-normalised vectors) on each block's subspace ``n(f o m_s)``;
with ``track``, a fifth block of track triplets (two segments of one song, <= 50 % overlap) on the
whole embedding, weighted 0.5. Triplets: every valid triplet of each P x K block
(``mining="all"``), [choice]: the paper draws random triplets and describes no mining (papers.md
14.4). Adam 0.01 as the paper; its "/5 after a 4-epoch plateau, at most 5 times" is approximated
by fixed x0.2 stages. ``optimizer.decay`` (Keras' per-step ``lr / (1 + decay * t)``, which the
``staged`` schedule applies whatever the optimizer) is 0: the paper states none and Keras' Adam
has none by default (``sgd_nesterov``'s 1e-6 is the SGD papers'). No weight penalty (the paper
states none). Backbone: the mel DCNN with a 256-d linear
projection (the paper's Inception network is not in the package: ``PAPER13_BACKBONE``).
"""

from musicrep_jax.configs.common import sgd_nesterov
from musicrep_jax.configs.metric_learning import (PAPER_DCNN, TAG_DIMENSIONS, metric_config,
                                                  metric_runlocal, parse_args)

STEPS = 300_000
VARIANTS = ("runlocal", "learned", "plain", "track", "learned,runlocal", "plain,runlocal",
            "track,runlocal")


def get_config(arg=None):
  args = parse_args(arg, {"masks": ("fixed", "learned"), "variant": ("disentangled", "plain"),
                          "track": ("notrack", "track")}, "csn_disentangled")
  track = args["track"] == "track"
  task = dict(approach="triplet", disentangled=args["variant"] == "disentangled",
              labels=TAG_DIMENSIONS, eval_labels=TAG_DIMENSIONS, classes_per_batch=4,
              samples_per_class=4, margin=0.1, metric="euclidean", mining="all",
              track_weight=0.5 if track else 0.0,
              mask_l1=5e-4 if args["masks"] == "learned" else 0.0)
  blocks = len(TAG_DIMENSIONS) + int(track)
  optimizer = sgd_nesterov(0.01, "staged", [STEPS * i // 6 for i in range(1, 6)], name="adam",
                           decay=0.0)
  c = metric_config(task=task, backbone_kwargs=dict(PAPER_DCNN), embedding_dim=256,
                    mask_mode=args["masks"], batch_size=blocks * 16, num_train_steps=STEPS,
                    optimizer=optimizer)
  if args["runlocal"]:
    c.task.kwargs.classes_per_batch = c.task.kwargs.samples_per_class = 3
    c.batch_size = blocks * 9
    metric_runlocal(c, num_train_steps=500, learning_rate=0.003)
    c.model.kwargs.embedding_dim = 64
  return c
