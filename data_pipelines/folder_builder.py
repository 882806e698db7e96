"""TFDS builder for "a folder of audio files + a CSV manifest" (your own music collection).

Manifest (CSV with a header row; UTF-8, a BOM is fine):

==========  ========  ==========================================================================
column      needed    meaning
==========  ========  ==========================================================================
``path``    required  audio file, relative to the audio folder (any format libsndfile decodes)
``tags``    optional  ``;``-separated tag words; ``tag_names`` is the sorted union over all rows
``tags:G``  optional  ``;``-separated tags of the tag group ``G`` (``tags:genre``, ``tags:mood``,
                      ...): tags of the row like ``tags``, and members of group ``G``
``artist``  optional  artist name; ids are the index in the sorted unique names (-1 when blank)
``album``   optional  album name, same id rule
``track``   optional  track name, same id rule; clips of one track always share a split
``split``   optional  ``train``, ``validation`` (also ``valid``, ``val``, ``dev``) or ``test``
==========  ========  ==========================================================================

Tag groups (the similarity dimensions ``"tag:G"`` of the metric-learning task, papers 13 and 14)
come from the ``tags:G`` columns and/or a tag-group file (``tag_groups=FILE``, ``--tag-groups``;
format in ``tag_groups``); a tag in two groups is an error, a tag of the file that no row
carries is dropped with a warning. ``tempo=True`` (``--tempo``) estimates each clip's tempo
(``tempo_bpm``, ``manifest_builder``); it is off by default here (about 0.1 s of one core per
30 s of audio, some 60 % on top of decoding an mp3).

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
import os

import tensorflow_datasets as tfds

from musicrep_jax.data import schema as shard_schema
from musicrep_jax.data_pipelines import tag_groups as tag_groups_lib
from musicrep_jax.data_pipelines.manifest_builder import (Manifest, ManifestBuilder, Row,
                                                          stable_bucket)
from musicrep_jax.errors import UserError

SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation",
                 "val": "validation", "dev": "validation", "test": "test"}
ID_COLUMNS = ("artist", "album", "track")
GROUP_PREFIX = "tags:"  # A ``tags:GROUP`` column holds the tags of group GROUP.
HASH_SPLIT_PERCENT = (80, 10, 10)  # train / validation / test.


def hash_split(key: str) -> str:
  """A stable 80/10/10 split of ``key`` (sha256, identical across runs and machines)."""
  bucket = stable_bucket(key)
  train, validation, _ = HASH_SPLIT_PERCENT
  if bucket < train:
    return "train"
  return "validation" if bucket < train + validation else "test"


def parse_tags(cell: str | None) -> tuple[str, ...]:
  """``"rock; guitar;;"`` -> ``("rock", "guitar")``."""
  return tuple(t.strip() for t in (cell or "").split(";") if t.strip())


def confined_path(audio_dir: str, path: str, where: str, allow_outside: bool = False) -> str:
  """``audio_dir/path``, refusing a ``path`` that is absolute or leads out of ``audio_dir``
  (``..``, or a link inside it pointing elsewhere) unless ``allow_outside``: a manifest is input
  someone else may have written, and must not make ``prepare`` read files it was not pointed at.
  ``where`` names the row for the message."""
  full = os.path.join(audio_dir, path)
  if allow_outside:
    return full
  root = os.path.realpath(audio_dir)
  if os.path.isabs(path) or os.path.commonpath([root, os.path.realpath(full)]) != root:
    raise UserError(f"{where} names {path!r}, which is outside the audio folder {audio_dir}; "
                    "paths must be relative to --audio-dir (pass --allow-outside-audio-dir to "
                    "accept them).")
  return full


def read_manifest(manifest: str | os.PathLike, audio_dir: str | os.PathLike,
                  allow_outside_audio_dir: bool = False,
                  tag_groups: str | os.PathLike | None = None) -> Manifest:
  """Reads and validates the CSV manifest (see the module docstring for the columns) and the
  optional tag-group file ``tag_groups``.

  Rows repeating an earlier row's ``path`` are dropped (the first is kept) with a warning; paths
  must stay inside ``audio_dir`` (``confined_path``) unless ``allow_outside_audio_dir``.

  Raises:
    UserError: the manifest or audio folder is missing or the manifest is not UTF-8, it has no
      ``path`` column or no rows, a ``split`` value is not one of the known names, a path
      leads outside ``audio_dir``, a ``tags:G`` column names an invalid group, a tag is in two
      groups, or the tag-group file is invalid (``tag_groups.read_tag_group_file``).
  """
  manifest, audio_dir = os.fspath(manifest), os.fspath(audio_dir)
  if not os.path.isdir(audio_dir):
    raise UserError(f"The audio folder {audio_dir} does not exist (or is not a folder).")
  if not os.path.isfile(manifest):
    raise UserError(f"The manifest {manifest} does not exist.")
  try:
    with open(manifest, newline="", encoding="utf-8-sig") as f:
      reader = csv.DictReader(f)
      columns = [c.strip() for c in reader.fieldnames or []]
      raw = [{(k or "").strip(): (v or "").strip() for k, v in line.items()} for line in reader]
  except UnicodeDecodeError as e:
    raise UserError(f"The manifest {manifest} is not UTF-8 text (byte {e.object[e.start]:#04x} "
                    f"at offset {e.start}); save it as UTF-8.") from None
  if "path" not in columns:
    raise UserError(f"The manifest {manifest} has no 'path' column (its columns: "
                    f"{', '.join(columns) or 'none'}); the first line must be a header naming it.")
  raw = [line for line in raw if line.get("path")]
  if not raw:
    raise UserError(f"The manifest {manifest} lists no audio files (no row has a 'path').")
  group_columns = {c: tag_groups_lib.check_group_name(c[len(GROUP_PREFIX):],
                                                      f"Column {c!r} of {manifest}")
                   for c in columns if c.startswith(GROUP_PREFIX)}
  file_groups = (tag_groups_lib.read_tag_group_file(tag_groups) if tag_groups is not None
                 else {})
  first_row = {}
  for number, line in enumerate(raw):
    first_row.setdefault(line["path"], number)
  warnings = ()
  if len(first_row) < len(raw):
    repeated = [line["path"] for n, line in enumerate(raw) if first_row[line["path"]] != n]
    warnings = (f"{len(repeated)} manifest row(s) repeat an earlier row's path and were "
                f"dropped (the first row is kept), e.g. {', '.join(map(repr, repeated[:3]))}.",)
    raw = [line for n, line in enumerate(raw) if first_row[line["path"]] == n]

  id_names = {c: sorted({line[c] for line in raw if line.get(c)}) if c in columns else []
              for c in ID_COLUMNS}
  id_maps = {c: {name: i for i, name in enumerate(names)} for c, names in id_names.items()}
  split_key = "track" if "track" in columns else "path"
  rows = []
  assignment: dict[str, str] = {}
  for index, line in enumerate(raw):
    grouped: dict[str, str] = {}
    for column, group in group_columns.items():
      grouped = tag_groups_lib.merge_assignments(
          grouped, dict.fromkeys(parse_tags(line.get(column)), group),
          f"Row {index + 2} of {manifest}")
    assignment = tag_groups_lib.merge_assignments(assignment, grouped,
                                                  f"Row {index + 2} of {manifest}")
    if "split" in columns:
      split = SPLIT_ALIASES.get(line.get("split", "").lower())
      if split is None:
        raise UserError(f"Row {index + 2} of {manifest} has split {line.get('split', '')!r}; "
                        "expected train, validation (or valid/val/dev) or test.")
    else:
      split = hash_split(line.get(split_key) or line["path"])
    ids = {c: id_maps[c].get(line.get(c, ""), shard_schema.UNKNOWN_ID) for c in ID_COLUMNS}
    full_path = confined_path(audio_dir, line["path"], f"Row {index + 2} of {manifest}",
                              allow_outside_audio_dir)
    tags = tuple(dict.fromkeys(parse_tags(line.get("tags")) + tuple(grouped)))
    rows.append(Row(clip_id=index, path=line["path"], full_path=full_path, tags=tags,
                    split=split, **ids))
  tag_names = tuple(sorted({t for row in rows for t in row.tags}))
  unused = [t for t in file_groups if t not in tag_names]
  if unused:
    warnings += (f"The tag-group file {tag_groups} groups {len(unused)} tag(s) no row of the "
                 f"manifest carries, ignored: {', '.join(map(repr, unused[:5]))}"
                 f"{' ...' if len(unused) > 5 else ''}.",)
  assignment = tag_groups_lib.merge_assignments(
      assignment, {t: g for t, g in file_groups.items() if t in tag_names},
      f"The tag-group file {tag_groups} and the tags:GROUP columns of {manifest}")
  rule = "manifest column" if "split" in columns else f"hash of {split_key}"
  return Manifest(rows=tuple(rows), tag_names=tag_names, id_names=id_names, split_rule=rule,
                  source=manifest, warnings=warnings,
                  tag_groups=tag_groups_lib.group_indices(assignment, tag_names, manifest))


class MusicrepFolder(ManifestBuilder, skip_registration=True):
  """A folder of audio files + CSV manifest as a TFDS dataset (``musicrep_folder``)."""

  name = "musicrep_folder"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}

  def __init__(self, *, audio_dir: str | os.PathLike, manifest: str | os.PathLike,
               sample_rate: int = 22050, min_seconds: float = 1.0,
               allow_outside_audio_dir: bool = False,
               tag_groups: str | os.PathLike | None = None, **kwargs):
    """Reads the manifest (and ``tag_groups`` file) now (``UserError`` on problems); ``kwargs``
    go to ``ManifestBuilder`` (``tempo=True`` estimates tempo)."""
    audio_dir = os.path.abspath(os.fspath(audio_dir))
    manifest_path = os.path.abspath(os.fspath(manifest))
    super().__init__(
        manifest=read_manifest(manifest_path, audio_dir, allow_outside_audio_dir, tag_groups),
        sample_rate=sample_rate,
        min_seconds=min_seconds,
        description=f"Audio files from {audio_dir} listed in {manifest_path}.",
        metadata=dict(builder="folder", audio_dir=audio_dir, manifest=manifest_path), **kwargs)
