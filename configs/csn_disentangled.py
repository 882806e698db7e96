"""Paper 13 (ICASSP 2020): disentangled metric learning, conditional similarity nets; papers.md 14.

Disentangled multidimensional metric learning with conditional similarity networks.
``--config csn_disentangled[:ARGS]`` with ARGS from ``fixed|learned`` (the masks:
fixed disjoint 4 x 64, the paper's choice, or CSN's learned masks with an L1 penalty),
``plain|disentangled`` (``plain`` = the paper's "Category" baseline: the same triplets on the
whole embedding), ``notrack|track`` (track regularisation, lambda 0.5) and ``runlocal``.

Per batch, one P x K block per dimension (genre, mood, instrument: tags shared = similar, the
MSD tag groups of ``musicrep prepare msd``; tempo: ``tempo_bpm`` within 5 BPM, estimated at
prepare time where the paper used madmom; ``:runlocal``: the embedded corpus's tempo classes),
the triplet
hinge (margin 0.1, Euclidean on L2-normalised vectors) on each block's subspace ``n(f o m_s)``;
with ``track``, a fifth block of track triplets (two segments of one song, <= 50 % overlap) on the
whole embedding, weighted 0.5. Triplets: every valid triplet of each P x K block
(``mining="all"``), [choice]: the paper draws random triplets and describes no mining (papers.md
14.4). Adam 0.01 as the paper, at a constant rate (no Keras decay: the paper states none) that
is divided by 5 when the validation loss has not decreased for 4 epochs, at most 5 times, then
early stopping (papers.md 14.4; ``config.plateau``, training/plateau.py: 6 rates, the last
one's plateau ends the run). [choice] Like Keras' ``ReduceLROnPlateau`` the rate drops in place
(weights and Adam moments carry on; the paper does not say it reloads the best weights), and
an epoch is one pass over the 201,680 training tracks (``EPOCH``, each batch row one track's
excerpt: the paper does not state its triplets per epoch); ``num_train_steps`` is a cap. The
validation loss is the training hinge on held-out triplets (evaluators/retrieval.py). No weight
penalty (the paper states none). Backbone: the paper's Inception network
(``models/inception.py``, ``PAPER13_BACKBONE``: its own 256-d L2-normalised output is the
embedding, no projection); the mel DCNN with a 256-d projection stays available
(``--config.model.kwargs.backbone=mel_dcnn`` with its ``backbone_kwargs``).
``:runlocal`` (500 steps of ``make_runlocal``'s cosine schedule, 4 evaluations) has patience 2.
"""

from musicrep_jax.configs.common import plateau_stages, sgd_nesterov
from musicrep_jax.configs.metric_learning import (PAPER13_BACKBONE, PAPER13_DIMENSIONS,
                                                  PAPER13_PROJECTION, TAG_DIMENSIONS,
                                                  backbone_kwargs_for, metric_config,
                                                  metric_runlocal, parse_args)

STEPS = 300_000
TRAIN_TRACKS = 201_680  # The SPL-2017 MSD split (papers.md 14.1): an epoch is one pass over them.
VARIANTS = ("runlocal", "learned", "plain", "track", "learned,runlocal", "plain,runlocal",
            "track,runlocal")


def get_config(arg=None):
  args = parse_args(arg, {"masks": ("fixed", "learned"), "variant": ("disentangled", "plain"),
                          "track": ("notrack", "track")}, "csn_disentangled")
  track = args["track"] == "track"
  dims = TAG_DIMENSIONS if args["runlocal"] else PAPER13_DIMENSIONS
  task = dict(approach="triplet", disentangled=args["variant"] == "disentangled",
              labels=dims, eval_labels=dims, classes_per_batch=4,
              samples_per_class=4, margin=0.1, metric="euclidean", mining="all",
              track_weight=0.5 if track else 0.0,
              mask_l1=5e-4 if args["masks"] == "learned" else 0.0)
  blocks = len(dims) + int(track)
  optimizer = sgd_nesterov(0.01, "constant", name="adam", decay=0.0)
  epoch = TRAIN_TRACKS // (blocks * 16)
  c = metric_config(task=task, backbone=PAPER13_BACKBONE,
                    backbone_kwargs=backbone_kwargs_for(PAPER13_BACKBONE),
                    embedding_dim=PAPER13_PROJECTION[PAPER13_BACKBONE], mask_mode=args["masks"], batch_size=blocks * 16, num_train_steps=STEPS,
                    optimizer=optimizer, eval_every=epoch)
  c.plateau = plateau_stages(6, patience=4, reload_best=False)
  if args["runlocal"]:
    c.task.kwargs.classes_per_batch = c.task.kwargs.samples_per_class = 3
    c.batch_size = blocks * 9
    metric_runlocal(c, num_train_steps=500, learning_rate=0.003)
    c.model.kwargs.embedding_dim = 64 if PAPER13_PROJECTION[PAPER13_BACKBONE] else 0
    c.plateau.patience = 2
  return c
