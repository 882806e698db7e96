"""dim-sim: the human similarity judgements of paper 13's user study (papers.md 14.5-14.6), read
from a user's local copy, and its triplet-agreement metric.

dim-sim (Zenodo 3889149, CC BY-NC 4.0, distributed separately: not shipped here) holds 4,000
triplets of 3-s MSD clips rated by 5-12 listeners ("which of song1 / song2 is more similar to the
anchor?"); the clean release keeps the 879 triplets whose majority / total >= 0.9. Paper 13
scores a model by the fraction of triplets where the clip most raters chose is closer to the
anchor: ``agreement`` (``ops.retrieval.triplet_accuracy`` on the triplets re-ordered as
(anchor, chosen, other)).

File format (papers.md 14.6 [page]): the CSV release, one row per triplet, with the columns
``COLUMNS`` (any order; extra columns, such as a leading pandas index, are ignored). The JSON
release's layout is [unknown] and not read: ``UserError`` pointing at the CSV. Parsing is strict,
each problem one line naming the file, line and column: a missing column, an empty or
non-numeric value, a negative start or vote, a track id that is not letters / digits / ``_-``
(ids name audio files), a duplicate ``triplet_id``, a clip length that differs between rows,
``*_start_samples / sampling_rate`` more than ``START_SLACK_S`` from ``*_start_seconds`` (catches
shifted columns). Starts are read from ``*_start_seconds``.

A triplet with equal votes has no human answer and is dropped (counted in ``skipped``);
``min_consensus`` drops triplets whose majority / total is below it (0.9 turns the raw release
into the clean one; 0 keeps every rated triplet).

Audio (``clip_audio``): the user's MSD audio, one file per referenced track id whose file name
stem is the id (``TRAAAAW128F429D538.mp3``), anywhere under a folder; each clip is read from its
start for ``clip_seconds`` (zero-padded when the file ends earlier).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import pathlib
import re
from typing import Optional

import numpy as np

from musicrep_jax.data.audio_io import AudioDecodeError, load_audio
from musicrep_jax.errors import UserError
from musicrep_jax.ops.retrieval import triplet_accuracy

COLUMNS = ("triplet_id", "anchor_id", "anchor_start_seconds", "anchor_start_samples",
           "song1_id", "song1_start_seconds", "song1_start_samples", "song2_id",
           "song2_start_seconds", "song2_start_samples", "sampling_rate", "clip_lengths_seconds",
           "clip_lengths_samples", "song1_vote", "song2_vote")
ROLES = ("anchor", "song1", "song2")
START_SLACK_S = 0.01
_ID = re.compile(r"[A-Za-z0-9_-]+")


@dataclasses.dataclass(frozen=True)
class DimSim:
  """Parsed dim-sim triplets.

  Attributes:
    clips: the distinct clips, ``(track_id, start_seconds)`` each.
    clip_seconds: length of every clip (3 s in the release).
    triplets: int64 ``[T, 3]`` rows of ``clips``: (anchor, the clip most raters chose, the
      other one).
    triplet_ids: ``[T]`` the file's ``triplet_id`` of each kept triplet.
    consensus: float64 ``[T]`` majority / total votes.
    skipped: ``{"tied": n, "below_consensus": n}``.
  """

  clips: tuple
  clip_seconds: float
  triplets: np.ndarray
  triplet_ids: tuple
  consensus: np.ndarray
  skipped: dict

  @property
  def track_ids(self) -> tuple:
    return tuple(dict.fromkeys(track for track, _ in self.clips))


def _number(row: dict, column: str, where: str, *, integer: bool = False) -> float:
  text = (row.get(column) or "").strip()
  try:
    value = float(text)
  except ValueError:
    raise UserError(f"{where}: column {column} is {text!r}, not a number.") from None
  if not math.isfinite(value) or value < 0:
    raise UserError(f"{where}: column {column} is {text!r}; it must be a finite number >= 0.")
  if integer and value != int(value):
    raise UserError(f"{where}: column {column} is {text!r}, not a whole number.")
  return value


def _track_id(row: dict, column: str, where: str) -> str:
  text = (row.get(column) or "").strip()
  if not _ID.fullmatch(text):
    raise UserError(f"{where}: column {column} is {text!r}; a track id is letters, digits, "
                    "'_' or '-' (MSD ids such as TRAAAAW128F429D538).")
  return text


def load_dimsim(path: str | os.PathLike, *, min_consensus: float = 0.0) -> DimSim:
  """Reads a dim-sim CSV (module docstring) -> ``DimSim``; ``UserError`` (one line) on any
  problem."""
  path = pathlib.Path(path)
  if not 0.0 <= min_consensus <= 1.0:
    raise UserError(f"dimsim min_consensus={min_consensus} must be in [0, 1].")
  if not path.is_file():
    raise UserError(f"dim-sim file {path} does not exist (download the CSV release from "
                    "Zenodo 3889149 and point the config at it).")
  with open(path, newline="", encoding="utf-8-sig") as f:
    try:
      first = f.read(1)
      if first and first in "[{":
        raise UserError(f"{path} looks like the JSON release; give the CSV release of dim-sim "
                        "(its JSON layout is not read).")
      f.seek(0)
      rows = list(csv.DictReader(f))
      header = rows[0].keys() if rows else []
    except (csv.Error, UnicodeDecodeError) as error:
      raise UserError(f"{path} is not a readable CSV file ({error}).") from None
  missing = [c for c in COLUMNS if c not in header]
  if not rows or missing:
    raise UserError(f"{path} is not a dim-sim CSV: " + (
        f"missing column(s) {', '.join(missing)}." if rows else "no triplet rows."))
  clip_index, seen_ids = {}, set()
  triplets, ids, consensus = [], [], []
  skipped = {"tied": 0, "below_consensus": 0}
  clip_seconds = None
  for line, row in enumerate(rows, start=2):
    where = f"{path}:{line}"
    if None in row:
      raise UserError(f"{where}: more fields than the header has columns.")
    triplet_id = (row["triplet_id"] or "").strip()
    if not triplet_id or triplet_id in seen_ids:
      raise UserError(f"{where}: triplet_id {triplet_id!r} is empty or repeated.")
    seen_ids.add(triplet_id)
    rate = _number(row, "sampling_rate", where, integer=True)
    length = _number(row, "clip_lengths_seconds", where)
    if rate <= 0 or length <= 0:
      raise UserError(f"{where}: sampling_rate and clip_lengths_seconds must be positive.")
    if clip_seconds is None:
      clip_seconds = length
    elif abs(length - clip_seconds) > 1e-6:
      raise UserError(f"{where}: clip_lengths_seconds {length:g} differs from the first row's "
                      f"{clip_seconds:g}; every dim-sim clip has one length.")
    rows_of_clips = []
    for role in ROLES:
      track = _track_id(row, f"{role}_id", where)
      start = _number(row, f"{role}_start_seconds", where)
      samples = _number(row, f"{role}_start_samples", where, integer=True)
      if abs(samples / rate - start) > START_SLACK_S:
        raise UserError(f"{where}: {role}_start_samples / sampling_rate = {samples / rate:.3f} s "
                        f"but {role}_start_seconds = {start:g} s.")
      rows_of_clips.append(clip_index.setdefault((track, start), len(clip_index)))
    votes = [_number(row, f"song{k}_vote", where, integer=True) for k in (1, 2)]
    if votes[0] == votes[1]:
      skipped["tied"] += 1
      continue
    share = max(votes) / sum(votes)
    if share < min_consensus:
      skipped["below_consensus"] += 1
      continue
    anchor, song1, song2 = rows_of_clips
    triplets.append((anchor, song1, song2) if votes[0] > votes[1] else (anchor, song2, song1))
    ids.append(triplet_id)
    consensus.append(share)
  if not triplets:
    raise UserError(f"{path}: no triplet is left with a majority (tied: {skipped['tied']}, "
                    f"below min_consensus {min_consensus:g}: {skipped['below_consensus']}).")
  return DimSim(clips=tuple(clip_index), clip_seconds=float(clip_seconds),
                triplets=np.asarray(triplets, np.int64), triplet_ids=tuple(ids),
                consensus=np.asarray(consensus, np.float64), skipped=skipped)


def find_audio(dimsim: DimSim, audio_dir: str | os.PathLike) -> dict:
  """``{track_id: path}``: the file under ``audio_dir`` (recursive) whose stem is each track id
  of ``dimsim``. ``UserError`` naming the first missing ids, or an id with two files."""
  audio_dir = pathlib.Path(audio_dir)
  if not audio_dir.is_dir():
    raise UserError(f"dim-sim audio folder {audio_dir} does not exist.")
  wanted, found = set(dimsim.track_ids), {}
  for path in sorted(audio_dir.rglob("*")):
    if path.is_file() and path.stem in wanted:
      if path.stem in found:
        raise UserError(f"two audio files for track {path.stem}: {found[path.stem]} and {path}.")
      found[path.stem] = path
  missing = sorted(wanted - set(found))
  if missing:
    raise UserError(f"{len(missing)} of the {len(wanted)} dim-sim tracks have no audio file "
                    f"(named TRACK_ID.ext) under {audio_dir}: {', '.join(missing[:5])}"
                    f"{' ...' if len(missing) > 5 else ''}.")
  return found


def clip_audio(dimsim: DimSim, audio_dir: str | os.PathLike, sample_rate: int,
               clip_samples: Optional[int] = None) -> np.ndarray:
  """float32 ``[num_clips, clip_samples]``: each clip of ``dimsim.clips`` decoded at
  ``sample_rate`` from its start (``clip_samples`` default: ``clip_seconds`` of samples);
  zero-padded past the end of its file. Each track is decoded once."""
  paths = find_audio(dimsim, audio_dir)
  length = clip_samples or int(round(dimsim.clip_seconds * sample_rate))
  out = np.zeros((len(dimsim.clips), length), np.float32)
  by_track = {}
  for row, (track, start) in enumerate(dimsim.clips):
    by_track.setdefault(track, []).append((row, start))
  for track, clips in by_track.items():
    try:
      audio = load_audio(paths[track], sample_rate)
    except AudioDecodeError as error:
      raise UserError(f"dim-sim track {track}: {error}") from None
    for row, start in clips:
      first = int(round(start * sample_rate))
      if first >= len(audio):
        raise UserError(f"dim-sim clip {track} at {start:g} s starts after the end of "
                        f"{paths[track]} ({len(audio) / sample_rate:.2f} s).")
      piece = audio[first:first + length]
      out[row, :len(piece)] = piece
  return out


def agreement(clip_embeddings, dimsim: DimSim, *, metric: str = "euclidean", mask=None) -> float:
  """Paper 13's user-triplet accuracy: the fraction of ``dimsim`` triplets where the clip most
  raters chose is strictly closer to the anchor. ``clip_embeddings`` ``[num_clips, D]`` in the
  order of ``dimsim.clips``; ``mask`` an optional ``[D]`` sub-space."""
  clip_embeddings = np.asarray(clip_embeddings)
  if clip_embeddings.ndim != 2 or clip_embeddings.shape[0] != len(dimsim.clips):
    raise ValueError(f"need one embedding row per dim-sim clip ({len(dimsim.clips)}); got "
                     f"{clip_embeddings.shape}")
  return triplet_accuracy(clip_embeddings, dimsim.triplets, metric=metric, mask=mask)
