"""FMA genres with OpenMIC-2018 instrument annotations (paper 10's attribute setup, papers.md
11.1, 11.7; the paper's ``scripts/data_prep_instrument_vector.py``).

Layout of ``manual_dir``::

    fma_metadata/tracks.csv, genres.csv   FMA's metadata (also accepted at the root)
    fma_large/<ddd>/<dddddd>.mp3           FMA-large audio, 30-s clips (or fma_full/, audio/)
    openmic-2018/openmic-2018.npz          OpenMIC-2018: Y_true, Y_mask, sample_key
    openmic-2018/class-map.json            instrument -> column of Y_true (also at the root)

Tracks: the OpenMIC tracks (``sample_key`` ``"<fma track id>_<start ms>"``) that carry an FMA
genre (``tracks.csv``'s ``track.genres``, the genres given to the track, not ``genres_all``).
Genres: those whose OpenMIC tracks carry at least one instrument judgement, so that their
instrument vector is defined ("from 163 genres, we removed 6 due to their lack of instrument
annotation": 157 genres, 19,466 tracks, papers.md 11.1, 11.7).

Labels (``tags``): the genre titles (``genres.csv``, in genre-id order; a repeated title gets its
id appended), then per OpenMIC instrument two attribute columns (``instrument_tags``):
``instrument---<name>`` when OpenMIC judges it present (aggregated confidence ``Y_true`` > 0.5
where ``Y_mask``) and ``no_instrument---<name>`` when judged absent (<= 0.5); unjudged
instruments carry neither (OpenMIC's labels are partial). The zero-shot task turns them into
paper 10's 40-d genre vectors (``tasks/zero_shot.attribute_vectors`` with
``attribute_negative_tags``: ``configs/zero_shot.py:fma``). [not here] the paper's "confidence
minus 0.5" vectors.

Split: ``zero_shot_layouts.hash_split`` of the FMA track id (80 / 10 / 10). Count check: the
paper's 19,466 tracks in all splits together (a few FMA-large mp3s are known to be unreadable:
a complete copy may need ``--allow-count-mismatch``). Files shorter than 1 s are skipped (the
paper drops decoded audio under 3,000 samples).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines import zero_shot_layouts
from musicrep_jax.data_pipelines.manifest_builder import Manifest
from musicrep_jax.errors import UserError

TRACKS_CSV = ("fma_metadata/tracks.csv", "tracks.csv")
GENRES_CSV = ("fma_metadata/genres.csv", "genres.csv")
OPENMIC_NPZ = ("openmic-2018/openmic-2018.npz", "openmic-2018.npz")
CLASS_MAP = ("openmic-2018/class-map.json", "class-map.json")
AUDIO_SUBDIRS = ("fma_large", "fma_full", "audio", "")
# OpenMIC-2018's 20 instruments (class-map.json, in column order).
INSTRUMENTS = ("accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums", "flute",
               "guitar", "mallet_percussion", "mandolin", "organ", "piano", "saxophone",
               "synthesizer", "trombone", "trumpet", "ukulele", "violin", "voice")
CONFIDENCE_THRESHOLD = 0.5  # The paper's: present when Y_true > 0.5.
NUM_GENRES, NUM_TRACKS = 157, 19466
VARIANTS = {"zsl": "FMA genres of the OpenMIC-2018 tracks with instrument tags, hash split"}


def instrument_tags(instruments=INSTRUMENTS) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """``(present tags, absent tags)``: ``instrument---<name>`` / ``no_instrument---<name>``."""
  return (tuple(f"instrument---{n}" for n in instruments),
          tuple(f"no_instrument---{n}" for n in instruments))


def audio_path(track_id: int) -> str:
  """FMA track id -> ``"000/000002.mp3"``."""
  name = f"{int(track_id):06d}"
  return f"{name[:3]}/{name}.mp3"


def read_fma_tracks(path: str) -> dict[int, tuple[list[int], str, str]]:
  """``tracks.csv`` (three header rows: column group, column name, ``track_id``) -> track id ->
  (genre ids of ``track.genres``, artist id, album id)."""
  with open(path, encoding="utf-8", newline="") as f:
    rows = csv.reader(f)
    try:
      groups, names, _ = next(rows), next(rows), next(rows)
    except StopIteration:
      raise UserError(f"{path} is not FMA's tracks.csv (fewer than three header rows).") from None
    columns = {pair: i for i, pair in enumerate(zip(groups, names))}
    wanted = [("track", "genres"), ("artist", "id"), ("album", "id")]
    if any(w not in columns for w in wanted):
      raise UserError(f"{path} is not FMA's tracks.csv (no track/genres, artist/id or album/id "
                      f"column).")
    genres, artist, album = (columns[w] for w in wanted)
    out = {}
    for number, row in enumerate(rows, start=4):
      if not row or not row[0].strip().isdigit():
        raise UserError(f"{path}: line {number} does not start with a track id.")
      out[int(row[0])] = ([int(g) for g in re.findall(r"\d+", row[genres])], row[artist],
                          row[album])
  return out


def read_fma_genres(path: str) -> dict[int, str]:
  """``genres.csv`` -> genre id -> title."""
  with open(path, encoding="utf-8", newline="") as f:
    rows = list(csv.DictReader(f))
  if rows and not {"genre_id", "title"} <= set(rows[0]):
    raise UserError(f"{path} is not FMA's genres.csv (no genre_id / title column).")
  return {int(r["genre_id"]): r["title"] for r in rows}


def read_openmic(npz_path: str, class_map_path: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
  """FMA track id -> (present bool ``[20]``, absent bool ``[20]``) in ``INSTRUMENTS`` order."""
  with open(class_map_path, encoding="utf-8") as f:
    class_map = json.load(f)
  if not isinstance(class_map, dict) or sorted(class_map) != sorted(INSTRUMENTS):
    raise UserError(f"{class_map_path} does not map OpenMIC-2018's 20 instruments.")
  try:
    data = np.load(npz_path, allow_pickle=False)  # Untrusted file: plain arrays only.
    try:
      y_true, y_mask, keys = (np.asarray(data[k]) for k in ("Y_true", "Y_mask", "sample_key"))
    finally:
      if hasattr(data, "close"):
        data.close()
  except (KeyError, ValueError, OSError, IndexError) as error:
    raise UserError(f"{npz_path} is not OpenMIC-2018's npz with Y_true, Y_mask and sample_key "
                    f"arrays ({error}).") from None
  if y_true.ndim != 2 or y_true.shape != y_mask.shape or len(keys) != len(y_true):
    raise UserError(f"{npz_path}: Y_true, Y_mask and sample_key do not have one row per clip.")
  order = [int(class_map[n]) for n in INSTRUMENTS]
  y_true, y_mask = y_true[:, order], y_mask[:, order].astype(bool)
  present = y_mask & (y_true > CONFIDENCE_THRESHOLD)
  absent = y_mask & ~(y_true > CONFIDENCE_THRESHOLD)
  return {int(str(k).split("_")[0]): (present[i], absent[i]) for i, k in enumerate(keys)}


class MusicrepFmaOpenmic(zero_shot_layouts.ZeroShotLayoutBuilder, skip_registration=True):
  """FMA-large clips of the OpenMIC tracks, genres + instrument tags (``musicrep_fma_openmic``);
  see the module docstring."""

  name = "musicrep_fma_openmic"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "FMA genres with OpenMIC-2018 instrument tags, 16 and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  EXPECTED_COUNTS = {"zsl": {"all": NUM_TRACKS}}
  KIND = "fma_openmic"

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str) -> Manifest:
    """The OpenMIC tracks with FMA genres and instrument tags (module docstring)."""
    del variant  # One variant.
    tracks = read_fma_tracks(layouts.find_file(manual_dir, TRACKS_CSV, "FMA's tracks.csv"))
    titles = read_fma_genres(layouts.find_file(manual_dir, GENRES_CSV, "FMA's genres.csv"))
    openmic = read_openmic(layouts.find_file(manual_dir, OPENMIC_NPZ, "openmic-2018.npz"),
                           layouts.find_file(manual_dir, CLASS_MAP, "OpenMIC's class-map.json"))
    ids = sorted(t for t in openmic if t in tracks and tracks[t][0])
    judged = {t for t in ids if openmic[t][0].any() or openmic[t][1].any()}
    genre_ids = sorted({g for t in judged for g in tracks[t][0]})
    unknown = [g for g in genre_ids if g not in titles]
    if unknown:
      raise UserError(f"Genre ids {unknown[:5]} of tracks.csv are not in genres.csv.")
    counts = collections.Counter(titles[g] for g in genre_ids)
    repeated = {title for title, n in counts.items() if n > 1}
    names = {g: f"{titles[g]} ({g})" if titles[g] in repeated else titles[g] for g in genre_ids}
    present_tags, absent_tags = instrument_tags()
    tag_names = [names[g] for g in genre_ids] + list(present_tags) + list(absent_tags)
    root = layouts.find_root(manual_dir, AUDIO_SUBDIRS, [audio_path(t) for t in ids[:50]])
    entries = []
    for t in ids:
      genres = [names[g] for g in tracks[t][0] if g in names]
      if not genres:
        continue
      present, absent = openmic[t]
      tags = (genres + [present_tags[i] for i in np.flatnonzero(present)]
              + [absent_tags[i] for i in np.flatnonzero(absent)])
      _, artist, album = tracks[t]
      entries.append(layouts.Entry(
          path=audio_path(t), full_path=os.path.join(root, audio_path(t)),
          split=zero_shot_layouts.hash_split(str(t)), tags=tuple(tags), artist=artist,
          album=album, track=str(t)))
    if not entries:
      raise UserError(f"No OpenMIC-2018 track of {manual_dir} has an FMA genre in tracks.csv.")
    manifest = layouts.build_manifest(entries, tag_names, VARIANTS["zsl"], manual_dir)
    if len(genre_ids) != NUM_GENRES:
      manifest = dataclasses.replace(manifest, warnings=manifest.warnings + (
          f"{len(genre_ids)} genres have instrument judgements; the paper has {NUM_GENRES}.",))
    return manifest
