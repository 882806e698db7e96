"""What the two zero-shot builders share (paper 10, papers.md 11.1): the MSD 1,126-tag set
(``msd_zsl_builder``) and FMA genres with OpenMIC instruments (``fma_openmic_builder``).

* :func:`hash_split`: the track split. Paper 10 splits tags, not tracks: the instance sets A / B
  / C depend on the seen / unseen tag split, which the task draws at training time
  (``tasks/zero_shot.py``), so a builder cannot cut the paper's per-set 90/10 train/valid split
  (``scripts/data_split_track.py``). [choice] every track goes to train / validation / test by a
  stable hash of its id (80 / 10 / 10, ``SPLIT_PERCENT``); the task trains on the training
  split's A / B tracks and the headline (B+C)-Y metrics are read on held-out tracks (the paper
  scores all of B+C, its training B tracks included).
* :class:`ZeroShotLayoutBuilder`: the paper publishes the number of tracks of the whole set
  (MSD 406,409; FMA 19,466; papers.md 11.7), not per split: ``EXPECTED_COUNTS`` hold an
  ``"all"`` entry, checked against the usable files of all splits together before decoding
  (a mismatch is a ``UserError``, or a warning with ``--allow-count-mismatch``).
"""

from __future__ import annotations

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines.manifest_builder import stable_bucket

SPLIT_PERCENT = {"train": 80, "validation": 10, "test": 10}


def hash_split(key: str) -> str:
  """``"train"`` / ``"validation"`` / ``"test"`` of a track id by ``stable_bucket`` (0-99)."""
  bucket, upper = stable_bucket(key), 0
  for split, percent in SPLIT_PERCENT.items():
    upper += percent
    if bucket < upper:
      return split
  return "test"


class ZeroShotLayoutBuilder(layouts.LayoutBuilder, skip_registration=True):
  """A ``LayoutBuilder`` whose expected counts may hold ``"all"`` (every split together)."""

  def _check_counts(self, usable: dict) -> None:
    super()._check_counts(dict(usable, all=sum(usable.values())))
