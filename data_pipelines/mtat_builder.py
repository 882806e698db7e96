"""MagnaTagATune (MTAT) from the user's copy, with the splits of papers.md section 1.1.

Layout of ``manual_dir`` (as distributed by the MIRG site)::

    annotations_final.csv     tab-separated, quoted: "clip_id", 188 tag columns (0/1), "mp3_path"
    0/ 1/ ... f/              the mp3s (mp3.zip.001-003), also accepted under mp3/ or mp3s/
    MTAT_split/               optional: Lee's train/valid/test_list_pub.cP (see `lists` below)

Split variants (BuilderConfigs ``<variant>_<rate>hz``, rate 22050 or 16000):

``lee`` (default): the split of Lee et al. (SampleCNN, SMC 2017) and the group's later papers:
  the 50 most frequent tags of ``annotations_final.csv``; clips with at least one of them and at
  least 29.1 s of audio; folders ``0``-``b`` train, ``c`` validation, ``d``-``f`` test.
  **15,244 / 1,529 / 4,332** clips. Lee's list files are MIT-licensed but not shipped with
  this package yet (their contents were not available when it was written); the builder derives
  the split by this rule and checks the counts before decoding. The duration rule depends on the
  decoder's mp3 length: if the check fails on a complete copy, the report lists the clips that
  were too short (``--min-seconds`` changes the threshold). If you have
  ``jongpillee/music_dataset_split`` (MIT), pass its
  ``MTAT_split`` folder (``lists=``/``--split-lists``) and the lists are used instead (entries
  ``c/name.npy`` name ``c/name.mp3``; the duration rule is then already applied by the lists).
``full``: every clip, same folder rule, all-zero tag vectors allowed: **18,706 / 1,825 / 5,329**
  (25,863 clips less the three broken mp3s).

Three mp3s of the official archive are empty (0 bytes); they are reported as skipped with the
reason below whether or not the user deleted them, and neither split counts them.

Records: ``tags`` over the 50 tags. Tag columns are in the order of Lee's ``top50_tags.txt``
(shipped as ``splits/mtat_top50_tags.txt``), the column order of Lee's ``y_*_pub.npy`` label
matrices, whenever the 50 most frequent tags of ``annotations_final.csv`` are Lee's 50 (as on
the real annotations), whatever their frequency ranks; otherwise (an edited annotation file, or
``num_tags`` other than 50) most frequent first, and a membership difference becomes a build
warning. (tae-jun's code orders the same 50 tags by frequency: a different column order, papers.md
1.1.) ``track`` is the song (the mp3 name without its
``-start-end`` seconds suffix), ``artist`` and ``album`` are its first two ``-``-separated
fields; ``path`` is ``mp3_path``.

Resampling: MTAT is 16 kHz; the ``*_22050hz`` configs upsample as the papers do (section 1.1).
"""

from __future__ import annotations

import csv
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines.manifest_builder import Manifest
from musicrep_jax.errors import UserError

ANNOTATIONS = "annotations_final.csv"
AUDIO_SUBDIRS = ("", "mp3", "mp3s")
FOLDER_SPLITS = {**{d: "train" for d in "0123456789ab"}, "c": "validation",
                 **{d: "test" for d in "def"}}
# clip_id -> mp3_path of the three empty files of the official mp3.zip (widely reported, e.g.
# the `IDS_ERROR` list of several MTAT loaders).
KNOWN_BROKEN = {
    "35644": "6/norine_braun-now_and_zen-08-gently-117-146.mp3",
    "55753": "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-"
             "204-233.mp3",
    "57881": "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_"
             "xiveme_ordre_couperin-88-117.mp3",
}
BROKEN_REASON = "known broken MagnaTagATune mp3 (0 bytes in the official archive)"
LIST_FILES = {"train": "train_list_pub.cP", "validation": "valid_list_pub.cP",
              "test": "test_list_pub.cP"}
VARIANTS = {"lee": "Lee et al.'s split: top-50 tags, >= 1 tag, >= 29.1 s, folders 0-b/c/d-f",
            "full": "every clip, top-50 tags, folders 0-b/c/d-f"}
SEGMENT_SUFFIX = re.compile(r"-\d+-\d+$")


def read_annotations(path: str) -> tuple[list[str], list[str], list[str], np.ndarray]:
  """``annotations_final.csv`` -> (clip ids, mp3 paths, tag names, uint8 [clips, tags])."""
  with open(path, newline="", encoding="utf-8") as f:
    lines = [line for line in csv.reader(f, delimiter="\t") if line]
  header = lines[0] if lines else []
  if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
    raise UserError(f"{path} is not MagnaTagATune's annotations_final.csv (its header must start "
                    "with clip_id and end with mp3_path, tab-separated).")
  body = [line for line in lines[1:] if len(line) == len(header)]
  matrix = np.array([[int(v) for v in line[1:-1]] for line in body], np.uint8)
  return ([line[0] for line in body], [line[-1] for line in body], header[1:-1],
          matrix.reshape(len(body), len(header) - 2))


def names_from_path(mp3_path: str) -> tuple[str, str, str]:
  """``"c/artist-album-01-title-30-59.mp3"`` -> (artist, album, track ``artist-...-title``)."""
  stem = os.path.splitext(os.path.basename(mp3_path))[0]
  track = SEGMENT_SUFFIX.sub("", stem)
  fields = track.split("-")
  return fields[0], "-".join(fields[:2]), track


def lee_top50_tags() -> tuple[str, ...]:
  """Lee's ``top50_tags.txt`` (``splits/mtat_top50_tags.txt``), in its order."""
  return tuple(layouts.packaged_list("mtat_top50_tags.txt"))


def lee_list_splits(lists_dir: str) -> dict[str, str]:
  """Lee's ``*_list_pub.cP`` files -> ``{mp3_path: split}`` (``.npy`` entries -> ``.mp3``)."""
  lists = {s: [os.path.splitext(i)[0] + ".mp3"
               for i in layouts.read_id_list(os.path.join(lists_dir, name))]
           for s, name in LIST_FILES.items()}
  return layouts.splits_from_lists(lists)


class MusicrepMtat(layouts.LayoutBuilder, skip_registration=True):
  """MagnaTagATune (``musicrep_mtat``); see the module docstring."""

  name = "musicrep_mtat"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Lee and full splits, 50 tags, 16 kHz and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  EXPECTED_COUNTS = {"lee": {"train": 15244, "validation": 1529, "test": 4332},
                     "full": {"train": 18706, "validation": 1825, "test": 5329}}
  MIN_SECONDS = {"lee": 29.1, "full": 1.0}
  KIND = "mtat"

  def __init__(self, **kwargs):
    """``LayoutBuilder``'s arguments; warns when the top 50 tags are not Lee's."""
    super().__init__(**kwargs)
    paper_tags = lee_top50_tags()
    tags = self._manifest.tag_names
    if len(tags) == len(paper_tags) and tags != paper_tags:
      self.warnings.append("The 50 most frequent tags of this annotations_final.csv differ from "
                           "Lee's top50_tags.txt (splits/mtat_top50_tags.txt); the tag columns "
                           "are in frequency order, not Lee's.")

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str, num_tags: int = 50,
                  lists: str | None = None) -> Manifest:
    """The clips of ``variant`` with their tags and splits (module docstring).

    Args:
      num_tags: how many of the most frequent tags to keep (50 in the papers; tests use fewer).
      lists: a folder with Lee's ``{train,valid,test}_list_pub.cP``; None derives the split.
    """
    annotations = layouts.find_file(manual_dir, [ANNOTATIONS], "MagnaTagATune's " + ANNOTATIONS)
    clip_ids, paths, names, matrix = read_annotations(annotations)
    tag_names = layouts.top_n_tags(matrix, names, num_tags)
    if set(tag_names) == set(lee_top50_tags()):
      tag_names = lee_top50_tags()  # Lee's column order (y_*_pub.npy), not the frequency ranks.
    columns = [names.index(t) for t in tag_names]
    root = layouts.find_root(manual_dir, AUDIO_SUBDIRS,
                             [p for p in paths[:50] if p not in KNOWN_BROKEN.values()])
    list_split = lee_list_splits(lists) if lists else None
    entries = []
    for clip_id, path, row in zip(clip_ids, paths, matrix[:, columns]):
      if list_split is not None:
        split = list_split.get(path)
      else:
        split = FOLDER_SPLITS.get(path.split("/", 1)[0])
        if variant == "lee" and not row.any():
          split = None
      if split is None:
        continue
      artist, album, track = names_from_path(path)
      broken = KNOWN_BROKEN.get(clip_id) == path
      entries.append(layouts.Entry(
          path=path, full_path=os.path.join(root, path), split=split,
          tags=tuple(t for t, on in zip(tag_names, row) if on), artist=artist, album=album,
          track=track, skip_reason=BROKEN_REASON if broken else None))
    rule = (f"Lee's lists in {lists}" if lists else
            f"{VARIANTS[variant]} (derived from {ANNOTATIONS})")
    return layouts.build_manifest(entries, tag_names, rule, annotations)

  @classmethod
  def default_min_seconds(cls, variant: str, lists: str | None = None, **options) -> float:
    """The variant's rule, except that Lee's lists already apply the 29.1 s filter."""
    del options
    return 1.0 if lists else super().default_min_seconds(variant)
