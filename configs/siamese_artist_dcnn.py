"""Paper 4 (ISMIR 2018), Siamese model: the mel DCNN on artist triplets; papers.md 5.2-5.4.

The DCNN is trained with artist positives and negatives.

Each row of a P x K batch (P artists x K tracks, ``metric_batches``) is an anchor; its positive
is another track of the same artist, its 4 negatives tracks of 4 other artists; loss = the sum
over anchors and negatives of ``max(0, 0.4 - cos(a, p) + cos(a, n))`` on the 256-d DCNN feature
(section 5.2). SGD Nesterov lr 0.1, Keras decay 1e-6, Keras L2 1e-5 on the conv kernels
(``optimizer.kernel_l2``, section 5.2). Batch: 8 artists x 2 tracks = 16 anchors,
each also serving as others' positive and negative (the code draws 15 anchors with their own 5
extra tracks; in-batch negatives give the same loss terms with a third of the forward passes).
``:runlocal``: the embedded corpus.
"""

from musicrep_jax.configs.common import sgd_nesterov
from musicrep_jax.configs.metric_learning import (PAPER_DCNN, metric_config, metric_runlocal,
                                                  parse_args, siamese_task)

VARIANTS = ("runlocal",)


def get_config(arg=None):
  args = parse_args(arg, {}, "siamese_artist_dcnn")
  c = metric_config(task=siamese_task(("artist",), ("artist",)),
                    backbone_kwargs=dict(PAPER_DCNN), embedding_dim=0, data_name="msd_artist",
                    batch_size=16, num_train_steps=500_000,
                    optimizer=sgd_nesterov(0.1, kernel_l2=1e-5))
  if args["runlocal"]:
    metric_runlocal(c, num_train_steps=500, learning_rate=0.01)
  return c
