"""TFDS builder for "a folder of audio files + a CSV manifest" (your own music collection).

Manifest (CSV with a header row; UTF-8, a BOM is fine):

==========  ========  ==========================================================================
column      needed    meaning
==========  ========  ==========================================================================
``path``    required  audio file, relative to the audio folder (any format libsndfile decodes)
``tags``    optional  ``;``-separated tag words; ``tag_names`` is the sorted union over all rows
``artist``  optional  artist name; ids are the index in the sorted unique names (-1 when blank)
``album``   optional  album name, same id rule
``track``   optional  track name, same id rule; clips of one track always share a split
``split``   optional  ``train``, ``validation`` (also ``valid``, ``val``, ``dev``) or ``test``
==========  ========  ==========================================================================

Without a ``split`` column, each row goes to a split by a stable hash of its track (the ``track``
column, else the ``path``): ``int(sha256(key)[:8 hex], 16) % 100`` < 80 train, < 90 validation,
else test. The rule is the same on every machine and run, and never separates clips of a track.

Each file is decoded with ``audio_io.load_audio`` (mono, resampled to ``sample_rate``) and stored
as int16. Files that are missing, empty, unreadable/corrupt, or shorter than ``min_seconds`` are
skipped: ``builder.skipped`` lists them with the reason and ``builder.counts`` holds seen /
written / skipped per split. ``clip_id`` is the manifest row index (0-based, header excluded), so
skipped rows leave gaps. Records keep the manifest order within each split.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from data_pipelines import audio_io
from musicrep_jax import shard_schema
from musicrep_jax.errors import UserError

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test"}
ID_COLUMNS = ("artist", "album", "track")
HASH_SPLIT_PERCENT = (80, 10, 10)  # train / validation / test.


@dataclasses.dataclass(frozen=True)
class Row:
  """One manifest row, resolved: ``clip_id`` is its index, ids are -1 when unknown."""

  clip_id: int
  path: str  # As written in the manifest.
  full_path: str
  tags: tuple[str, ...]
  artist: int
  album: int
  track: int
  split: str


@dataclasses.dataclass(frozen=True)
class Manifest:
  rows: tuple[Row, ...]
  tag_names: tuple[str, ...]
  id_names: dict  # "artist" | "album" | "track" -> list[str] (index = id); [] when no column.
  split_rule: str  # "manifest column" or "hash of track" / "hash of path".


def hash_split(key: str) -> str:
  """A stable 80/10/10 split of ``key`` (sha256, identical across runs and machines)."""
  bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100
  train, validation, _ = HASH_SPLIT_PERCENT
  if bucket < train:
    return "train"
  return "validation" if bucket < train + validation else "test"


def parse_tags(cell: str | None) -> tuple[str, ...]:
  """``"rock; guitar;;"`` -> ``("rock", "guitar")``."""
  return tuple(t.strip() for t in (cell or "").split(";") if t.strip())


def read_manifest(manifest: str | os.PathLike, audio_dir: str | os.PathLike) -> Manifest:
  """Reads and validates the CSV manifest (see the module docstring for the columns).

  Raises:
    UserError: the manifest or audio folder is missing, it has no ``path`` column or no rows,
      or a ``split`` value is not one of the known names.
  """
  manifest, audio_dir = os.fspath(manifest), os.fspath(audio_dir)
  if not os.path.isdir(audio_dir):
    raise UserError(f"The audio folder {audio_dir} does not exist (or is not a folder).")
  if not os.path.isfile(manifest):
    raise UserError(f"The manifest {manifest} does not exist.")
  with open(manifest, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    columns = [c.strip() for c in reader.fieldnames or []]
    raw = [{(k or "").strip(): (v or "").strip() for k, v in line.items()} for line in reader]
  if "path" not in columns:
    raise UserError(f"The manifest {manifest} has no 'path' column (its columns: "
                    f"{', '.join(columns) or 'none'}); the first line must be a header naming it.")
  raw = [line for line in raw if line.get("path")]
  if not raw:
    raise UserError(f"The manifest {manifest} lists no audio files (no row has a 'path').")

  id_names = {c: sorted({line[c] for line in raw if line.get(c)}) if c in columns else []
              for c in ID_COLUMNS}
  id_maps = {c: {name: i for i, name in enumerate(names)} for c, names in id_names.items()}
  split_key = "track" if "track" in columns else "path"
  rows = []
  for index, line in enumerate(raw):
    if "split" in columns:
      split = SPLIT_ALIASES.get(line.get("split", "").lower())
      if split is None:
        raise UserError(f"Row {index + 2} of {manifest} has split {line.get('split', '')!r}; "
                        "expected train, validation (or valid/val/dev) or test.")
    else:
      split = hash_split(line.get(split_key) or line["path"])
    ids = {c: id_maps[c].get(line.get(c, ""), shard_schema.UNKNOWN_ID) for c in ID_COLUMNS}
    rows.append(Row(clip_id=index, path=line["path"],
                    full_path=os.path.join(audio_dir, line["path"]),
                    tags=parse_tags(line.get("tags")), split=split, **ids))
  tag_names = tuple(sorted({t for row in rows for t in row.tags}))
  rule = "manifest column" if "split" in columns else f"hash of {split_key}"
  return Manifest(rows=tuple(rows), tag_names=tag_names, id_names=id_names, split_rule=rule)


def probe(row: Row, min_seconds: float) -> str | None:
  """Why ``row``'s file must be skipped, from its header alone; None when it looks usable."""
  try:
    info = audio_io.probe_audio(row.full_path)
  except audio_io.AudioDecodeError as error:
    return error.reason
  seconds = info.frames / info.samplerate
  if seconds < min_seconds:
    return f"too short ({seconds:.2f} s < {min_seconds:g} s)"
  return None


def tracks_in_several_splits(rows) -> list[int]:
  """Track ids (>= 0) that appear in more than one split."""
  splits: dict[int, set] = {}
  for row in rows:
    if row.track >= 0:
      splits.setdefault(row.track, set()).add(row.split)
  return sorted(t for t, s in splits.items() if len(s) > 1)


class MusicrepFolder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A folder of audio files + CSV manifest as a TFDS dataset (``musicrep_folder``)."""

  name = "musicrep_folder"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  # TFDS looks for a checksums file next to the builder's code through `code_path`, which needs
  # the `importlib_resources` backport (not installed on Python >= 3.9); there is nothing to
  # download, so there are no checksums.
  code_path = None

  def __init__(self, *, audio_dir: str | os.PathLike, manifest: str | os.PathLike,
               sample_rate: int = 22050, min_seconds: float = 1.0, workers: int | None = None,
               progress: bool = True, **kwargs):
    """Reads the manifest now (``UserError`` on problems); ``kwargs`` go to TFDS (``data_dir``)."""
    self._audio_dir = os.path.abspath(os.fspath(audio_dir))
    self._manifest_path = os.path.abspath(os.fspath(manifest))
    self._manifest = read_manifest(self._manifest_path, self._audio_dir)
    self._tag_index = {tag: i for i, tag in enumerate(self._manifest.tag_names)}
    self._sample_rate = int(sample_rate)
    self._min_seconds = float(min_seconds)
    self._workers = workers or audio_io.default_workers()
    self._progress = progress
    self.counts = {s: {"seen": 0, "written": 0, "skipped": 0} for s in SPLITS}
    self.skipped: list[dict] = []  # {"clip_id", "path", "split", "reason"}, manifest order.
    self.warnings: list[str] = []
    self.audio_samples = 0  # Total samples written.
    overlap = tracks_in_several_splits(self._manifest.rows)
    if overlap:
      names = self._manifest.id_names["track"]
      self.warnings.append(f"{len(overlap)} track(s) appear in several splits of the manifest, "
                           f"e.g. {', '.join(repr(names[t]) for t in overlap[:3])}.")
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    metadata = tfds.core.MetadataDict(
        builder="folder",
        sample_rate=self._sample_rate,
        tag_names=list(self._manifest.tag_names),
        tag_groups={},
        extra_fields=[],
        audio_dir=self._audio_dir,
        manifest=self._manifest_path,
        min_seconds=self._min_seconds,
        split_rule=self._manifest.split_rule,
        artist_names=self._manifest.id_names["artist"],
        album_names=self._manifest.id_names["album"],
        track_names=self._manifest.id_names["track"],
    )
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Audio files from {self._audio_dir} listed in {self._manifest_path}.",
        features=tfds.features.FeaturesDict(
            shard_schema.core_features(len(self._manifest.tag_names))),
        metadata=metadata,
        disable_shuffling=True,  # Manifest order within each split.
    )

  def _split_generators(self, dl_manager):
    """Probes every file's header, then declares the splits that have a usable file.

    TFDS cannot write an empty split, so a split whose files are all skipped is left out.
    """
    del dl_manager  # Nothing to download.
    rows = self._manifest.rows
    reasons = audio_io.map_in_threads(lambda row: probe(row, self._min_seconds), rows,
                                      self._workers, window=64)
    usable = {s: [] for s in SPLITS}
    for row, reason in zip(rows, self._bar(reasons, len(rows), "Checking audio files")):
      self.counts[row.split]["seen"] += 1
      if reason is None:
        usable[row.split].append(row)
      else:
        self._skip(row, reason)
    if not any(usable.values()):
      raise UserError(f"None of the {len(rows)} files in {self._manifest_path} could be used "
                      f"(first problem: {self.skipped[0]['path']}: {self.skipped[0]['reason']}).")
    return {s: self._generate_examples(usable[s]) for s in SPLITS if usable[s]}

  def _generate_examples(self, rows: list[Row]) -> Iterator[tuple[int, dict]]:
    decoded = audio_io.map_in_threads(self._decode, rows, self._workers)
    for row, audio in zip(rows, self._bar(decoded, len(rows), f"Decoding {rows[0].split}")):
      if isinstance(audio, str):
        self._skip(row, audio)
        continue
      self.counts[row.split]["written"] += 1
      self.audio_samples += len(audio)
      yield row.clip_id, self._record(row, audio)

  def _decode(self, row: Row) -> np.ndarray | str:
    """Row -> int16 [samples] at the dataset rate, or the reason it cannot be used."""
    try:
      audio = audio_io.load_audio(row.full_path, self._sample_rate)
    except audio_io.AudioDecodeError as error:
      return error.reason
    if audio.shape[0] < self._min_seconds * self._sample_rate:
      return f"too short ({audio.shape[0] / self._sample_rate:.2f} s < {self._min_seconds:g} s)"
    return shard_schema.float_to_pcm16(audio)

  def _record(self, row: Row, audio: np.ndarray) -> dict:
    tags = np.zeros(len(self._manifest.tag_names), np.uint8)
    tags[[self._tag_index[tag] for tag in row.tags]] = 1
    return {"audio": audio, "tags": tags, "clip_id": row.clip_id, "track": row.track,
            "album": row.album, "artist": row.artist, "path": row.path}

  def _skip(self, row: Row, reason: str) -> None:
    self.counts[row.split]["skipped"] += 1
    self.skipped.append({"clip_id": row.clip_id, "path": row.path, "split": row.split,
                         "reason": reason})

  def _bar(self, iterable, total: int, desc: str):
    return tqdm.tqdm(iterable, total=total, desc=desc, unit=" files", disable=not self._progress,
                     dynamic_ncols=True)
