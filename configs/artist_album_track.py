"""Paper 9 (ICML 2019 ML4MD): artist, album and track supervision, alone or jointly; papers.md 10.

``--config artist_album_track:artist|album|track|joint[,runlocal]``. Only the idea is
known: paper 4's Siamese DCNN (cosine hinge, margin 0.4, 4 negatives, summed) with the positive
sharing the anchor's artist, its album, or being another segment of the same track (at most 50 %
overlap, paper 13); ``joint`` trains on the three at once (one P x K block each, losses
averaged). Everything else is [unknown] and follows paper 4 (SGD Nesterov 0.1, Keras decay 1e-6,
Keras L2 1e-5 on the conv kernels: ``optimizer.kernel_l2``, papers.md 5.2).
"""

from musicrep_jax.configs.common import sgd_nesterov
from musicrep_jax.configs.metric_learning import (PAPER_DCNN, metric_config, metric_runlocal,
                                                  parse_args, siamese_task)

VARIANTS = ("runlocal", "artist", "album", "track", "joint", "album,runlocal", "track,runlocal",
            "joint,runlocal")
SUPERVISION = {"artist": ("artist",), "album": ("album",), "track": ("track",),
               "joint": ("artist", "album", "track")}


def get_config(arg=None):
  args = parse_args(arg, {"supervision": tuple(SUPERVISION)}, "artist_album_track")
  labels = SUPERVISION[args["supervision"]]
  c = metric_config(task=siamese_task(labels, ("artist", "album")),
                    backbone_kwargs=dict(PAPER_DCNN), embedding_dim=0, data_name="msd_artist",
                    batch_size=16 * len(labels),
                    num_train_steps=500_000, optimizer=sgd_nesterov(0.1, kernel_l2=1e-5))
  if args["runlocal"]:
    metric_runlocal(c, num_train_steps=500, learning_rate=0.01)
  return c
