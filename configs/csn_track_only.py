"""Paper 13 (ICASSP 2020): the "Track" baseline, track triplets only; papers.md 14.3, 14.6.

``--config csn_track_only[:runlocal]``: paper 13's "Track" row (Tables 1-2): the same network,
optimiser and schedule as ``csn_disentangled:plain`` (the "Category" model), trained only on
track triplets (anchor and positive two crops of one song with <= 50 % overlap, the negative
from another song; label ``"track"``) on the whole embedding, no category triplets, no masks;
evaluated like the others on the four category dimensions (complete space) and on held-out
track triplets. Batch [choice; the paper states none]: one P x K block of 16 songs x 4 crops,
the 64 rows per step of the category model (4 dimensions x 4 x 4); ``:runlocal``: 18 songs x 2
crops (36 rows, as ``csn_disentangled:runlocal``; two 2.1-s crops fit a 4-s clip at <= 50 %).
"""

from musicrep_jax.configs import csn_disentangled

VARIANTS = ("runlocal",)


def get_config(arg=None):
  if arg not in (None, "", "runlocal"):
    raise ValueError(f"configs/csn_track_only.py knows the argument 'runlocal', not {arg!r}")
  runlocal = arg == "runlocal"
  c = csn_disentangled.get_config("plain,runlocal" if runlocal else "plain")
  c.task.kwargs.labels = ("track",)
  c.task.kwargs.track_weight = 0.0
  if runlocal:
    c.task.kwargs.classes_per_batch, c.task.kwargs.samples_per_class = 18, 2
  else:
    c.task.kwargs.classes_per_batch, c.task.kwargs.samples_per_class = 16, 4
  c.batch_size = c.task.kwargs.classes_per_batch * c.task.kwargs.samples_per_class
  return c
