"""Paper 4 (ISMIR 2018), basic model: the 5-layer mel DCNN classifying artists; papers.md 5.

129 x 128 log-mel crops (section 1.3), ``Dense(num_artists)`` + softmax cross-entropy over all
artists on the 256-d "deep artist feature" (no L2 normalisation, no projection), SGD Nesterov lr
0.1 with Keras decay 1e-6, batch 15 (section 5.4), Keras L2 1e-5 on every conv kernel
(``optimizer.kernel_l2``: ``1e-5 * ||W||^2`` in the loss, section 5.2; the Dense head has none,
[unknown] in papers.md). The embedding (the 256-d feature) is evaluated
as a similarity space on held-out tracks (artist retrieval and triplets) besides the artist
classifier. Paper scale reads the MSD artist split (``--data-dir``, a dataset with an ``artist``
field); ``:runlocal`` trains the same code path on the embedded corpus (30 artists).
"""

from musicrep_jax.configs.common import sgd_nesterov
from musicrep_jax.configs.metric_learning import (PAPER_DCNN, metric_config, metric_runlocal,
                                                  parse_args)

VARIANTS = ("runlocal",)


def get_config(arg=None):
  args = parse_args(arg, {}, "artist_dcnn")
  c = metric_config(
      task=dict(approach="classification", labels=("artist",), eval_labels=("artist",),
                normalize=False),
      backbone_kwargs=dict(PAPER_DCNN), embedding_dim=0, data_name="msd_artist",
      batch_size=15, num_train_steps=500_000, optimizer=sgd_nesterov(0.1, kernel_l2=1e-5))
  if args["runlocal"]:
    c.batch_size = 32
    metric_runlocal(c, num_train_steps=500, learning_rate=0.05)
  return c
