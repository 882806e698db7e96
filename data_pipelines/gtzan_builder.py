"""GTZAN with the fault-filtered split (Kereliuk et al. 2015), papers.md section 1.1.

Layout of ``manual_dir``: the genre folders ``blues/ ... rock/`` holding ``<genre>.000NN.au``
(the original ``genres.tar.gz``, under ``genres/``) or ``.wav`` (the Kaggle copy, under
``genres_original/`` or ``Data/genres_original/``), or directly in ``manual_dir``.

Split (variant ``fault_filtered``, configs ``fault_filtered_22050hz`` / ``_16000hz``): the
artist-filtered lists of Kereliuk, Sturm and Larsen ("Deep Learning and Music Adversaries",
2015) as used by Lee et al. (SPL 2017; ``jongpillee/music_dataset_split/GTZAN_split``, MIT, and
``coreyker/dnn-mgr``): **443 / 197 / 290** clips, shipped as
``splits/gtzan_{train,valid,test}_filtered.txt``. The other 70 clips are in no split.

The Kaggle copy's ``jazz/jazz.00054.wav`` is corrupt (a known defect of that copy); it is reported
skipped and the expected train count becomes 442 for that layout.

Labels: ``tags`` is the one-hot genre over the 10 genres (alphabetical); ``track`` is the clip.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines.manifest_builder import Manifest

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock")
GENRE_ROOTS = ("genres_original", "Data/genres_original", "genres", "")
LIST_FILES = {"train": "gtzan_train_filtered.txt", "validation": "gtzan_valid_filtered.txt",
              "test": "gtzan_test_filtered.txt"}
KAGGLE_BROKEN = "jazz/jazz.00054.wav"
BROKEN_REASON = "known corrupt file of the Kaggle GTZAN copy"
VARIANTS = {"fault_filtered": "GTZAN, Kereliuk et al.'s fault-filtered (artist-filtered) split"}


def resolve_extension(root: str, listed: str) -> str:
  """A listed ``genre/genre.000NN.wav`` -> the file that exists (``.wav``, else ``.au``)."""
  stem = os.path.splitext(listed)[0]
  for ext in (".wav", ".au"):
    if os.path.exists(os.path.join(root, stem + ext)):
      return stem + ext
  return listed


class MusicrepGtzan(layouts.LayoutBuilder, skip_registration=True):
  """GTZAN, fault-filtered split (``musicrep_gtzan``); see the module docstring."""

  name = "musicrep_gtzan"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Fault-filtered split, 10 genres, 16 and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  EXPECTED_COUNTS = {"fault_filtered": {"train": 443, "validation": 197, "test": 290}}
  KIND = "gtzan"


  @classmethod
  def read_layout(cls, manual_dir: str, variant: str) -> Manifest:
    del variant  # One variant.
    lists = {s: layouts.packaged_list(name) for s, name in LIST_FILES.items()}
    probes = [os.path.splitext(p)[0] + ext for p in lists["train"][:20] for ext in (".wav", ".au")]
    root = layouts.find_root(manual_dir, GENRE_ROOTS, probes)
    entries = []
    for listed, split in layouts.splits_from_lists(lists).items():
      path = resolve_extension(root, listed)
      genre = path.split("/", 1)[0]
      entries.append(layouts.Entry(
          path=path, full_path=os.path.join(root, path), tags=(genre,), split=split,
          track=os.path.splitext(path)[0],
          skip_reason=BROKEN_REASON if path == KAGGLE_BROKEN else None))
    return layouts.build_manifest(entries, GENRES, VARIANTS["fault_filtered"], root)

  @classmethod
  def paper_counts(cls, variant: str, manifest: Manifest) -> dict:
    """The paper's counts less the known-corrupt Kaggle file, which the paper's copy had."""
    counts = dict(cls.EXPECTED_COUNTS[variant])
    for row in manifest.rows:
      if row.skip_reason == BROKEN_REASON:
        counts[row.split] -= 1
    return counts
