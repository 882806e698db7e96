"""MSD with paper 10's 1,126 Last.fm tags (word-semantic zero-shot setup, papers.md 11.1, 11.7).

Layout of ``manual_dir``: MSD's ``track_metadata.db``, the Last.fm dataset's ``lastfm_tags.db``
and the 7digital previews ``<d0>/<d1>/<7digital id>.clip.mp3``, as for ``msd_builder`` (its
readers are reused); no split list.

Tags: paper 10 uses 1,126 Last.fm tags, each with a 300-d GloVe vector; how they were chosen is
[unknown] (papers.md 11.1: the pickle name ``ttr_ont_tag_1126_to_glove_dict.p`` suggests a
Tagtraum-ontology filter, unverified; the list is not published). So:

* ``tag_list`` (``--tag-list FILE``, one tag per line, as spelt in ``lastfm_tags.db``): the
  paper's list if you have it;
* otherwise [choice] the ``num_tags`` (1,126) tags carried by the most tracks (Last.fm value >
  ``tag_threshold``), ties by name; with ``word_vectors`` (``--word-vectors``, GloVe or word2vec)
  only tags with a vector count (the paper's tags all have one; multi-word tags as the task maps
  them, ``WordVectors.phrase_vector``).

Columns are the tags sorted by name. A track carries a tag when its Last.fm value is above
``tag_threshold`` (50, Choi's rule of the MSD-50 set; paper 10's threshold is [unknown]).

Tracks: every MSD track carrying one of the tags (papers.md 11.7: "every MSD track carrying one
of the 1,126 tags", 406,409, not the 241,889-track tagging split), previews shorter than 29 s
skipped (papers.md 11.2). Split: ``zero_shot_layouts.hash_split`` of the MSD track id (80 / 10 /
10). Count check: with 1,126 tags, all splits together against the paper's 406,409 (the paper's
list, or a different list that happens to give that many); other tag counts are not checked.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow_datasets as tfds

from musicrep_jax.data import word_vectors as word_vectors_lib
from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines import msd_builder as msd
from musicrep_jax.data_pipelines import zero_shot_layouts
from musicrep_jax.data_pipelines.manifest_builder import Manifest
from musicrep_jax.errors import UserError

NUM_TAGS = 1126
NUM_TRACKS = 406409
MIN_SECONDS = 29.0  # Paper 10 drops tracks shorter than 29 s (papers.md 11.2).
VARIANTS = {"zsl": "MSD tracks with paper 10's 1,126 Last.fm tags (zero-shot), hash split"}
_QUERY_CHUNK = 500  # Tags per SQL query (SQLite's parameter limit is 999 on older builds).


def tag_frequencies(db_path: str, threshold: float):
  """``(tag, tracks)`` of ``lastfm_tags.db``, counting values above ``threshold``, most tracks
  first, ties by name (one grouped SQL query)."""
  return msd.query(db_path, "SELECT tags.tag, COUNT(*) AS n FROM tid_tag "
                   "JOIN tags ON tid_tag.tag = tags.ROWID WHERE tid_tag.val > ? "
                   "GROUP BY tid_tag.tag ORDER BY n DESC, tags.tag ASC", (threshold,))


def most_frequent_tags(db_path: str, num_tags: int, threshold: float,
                       vectors: word_vectors_lib.WordVectors | None = None) -> list[str]:
  """The ``num_tags`` most frequent tags (module docstring), with a vector if ``vectors``."""
  chosen = []
  for tag, _ in tag_frequencies(db_path, threshold):
    if vectors is None or vectors.phrase_vector(tag) is not None:
      chosen.append(tag)
      if len(chosen) == num_tags:
        break
  return chosen


def tracks_with_tags(db_path: str, tag_names, threshold: float) -> dict[str, set]:
  """MSD track id -> its tags among ``tag_names`` (``msd_builder.read_lastfm_tags`` in chunks)."""
  tags: dict[str, set] = {}
  names = list(tag_names)
  for start in range(0, len(names), _QUERY_CHUNK):
    chunk = msd.read_lastfm_tags(db_path, names[start:start + _QUERY_CHUNK], threshold)
    for tid, found in chunk.items():
      tags.setdefault(tid, set()).update(found)
  return tags


class MusicrepMsdZsl(zero_shot_layouts.ZeroShotLayoutBuilder, skip_registration=True):
  """MSD previews with paper 10's zero-shot tag set (``musicrep_msd_zsl``); module docstring."""

  name = "musicrep_msd_zsl"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "MSD tracks with 1,126 Last.fm tags, hash split, 16 and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  EXPECTED_COUNTS = {"zsl": {"all": NUM_TRACKS}}
  MIN_SECONDS = {"zsl": MIN_SECONDS}
  KIND = "msd_zsl"

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str, tag_list: str | None = None,
                  num_tags: int = NUM_TAGS, tag_threshold: float = msd.TAG_THRESHOLD,
                  word_vectors: str | None = None) -> Manifest:
    """Tracks carrying the chosen tags, with their previews (module docstring).

    Args:
      tag_list: a text file of tags (one per line); None: the ``num_tags`` most frequent.
      num_tags: how many tags without ``tag_list`` (1,126 in the paper).
      tag_threshold: a Last.fm value above this counts as the tag.
      word_vectors: a word-vector file; without ``tag_list``, only tags with a vector count.
    """
    del variant  # One variant.
    tags_db = layouts.find_file(manual_dir, msd.LASTFM_TAGS, "Last.fm's lastfm_tags.db")
    metadata_db = layouts.find_file(manual_dir, msd.TRACK_METADATA, "MSD's track_metadata.db")
    if tag_list:
      tag_names = sorted(set(layouts.read_id_list(tag_list)))
      rule = f"the {len(tag_names)} tags of {tag_list}"
    else:
      if int(num_tags) < 2:
        raise UserError(f"num_tags must be at least 2 (a seen and an unseen tag), not {num_tags}.")
      vectors = word_vectors_lib.load_word_vectors(word_vectors) if word_vectors else None
      tag_names = sorted(most_frequent_tags(tags_db, int(num_tags), tag_threshold, vectors))
      rule = (f"the {len(tag_names)} most frequent Last.fm tags"
              + (f" with a vector in {word_vectors}" if word_vectors else ""))
    if not tag_names:
      raise UserError(f"No Last.fm tag of {tags_db} is above {tag_threshold} on any track "
                      f"({rule}).")
    tags = tracks_with_tags(tags_db, tag_names, tag_threshold)
    metadata = msd.read_track_metadata(metadata_db, set(tags))
    paths = {tid: msd.preview_path(m[0]) for tid, m in metadata.items() if m[0]}
    root = layouts.find_root(manual_dir, msd.AUDIO_SUBDIRS, list(paths.values())[:50])
    entries = []
    for tid in sorted(tags):
      id7d, artist, release = metadata.get(tid, ("", "", ""))
      path = paths.get(tid, f"{tid} (no 7digital id)")
      entries.append(layouts.Entry(
          path=path, full_path=os.path.join(root, path), split=zero_shot_layouts.hash_split(tid),
          tags=tuple(t for t in tag_names if t in tags[tid]), artist=artist,
          album=f"{artist}/{release}" if artist else "", track=tid,
          skip_reason=None if id7d else "no 7digital id in track_metadata.db"))
    manifest = layouts.build_manifest(entries, tag_names, f"{VARIANTS['zsl']}; tags: {rule}",
                                      manual_dir)
    missing = len(tag_names) - len({t for found in tags.values() for t in found})
    if missing:
      manifest = dataclasses.replace(manifest, warnings=manifest.warnings + (
          f"{missing} of the {len(tag_names)} tags are on no track above the threshold "
          f"{tag_threshold}.",))
    return manifest

  @classmethod
  def paper_counts(cls, variant: str, manifest: Manifest) -> dict | None:
    """The paper's 406,409 tracks in all, for a 1,126-tag set only."""
    return cls.EXPECTED_COUNTS[variant] if len(manifest.tag_names) == NUM_TAGS else None
