"""Paper 13 (ICASSP 2020): one of the "set of 4 specialised networks"; papers.md 14.6.

``--config csn_specialised:DIMENSION[,runlocal]`` with DIMENSION one of ``genre`` (default),
``mood``, ``instrument``, ``tempo``: paper 13's "Set of 4 specialised networks" row (Table 1,
sub-dims) is four of these runs, one per dimension, each network trained only on its
dimension's triplets (the hinge, margin, optimiser and schedule of ``csn_disentangled``) and
scored on its own dimension (``DIM/triplet_acc`` of that run; the other dimensions are
reported too). Each network embeds into a quarter of the joint model's space [choice: the paper
does not give the width]: 64 dimensions (16 at ``:runlocal``), so the four together have the
256 of the disentangled model; batch: one P x K block of 4 x 4 (the joint model's block per
dimension; 3 x 3 at ``:runlocal``). Dimensions are ``csn_disentangled``'s labels (tag groups;
the tempo label as that config names it).
"""

from musicrep_jax.configs import csn_disentangled
from musicrep_jax.configs.metric_learning import parse_args

DIMENSIONS = ("genre", "mood", "instrument", "tempo")
VARIANTS = ("runlocal",) + DIMENSIONS[1:] + tuple(f"{d},runlocal" for d in DIMENSIONS[1:])


def get_config(arg=None):
  args = parse_args(arg, {"dimension": DIMENSIONS}, "csn_specialised")
  c = csn_disentangled.get_config("plain,runlocal" if args["runlocal"] else "plain")
  dims = tuple(c.task.kwargs.labels)
  label = dims[DIMENSIONS.index(args["dimension"])]
  c.task.kwargs.labels = (label,)
  c.task.kwargs.eval_labels = dims
  c.task.kwargs.track_weight = 0.0
  c.batch_size = c.task.kwargs.classes_per_batch * c.task.kwargs.samples_per_class
  c.model.kwargs.embedding_dim = c.model.kwargs.embedding_dim // len(DIMENSIONS)
  return c
