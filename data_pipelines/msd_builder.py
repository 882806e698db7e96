"""Million Song Dataset (MSD) 7digital previews with the 50 Last.fm tags (papers.md section 1.1).

Layout of ``manual_dir`` (what the MSD, the Last.fm dataset and the split repository provide)::

    track_metadata.db         MSD's SQLite metadata: track_id -> track_7digitalid, artist_id,
                              release (also accepted under AdditionalFiles/)
    lastfm_tags.db            the Last.fm dataset's SQLite tags: tids, tags, tid_tag(val 0-100)
    filtered_list_train.cP    Lee's split lists (jongpillee/music_dataset_split, MSD_split/;
    filtered_list_test.cP     also accepted under MSD_split/), Python-2 pickles of MSD ids
    <d0>/<d1>/<7digital id>.clip.mp3   the previews, at the root or under audio/ or 7digital/

Split (variant ``lee``, configs ``lee_22050hz`` / ``lee_16000hz``): Keunwoo Choi's tagging split
filtered to previews of at least 29.1 s by Lee; the first **201,680** ids of
``filtered_list_train.cP`` are train, the remaining **11,774** validation, and
``filtered_list_test.cP`` (**28,435**) test. The lists are not shipped with this package (too
large to bring in here); they are read from the user's copy and the counts are checked before
decoding. Most people only have part of the previews (7digital no longer serves them): pass
``strict_counts=False`` (``--allow-count-mismatch``) to build what you have.

Labels: the 50 tags of Choi's ``tags.py`` (shipped as ``splits/msd_50_tags.txt``, in that order);
a track has a tag when its Last.fm value is greater than 50 (Choi's rule). ``artist`` is the MSD
artist id, ``album`` the artist id plus release name, ``track`` the MSD track id; ``path`` is the
preview's path. A listed id without a 7digital id in ``track_metadata.db`` is reported skipped.

Similarity dimensions (papers 13 and 14, papers.md 14.1 and 15.1):

* ``tag_groups`` in the metadata: genre (28 tags), mood (12), instrument (5) and era (5), the
  grouping shipped as ``splits/msd_50_tag_groups.csv``. The papers' exact list is not published
  (papers.md marks it [unknown]); the file is a reconstruction with the reason for every
  ambiguous tag in its ``note`` column (summary in ``splits/README.md``). Paper 14 uses the four
  groups, paper 13 genre, mood and instrument plus tempo. ``tag_groups=FILE``
  (``--tag-groups``) replaces it with another grouping of the 50 tags (``tag_groups`` module).
* ``tempo_bpm`` per clip, estimated at prepare time (``frontends.tempo``; on by default here,
  as paper 13 needs it; ``--no-tempo`` skips it): about 0.1 s of one core per 30-s preview,
  some 60 % on top of decoding the mp3.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Callable, Iterator, Optional

import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines import tag_groups as tag_groups_lib
from musicrep_jax.data_pipelines.manifest_builder import Manifest
from musicrep_jax.errors import UserError

TRACK_METADATA = ("track_metadata.db", "AdditionalFiles/track_metadata.db")
LASTFM_TAGS = ("lastfm_tags.db",)
TRAIN_LIST = ("filtered_list_train.cP", "MSD_split/filtered_list_train.cP")
TEST_LIST = ("filtered_list_test.cP", "MSD_split/filtered_list_test.cP")
AUDIO_SUBDIRS = ("", "audio", "7digital", "mp3")
NUM_TRAIN = 201680  # Lee: "first 201680 IDs for training set and rest 11774 IDs for validation".
TAG_THRESHOLD = 50.0  # Choi: "I only count tag as valid if the ground truth > 50".
VARIANTS = {"lee": "Choi's MSD tagging split filtered to >= 29.1 s previews (Lee), 50 tags"}


def preview_path(id7d: str) -> str:
  """7digital id -> its path in the preview tree: ``"8947470"`` -> ``"8/9/8947470.clip.mp3"``."""
  return f"{id7d[0]}/{id7d[1]}/{id7d}.clip.mp3"


def query(db_path: str, sql: str, args=()) -> Iterator[tuple]:
  """Rows of ``sql`` on the SQLite file ``db_path`` (opened read-only), one at a time (the MSD
  metadata has a million rows)."""
  try:
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
      yield from connection.execute(sql, args)
    finally:
      connection.close()
  except sqlite3.Error as error:
    raise UserError(f"Could not read {db_path} ({error}); is it the MSD/Last.fm SQLite "
                    "file?") from error


def read_track_metadata(db_path: str, wanted: set) -> dict[str, tuple[str, str, str]]:
  """MSD track id -> (7digital id, artist id, release) for the ``wanted`` ids."""
  rows = query(db_path, "SELECT track_id, track_7digitalid, artist_id, release FROM songs")
  return {tid: (str(id7d) if id7d and int(id7d) > 0 else "", artist or "", release or "")
          for tid, id7d, artist, release in rows if tid in wanted}


def read_lastfm_tags(db_path: str, tag_names, threshold: float) -> dict[str, set]:
  """MSD track id -> the tags of ``tag_names`` whose Last.fm value is above ``threshold``."""
  marks = ",".join("?" * len(tag_names))
  rows = query(db_path, "SELECT tids.tid, tags.tag FROM tid_tag "
               "JOIN tids ON tid_tag.tid = tids.ROWID JOIN tags ON tid_tag.tag = tags.ROWID "
               f"WHERE tid_tag.val > ? AND tags.tag IN ({marks})",
               (threshold, *tag_names))
  tags: dict[str, set] = {}
  for tid, tag in rows:
    tags.setdefault(tid, set()).add(tag)
  return tags


def listed_preview_entries(manual_dir: str, lists: tuple, what: str, num_train: int,
                           read_tags: Callable[[], dict],
                           no_tags_reason: Optional[str] = None) -> list[layouts.Entry]:
  """One ``Entry`` per track of Lee's train / test id lists (``lists``: the train and test
  list file names, searched in ``manual_dir``; ``what`` names them in errors): train ids before
  ``num_train`` are train, the rest validation; the preview path from ``track_metadata.db``'s
  7digital id (under the audio root ``find_root`` locates), artist and ``artist/release`` as
  album, and its tags from ``read_tags() -> {track_id: tags tuple}``, called once after the
  lists and the metadata are read (so a missing list is reported first). A track without a
  7digital id is skipped with that reason, then (with ``no_tags_reason``) a track without tags
  with this one. Used by the MSD tagging and Tagtraum builders."""
  train_list, test_list = lists
  train = layouts.read_id_list(layouts.find_file(manual_dir, train_list,
                                                 f"Lee's {what} train list"))
  test = layouts.read_id_list(layouts.find_file(manual_dir, test_list, f"Lee's {what} test list"))
  split_of = layouts.splits_from_lists(
      {"train": train[:num_train], "validation": train[num_train:], "test": test})
  metadata = read_track_metadata(
      layouts.find_file(manual_dir, TRACK_METADATA, "MSD's track_metadata.db"), set(split_of))
  paths = {tid: preview_path(m[0]) for tid, m in metadata.items() if m[0]}
  tags_of = read_tags()
  root = layouts.find_root(manual_dir, AUDIO_SUBDIRS, list(paths.values())[:50])
  entries = []
  for tid, split in split_of.items():
    id7d, artist, release = metadata.get(tid, ("", "", ""))
    path = paths.get(tid, f"{tid} (no 7digital id)")
    tags = tuple(tags_of.get(tid, ()))
    reason = ("no 7digital id in track_metadata.db" if not id7d
              else no_tags_reason if not tags else None)
    entries.append(layouts.Entry(
        path=path, full_path=os.path.join(root, path), split=split, tags=tags, artist=artist,
        album=f"{artist}/{release}" if artist else "", track=tid, skip_reason=reason))
  return entries


class MusicrepMsd(layouts.LayoutBuilder, skip_registration=True):
  """MSD previews with Last.fm tags (``musicrep_msd``); see the module docstring."""

  name = "musicrep_msd"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Lee's filtered Choi split, 50 Last.fm tags, 16 and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  EXPECTED_COUNTS = {"lee": {"train": NUM_TRAIN, "validation": 11774, "test": 28435}}
  KIND = "msd"
  TEMPO_BY_DEFAULT = True  # Paper 13's tempo dimension (module docstring).

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str, num_train: int = NUM_TRAIN,
                  tag_threshold: float = TAG_THRESHOLD, tag_groups: str | None = None) -> Manifest:
    """The listed tracks with their previews, tags and tag groups (module docstring).

    Args:
      num_train: ids of ``filtered_list_train.cP`` before this index are train, the rest
        validation (201,680 in the papers; tests use miniature lists).
      tag_threshold: a Last.fm tag value above this counts as the tag.
      tag_groups: a tag-group file to use instead of ``splits/msd_50_tag_groups.csv``.
    """
    del variant  # One variant.
    tag_names = layouts.packaged_list("msd_50_tags.txt")
    groups = tag_groups_lib.read_tag_groups(
        tag_groups or os.path.join(layouts.SPLITS_DIR, tag_groups_lib.MSD_GROUPS_FILE), tag_names)

    def read_tags() -> dict:
      tags = read_lastfm_tags(
          layouts.find_file(manual_dir, LASTFM_TAGS, "Last.fm's lastfm_tags.db"), tag_names,
          tag_threshold)
      return {tid: tuple(t for t in tag_names if t in found) for tid, found in tags.items()}

    entries = listed_preview_entries(manual_dir, (TRAIN_LIST, TEST_LIST), "MSD", num_train,
                                     read_tags)
    return layouts.build_manifest(entries, tag_names, VARIANTS["lee"], manual_dir, groups)
