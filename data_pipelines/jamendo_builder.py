"""MTG-Jamendo, top-50 tags subset, with the dataset's own splits (split-0 ... split-4).

Layout of ``manual_dir``: a checkout of ``MTG/mtg-jamendo-dataset`` (its
``data/splits/split-<k>/autotagging_top50tags-{train,validation,test}.tsv``; the three tsvs may
also sit directly in ``manual_dir``) and the audio folders ``00/ ... 99/`` (``raw_30s`` or full
tracks) at the root or under ``audio/`` or ``raw_30s/audio/``. With ``low_quality=True`` the
``.low.mp3`` files of the ``audio-low`` download are used.

TSV rows: ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAG...`` (tags such as ``genre---rock``,
``mood/theme---happy``). ``tags`` is multi-hot over the sorted union of the tags in the three
tsvs (50 for the top-50 subset); ``artist``, ``album``, ``track`` come from the tsv ids.

Counts: the dataset's README gives 54,380 tracks for ``autotagging_top50tags.tsv`` but no
per-split counts, so nothing is checked by default (``expected_counts`` can be given).
The tsvs are CC BY-NC-SA 4.0 and are not shipped with this package.
"""

from __future__ import annotations

import csv
import os

import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines.manifest_builder import SPLITS, Manifest
from musicrep_jax.errors import UserError

TSV = "autotagging_top50tags-{split}.tsv"
TSV_DIRS = ("data/splits/split-{k}", "splits/split-{k}", "")
AUDIO_SUBDIRS = ("", "audio", "raw_30s/audio", "raw_30s_audio")
VARIANTS = {f"split{k}": f"MTG-Jamendo top-50 tags, split-{k}" for k in range(5)}


def read_tsv(path: str) -> list[list[str]]:
  """The data rows of a Jamendo tsv (header checked, ragged tag columns kept)."""
  with open(path, newline="", encoding="utf-8") as f:
    lines = [line for line in csv.reader(f, delimiter="\t") if line]
  if not lines or lines[0][:4] != ["TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH"]:
    raise UserError(f"{path} is not an MTG-Jamendo tsv (header TRACK_ID ARTIST_ID ALBUM_ID PATH "
                    "DURATION TAGS).")
  return lines[1:]


class MusicrepJamendo(layouts.LayoutBuilder, skip_registration=True):
  """MTG-Jamendo top-50 (``musicrep_jamendo``); see the module docstring."""

  name = "musicrep_jamendo"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Top-50 tags, splits 0-4, 16 and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  EXPECTED_COUNTS = {}  # No per-split counts are published.
  KIND = "jamendo"


  @classmethod
  def read_layout(cls, manual_dir: str, variant: str, low_quality: bool = False) -> Manifest:
    k = variant.removeprefix("split")
    tables = {}
    for split in SPLITS:
      names = [os.path.join(d.format(k=k), TSV.format(split=split)) for d in TSV_DIRS]
      tables[split] = read_tsv(layouts.find_file(manual_dir, names, f"The {split} tsv of "
                                                 f"MTG-Jamendo split-{k}"))
    tag_names = sorted({t for rows in tables.values() for row in rows for t in row[5:]})
    suffix = ".low.mp3" if low_quality else ".mp3"
    paths = {s: [row[3].removesuffix(".mp3") + suffix for row in rows]
             for s, rows in tables.items()}
    root = layouts.find_root(manual_dir, AUDIO_SUBDIRS, paths["train"][:50])
    entries = [layouts.Entry(path=path, full_path=os.path.join(root, path), split=split,
                             tags=tuple(row[5:]), track=row[0], artist=row[1], album=row[2])
               for split in SPLITS for row, path in zip(tables[split], paths[split])]
    return layouts.build_manifest(entries, tag_names, VARIANTS[variant], manual_dir)
