"""The shared TFDS builder behind every "list of audio files -> int16 shards" dataset.

A dataset module turns its own layout (a CSV manifest, MagnaTagATune's annotation file, Speech
Commands' word folders, ...) into a :class:`Manifest` of rows (:class:`Row`), then subclasses
:class:`ManifestBuilder` with its TFDS ``name`` and ``VERSION``. The builder:

* probes every file's header in threads, skipping missing, empty, unreadable or too-short files;
* decodes the usable ones with ``audio_io.load_audio`` (mono, resampled to ``sample_rate``) in
  threads and stores int16 records in the ``shard_schema`` format, manifest order per split;
* counts ``seen`` / ``written`` / ``skipped`` per split (``seen = written + skipped``) and lists
  every skipped file with its reason in ``builder.skipped`` (``prepare`` writes them into
  ``prepare_report.json``);
* skips a file that holds less audio than its header declares (``audio_io.TruncatedAudioError``:
  a cut download or copy) with one warning naming it, and counts them in ``builder.truncated``
  (a part of the skipped files);
* optionally checks, right after probing (before any decoding), that each split has the number
  of usable files a paper's split has (``expected_counts``): a mismatch is a ``UserError``, or a
  warning with ``strict_counts=False``;
* optionally estimates each clip's tempo (``tempo=True``; the default of the builder class,
  ``TEMPO_BY_DEFAULT``) with ``frontends.tempo.estimate_bpm`` in the decoding threads and stores
  it as the ``tempo_bpm`` field (float32 BPM, NaN when no beat is found; listed in
  ``metadata["extra_fields"]``, the estimator in ``metadata["tempo"]``);
* writes the manifest's ``tag_groups`` (group -> tag indices) into the metadata;
* optionally caches each decoded file (``decode_cache=True``) as ``.npy`` under
  ``<data_dir>/<name>[/<config>]/.decode_cache-<version>/``, so a build that was killed and is
  started again decodes only the files it had not finished; the cache is deleted when the
  build completes. It costs as much disk as the shards while the build runs.

``clip_id`` is the row's ``clip_id`` (its index in the manifest), so skipped rows leave gaps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import threading
import uuid
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from musicrep_jax.data import audio_io
from musicrep_jax.data import schema as shard_schema
from musicrep_jax.errors import UserError
from musicrep_jax.frontends import tempo as tempo_lib

SPLITS = ("train", "validation", "test")


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
  # Set when the dataset's layout already knows the file is unusable (e.g. MagnaTagATune's three
  # broken mp3s): the row is reported as skipped with this reason without being opened.
  skip_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Manifest:
  rows: tuple[Row, ...]
  tag_names: tuple[str, ...]
  id_names: dict  # "artist" | "album" | "track" -> list[str] (index = id); [] when no column.
  split_rule: str  # How rows got their split, in words ("manifest column", "hash of track").
  source: str = ""  # What the rows were read from (a file or folder), for messages.
  warnings: tuple[str, ...] = ()  # Problems found while reading it (e.g. duplicate rows).
  # Group name -> indices into tag_names (the similarity dimensions, ``tag_groups`` module).
  tag_groups: dict = dataclasses.field(default_factory=dict)


def probe(row: Row, min_seconds: float) -> str | None:
  """Why ``row``'s file must be skipped, from its header alone; None when it looks usable."""
  if row.skip_reason:
    return row.skip_reason
  try:
    info = audio_io.probe_audio(row.full_path)
  except audio_io.AudioDecodeError as error:
    return error.reason
  truncated = audio_io.header_truncation(row.full_path, info)
  if truncated:
    return truncated
  seconds = info.frames / info.samplerate
  if seconds < min_seconds:
    return f"too short ({seconds:.2f} s < {min_seconds:g} s)"
  return None


def stable_bucket(key: str) -> int:
  """``int(sha256(key)[:8 hex], 16) % 100``: the same bucket on every machine and run."""
  return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100


def keys_in_several_splits(pairs) -> list:
  """Keys (tracks, speakers, locations) of ``(key, split)`` pairs that occur in several splits,
  sorted."""
  splits: dict = {}
  for key, split in pairs:
    splits.setdefault(key, set()).add(split)
  return sorted(k for k, s in splits.items() if len(s) > 1)


def tracks_in_several_splits(rows) -> list[int]:
  """Track ids (>= 0) that appear in more than one split."""
  return keys_in_several_splits((row.track, row.split) for row in rows if row.track >= 0)


def count_mismatches(actual: dict, expected: dict) -> list[str]:
  """``"train: 15,240 usable files, the paper's split has 15,244"`` for every split whose
  ``expected`` count (None = unchecked) differs from ``actual``."""
  return [f"{split}: {actual.get(split, 0):,} usable files, the paper's split has {want:,}"
          for split, want in expected.items()
          if want is not None and actual.get(split, 0) != want]


class ManifestBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Writes a :class:`Manifest`'s audio as shards. Subclasses set ``name`` and ``VERSION``
  (and ``RELEASE_NOTES``) and call ``super().__init__(manifest=..., ...)``."""

  # TFDS looks for a checksums file next to the builder's code through `code_path`, which needs
  # the `importlib_resources` backport (not installed on Python >= 3.9); there is nothing to
  # download, so there are no checksums.
  code_path = None
  TEMPO_BY_DEFAULT = False  # Whether `tempo=None` estimates tempo (the MSD builder's is True).

  def __init__(self, *, manifest: Manifest, sample_rate: int, min_seconds: float = 1.0,
               description: str = "", metadata: dict | None = None,
               workers: int | None = None, progress: bool = True,
               expected_counts: dict | None = None, strict_counts: bool = True,
               decode_cache: bool = False, tempo: bool | None = None, **kwargs):
    """``metadata`` is added to the dataset's metadata (``builder`` names the source kind);
    ``expected_counts`` (split -> int or None) are checked after probing, fatally when
    ``strict_counts``; ``decode_cache`` makes the build resumable and ``tempo`` adds the
    ``tempo_bpm`` field (None: ``TEMPO_BY_DEFAULT``; module docstring); ``kwargs`` go to TFDS
    (``data_dir``, ``config``)."""
    self._manifest = manifest
    self.tempo = self.TEMPO_BY_DEFAULT if tempo is None else bool(tempo)
    self._expected_counts = dict(expected_counts or {})
    self._strict_counts = bool(strict_counts)
    self._decode_cache = bool(decode_cache)
    self._cache_lock = threading.Lock()
    self.cached_files = 0  # Files taken from the decode cache of an earlier, unfinished run.
    self._description = description or f"Audio files listed in {manifest.source}."
    self._extra_metadata = dict(metadata or {})
    self._tag_index = {tag: i for i, tag in enumerate(self._manifest.tag_names)}
    self._sample_rate = int(sample_rate)
    self._min_seconds = float(min_seconds)
    self._workers = workers or audio_io.default_workers()
    self._progress = progress
    self.counts = {s: {"seen": 0, "written": 0, "skipped": 0} for s in SPLITS}
    self.skipped: list[dict] = []  # {"clip_id", "path", "split", "reason"}, manifest order.
    self.warnings: list[str] = list(manifest.warnings)
    self.truncated = 0  # Skipped files that hold less audio than their header declares.
    self.audio_samples = 0  # Total samples written.
    overlap = tracks_in_several_splits(self._manifest.rows)
    if overlap:
      names = self._manifest.id_names["track"]
      self.warnings.append(f"{len(overlap)} track(s) appear in several splits of the manifest, "
                           f"e.g. {', '.join(repr(names[t]) for t in overlap[:3])}.")
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    tempo_metadata = {"tempo": tempo_lib.ESTIMATOR} if self.tempo else {}
    metadata = tfds.core.MetadataDict(
        sample_rate=self._sample_rate,
        tag_names=list(self._manifest.tag_names),
        tag_groups={name: [int(i) for i in columns]
                    for name, columns in self._manifest.tag_groups.items()},
        extra_fields=[shard_schema.TEMPO_FIELD] if self.tempo else [],
        **tempo_metadata,
        min_seconds=self._min_seconds,
        split_rule=self._manifest.split_rule,
        artist_names=list(self._manifest.id_names.get("artist", [])),
        album_names=list(self._manifest.id_names.get("album", [])),
        track_names=list(self._manifest.id_names.get("track", [])),
        **self._extra_metadata,
    )
    return tfds.core.DatasetInfo(
        builder=self,
        description=self._description,
        features=tfds.features.FeaturesDict(self._features()),
        metadata=metadata,
        disable_shuffling=True,  # Manifest order within each split.
    )

  def _features(self) -> dict:
    features = shard_schema.core_features(len(self._manifest.tag_names))
    if self.tempo:
      features[shard_schema.TEMPO_FIELD] = shard_schema.tempo_feature()
    return features

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
      raise UserError(f"None of the {len(rows)} files in {self._manifest.source} could be used "
                      f"(first problem: {self.skipped[0]['path']}: {self.skipped[0]['reason']}).")
    self._check_counts({s: len(r) for s, r in usable.items()})
    return {s: self._generate_examples(usable[s]) for s in SPLITS if usable[s]}

  def _check_counts(self, usable: dict) -> None:
    """Compares the usable files per split with ``expected_counts`` (before any decoding)."""
    problems = count_mismatches(usable, self._expected_counts)
    if not problems:
      return
    message = (f"The split sizes differ from the paper's ({'; '.join(problems)}); the skipped "
               "files and their reasons are in prepare_report.json.")
    if self._strict_counts:
      raise UserError(message + " Complete the copy, or pass --allow-count-mismatch to build "
                      "anyway.")
    self.warnings.append(message)

  def _generate_examples(self, rows: list[Row]) -> Iterator[tuple[int, dict]]:
    decoded = audio_io.map_in_threads(self._decode_clip, rows, self._workers)
    for row, clip in zip(rows, self._bar(decoded, len(rows), f"Decoding {rows[0].split}")):
      if isinstance(clip, str):
        self._skip(row, clip)
        continue
      audio, bpm = clip
      self.counts[row.split]["written"] += 1
      self.audio_samples += len(audio)
      yield row.clip_id, self._record(row, audio, bpm)

  def _decode_clip(self, row: Row) -> tuple[np.ndarray, float | None] | str:
    """``(int16 audio, tempo in BPM or None when tempo is off)``, or why the row is unusable.
    Runs in the decoding threads, so the tempo estimate is parallel too."""
    audio = self._decode(row)
    if isinstance(audio, str) or not self.tempo:
      return audio if isinstance(audio, str) else (audio, None)
    return audio, tempo_lib.estimate_bpm(shard_schema.pcm16_to_float(audio), self._sample_rate)

  def _decode(self, row: Row) -> np.ndarray | str:
    """Row -> int16 [samples] at the dataset rate, or the reason it cannot be used.

    With the decode cache, a file decoded by an earlier unfinished run is read back from its
    ``.npy`` instead, and a newly decoded one is saved (atomically: write, then rename).
    """
    cache_path = self._cache_path(row) if self._decode_cache else None
    if cache_path and os.path.exists(cache_path):
      try:
        audio = np.load(cache_path)
        with self._cache_lock:
          self.cached_files += 1
        return audio
      except (OSError, ValueError):  # Unreadable cache entry: decode again.
        pass
    try:
      audio = audio_io.load_audio(row.full_path, self._sample_rate)
    except audio_io.AudioDecodeError as error:
      return error.reason
    if audio.shape[0] < self._min_seconds * self._sample_rate:
      return f"too short ({audio.shape[0] / self._sample_rate:.2f} s < {self._min_seconds:g} s)"
    pcm = shard_schema.float_to_pcm16(audio)
    if cache_path:
      partial = f"{cache_path}.{uuid.uuid4().hex}.partial.npy"
      np.save(partial, pcm)
      os.replace(partial, cache_path)
    return pcm

  @property
  def decode_cache_dir(self) -> str:
    """``<data_dir>/<name>[/<config>]/.decode_cache-<version>`` (hidden from shard discovery)."""
    return os.path.join(os.path.dirname(os.fspath(self.data_path)),
                        f".decode_cache-{self.version}")

  def _cache_path(self, row: Row) -> str | None:
    """The cache file of ``row``: keyed by its path, size, mtime and the sample rate, so a
    changed file or rate never reads a stale entry (None when the file is gone)."""
    try:
      stat = os.stat(row.full_path)
    except OSError:
      return None
    key = f"{row.full_path}|{stat.st_size}|{stat.st_mtime_ns}|{self._sample_rate}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
    return os.path.join(self.decode_cache_dir, f"{row.clip_id}-{digest}.npy")

  def download_and_prepare(self, *args, **kwargs):
    """TFDS's build, with the decode cache created first and deleted after success."""
    if self._decode_cache:
      os.makedirs(self.decode_cache_dir, exist_ok=True)
    super().download_and_prepare(*args, **kwargs)
    if self._decode_cache:
      if self.cached_files:
        self.warnings.append(f"Resumed an unfinished build: {self.cached_files} file(s) came "
                             "from its decode cache.")
      shutil.rmtree(self.decode_cache_dir, ignore_errors=True)

  def _record(self, row: Row, audio: np.ndarray, bpm: float | None = None) -> dict:
    tags = np.zeros(len(self._manifest.tag_names), np.uint8)
    tags[[self._tag_index[tag] for tag in row.tags]] = 1
    record = {"audio": audio, "tags": tags, "clip_id": row.clip_id, "track": row.track,
              "album": row.album, "artist": row.artist, "path": row.path}
    if self.tempo:
      record[shard_schema.TEMPO_FIELD] = np.float32(bpm)
    return record

  def _skip(self, row: Row, reason: str) -> None:
    if reason.startswith(audio_io.TRUNCATED):
      self.truncated += 1
      self.warnings.append(f"{row.path} is {reason}; skipped.")
    self.counts[row.split]["skipped"] += 1
    self.skipped.append({"clip_id": row.clip_id, "path": row.path, "split": row.split,
                         "reason": reason})

  def _bar(self, iterable, total: int, desc: str):
    return tqdm.tqdm(iterable, total=total, desc=desc, unit=" files", disable=not self._progress,
                     dynamic_ncols=True)
