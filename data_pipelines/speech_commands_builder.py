"""TFDS builder for Google's Speech Commands (v0.01 or v0.02) read from a local copy
(``manual_dir``) in the dataset's own layout; paper 6's keyword spotting (papers.md 1.1, 7.2).

Layout (as unpacked from ``speech_commands_v0.0{1,2}.tar.gz``)::

    MANUAL_DIR/
      <word>/<speaker>_nohash_<n>.wav     1-s (or shorter) 16 kHz mono utterances
      validation_list.txt                 one <word>/<file>.wav per line
      testing_list.txt                    one <word>/<file>.wav per line
      _background_noise_/*.wav            minutes-long noise recordings

Splits are the official lists: a file in ``validation_list.txt`` is validation, in
``testing_list.txt`` test, every other file of a word folder train (the lists are made by a hash
of the speaker, so speakers do not cross splits; a warning names any that do). A listed file
that is not on disk is kept as a row and reported as skipped ("missing file"); corrupt or empty
files are skipped with their reason (``prepare_report.json``).

Classes (``classes``):

* ``"all"`` (default): every word folder is a class (35 in v0.02, 30 in v0.01) and
  ``_background_noise_`` is left out. This is the journal code's protocol that papers.md 7.2
  documents for paper 6 (v0.02, 35 words, "background noise excluded"); the NIPS workshop paper
  must have used v0.01, with a class set papers.md marks [unknown].
* ``"12"``: the TensorFlow tutorial / Kaggle protocol: ``_silence_``, ``_unknown_`` and the ten
  commands yes, no, up, down, left, right, on, off, stop, go (in that order). Every other word
  is ``_unknown_`` (all of them are kept; no subsampling). ``_silence_`` clips are the
  non-overlapping 1-s chunks of the ``_background_noise_`` files, each assigned to a split by a
  stable hash of ``"<file>#<chunk>"`` (80/10/10), with ``path`` ``_background_noise_/<file>#<k>``.

Records: audio mono at ``sample_rate`` (default 22,050 Hz, the journal code's rate; the files
are 16 kHz), one-hot ``tags`` over the classes (``metadata["single_label"] = True``),
``artist`` = speaker id (index into ``metadata["artist_names"]``; -1 for silence), ``album`` and
``track`` -1. Clips shorter than 1 s are stored as they are; the input pipeline zero-pads them
at the end (the journal code repeats samples with ``np.repeat`` instead, papers.md 7.2).
``min_seconds`` defaults to 0 so that no utterance is dropped for being short.

Counts (``expected_counts="paper"``, the default): a copy of **v0.02** (recognised by any of the
five words v0.01 lacks: ``V2_ONLY_WORDS``) is checked, right after probing and before any
decoding, against the official split of 105,829 utterances: **84,843 / 9,981 / 11,005**
(papers.md 1.1; ``V2_COUNTS``); with ``classes="12"`` the silence chunks of each split are added
to it. A mismatch (a partial or damaged copy) is a ``UserError`` naming each split, or a warning
in the report with ``strict_counts=False`` (``--allow-count-mismatch``). A v0.01 copy is not
checked (the papers' counts are v0.02's); a dict checks those counts (tests use miniature
copies), None nothing.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow_datasets as tfds

from musicrep_jax.data import audio_io
from musicrep_jax.data_pipelines import prepare
from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines.manifest_builder import (Manifest, ManifestBuilder, Row,
                                             keys_in_several_splits, stable_bucket)
from musicrep_jax.data import schema as shard_schema
from musicrep_jax.errors import UserError

BACKGROUND = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
CLASS_SETS = ("all", "12")
SILENCE_SPLIT_PERCENT = (80, 10, 10)  # train / validation / test of the silence chunks.
# The official v0.02 split of its 105,829 word utterances (papers.md 1.1).
V2_COUNTS = {"train": 84843, "validation": 9981, "test": 11005}
V2_ONLY_WORDS = ("backward", "follow", "forward", "learn", "visual")  # Not in v0.01.
LAYOUT_HINT = (f"a Speech Commands folder holds one folder per word, {VALIDATION_LIST} and "
               f"{TESTING_LIST} (point --manual-dir at the folder the archive unpacked into).")


def speaker_of(path: str) -> str:
  """``"yes/0a7c2a8d_nohash_0.wav"`` -> ``"0a7c2a8d"`` (the file name before ``_nohash_``)."""
  return os.path.basename(path).split("_nohash_")[0]


def word_folders(root: str) -> list[str]:
  """Sorted word folders of ``root``: sub-folders not starting with ``_`` or ``.``."""
  return sorted(d for d in os.listdir(root)
                if os.path.isdir(os.path.join(root, d)) and not d.startswith(("_", ".")))


def read_split_list(path: str) -> set[str]:
  """The ``<word>/<file>.wav`` entries of an official split list."""
  return {fields[0] for _, fields in layouts.read_lines(path)}


def class_names(words: list[str], classes: str) -> tuple[str, ...]:
  if classes == "all":
    return tuple(words)
  return (SILENCE, UNKNOWN) + COMMANDS


def word_class(word: str, classes: str) -> str:
  if classes == "all" or word in COMMANDS:
    return word
  return UNKNOWN


def silence_split(key: str) -> str:
  bucket = stable_bucket(key)
  train, validation, _ = SILENCE_SPLIT_PERCENT
  if bucket < train:
    return "train"
  return "validation" if bucket < train + validation else "test"


def silence_chunks(root: str, chunk_seconds: float = 1.0) -> list[tuple[str, int]]:
  """``(relative path, chunk index)`` of every whole ``chunk_seconds`` chunk of the background
  noise files (their lengths from the headers; unreadable files give no chunks)."""
  folder = os.path.join(root, BACKGROUND)
  if not os.path.isdir(folder):
    raise UserError(f"classes='12' makes {SILENCE} clips from {folder}, which does not exist.")
  chunks = []
  for name in sorted(os.listdir(folder)):
    if not name.lower().endswith(".wav"):
      continue
    try:
      info = audio_io.probe_audio(os.path.join(folder, name))
    except audio_io.AudioDecodeError:
      continue
    count = int(info.frames // round(chunk_seconds * info.samplerate))
    chunks.extend((f"{BACKGROUND}/{name}", k) for k in range(count))
  return chunks


def read_speech_commands(manual_dir: str, classes: str = "all") -> Manifest:
  """The layout of ``manual_dir`` -> a :class:`Manifest` (rows sorted by path; silence chunks
  last). See the module docstring.

  Raises:
    UserError: the folder, a split list or every word folder is missing, ``classes`` is not
      one of ``CLASS_SETS``, or a file is in both split lists.
  """
  if classes not in CLASS_SETS:
    raise UserError(f"Speech Commands classes must be one of {', '.join(CLASS_SETS)}; got "
                    f"{classes!r}.")
  root = layouts.require_folder(manual_dir, "The Speech Commands folder")
  validation = read_split_list(layouts.require_file(
      os.path.join(root, VALIDATION_LIST), LAYOUT_HINT))
  test = read_split_list(layouts.require_file(os.path.join(root, TESTING_LIST), LAYOUT_HINT))
  both = sorted(validation & test)
  if both:
    raise UserError(f"{both[0]} is listed in both {VALIDATION_LIST} and {TESTING_LIST} "
                    f"({len(both)} such files) in {root}.")
  words = word_folders(root)
  on_disk = {f"{w}/{f}" for w in words for f in os.listdir(os.path.join(root, w))
             if f.lower().endswith(".wav")}
  if not on_disk:
    raise UserError(f"No <word>/*.wav file found in {root}; {LAYOUT_HINT}")
  # List entries outside the word folders (e.g. under _background_noise_) are not words.
  paths = sorted(p for p in on_disk | validation | test if not p.startswith(("_", ".")))
  speakers = sorted({speaker_of(p) for p in paths})
  speaker_id = {s: i for i, s in enumerate(speakers)}
  names = class_names(words, classes)
  rows = []
  for path in paths:
    word = path.split("/")[0]
    label = word_class(word, classes)
    split = "validation" if path in validation else "test" if path in test else "train"
    rows.append(Row(clip_id=len(rows), path=path, full_path=os.path.join(root, path),
                    tags=(label,) if label in names else (), artist=speaker_id[speaker_of(path)],
                    album=shard_schema.UNKNOWN_ID, track=shard_schema.UNKNOWN_ID, split=split))
  if classes == "12":
    for rel, k in silence_chunks(root):
      rows.append(Row(clip_id=len(rows), path=f"{rel}#{k}", full_path=os.path.join(root, rel),
                      tags=(SILENCE,), artist=shard_schema.UNKNOWN_ID,
                      album=shard_schema.UNKNOWN_ID, track=shard_schema.UNKNOWN_ID,
                      split=silence_split(f"{rel}#{k}")))
  return Manifest(rows=tuple(rows), tag_names=names,
                  id_names={"artist": speakers, "album": [], "track": []},
                  split_rule=f"official {VALIDATION_LIST} / {TESTING_LIST}", source=root)


def paper_counts(manifest: Manifest) -> dict | None:
  """The usable files per split of a complete copy: ``V2_COUNTS`` (plus the manifest's silence
  chunks per split) for a v0.02 copy, None (unchecked) for v0.01."""
  words = {row.path.split("/")[0] for row in manifest.rows}
  if not words & set(V2_ONLY_WORDS):
    return None
  counts = dict(V2_COUNTS)
  for row in manifest.rows:
    if "#" in row.path:  # A silence chunk (classes="12").
      counts[row.split] += 1
  return counts


@functools.lru_cache(maxsize=8)
def _decoded_background(path: str, sample_rate: int) -> np.ndarray:
  """A whole background-noise file, decoded once per build (float32 [samples])."""
  return audio_io.load_audio(path, sample_rate)


class SpeechCommands(ManifestBuilder, skip_registration=True):
  """Speech Commands from ``manual_dir`` as a TFDS dataset (``musicrep_speech_commands``)."""

  name = "musicrep_speech_commands"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}

  def __init__(self, *, manual_dir: str, classes: str = "all", sample_rate: int = 22050,
               min_seconds: float = 0.0,
               expected_counts: dict | str | None = layouts.PAPER_COUNTS,
               strict_counts: bool = True, **kwargs):
    """Reads the layout now (``UserError`` on problems); ``expected_counts`` and
    ``strict_counts`` as in the module docstring; ``kwargs`` go to ``ManifestBuilder``."""
    manifest = read_speech_commands(manual_dir, classes)
    words = word_folders(manifest.source)
    if expected_counts == layouts.PAPER_COUNTS:
      expected_counts = paper_counts(manifest)
    super().__init__(
        manifest=manifest, sample_rate=sample_rate, min_seconds=min_seconds,
        description=f"Speech Commands from {manifest.source}, classes={classes!r}.",
        metadata=dict(builder="speech_commands", manual_dir=manifest.source, classes=classes,
                      words=words, single_label=True,
                      background_noise="silence class" if classes == "12" else "excluded",
                      expected_counts=dict(expected_counts or {})),
        expected_counts=expected_counts, strict_counts=strict_counts, **kwargs)
    speakers = manifest.id_names["artist"]
    crossing = keys_in_several_splits(
        (speakers[r.artist], r.split) for r in manifest.rows if r.artist >= 0)
    if crossing:
      self.warnings.append(f"{len(crossing)} speaker(s) appear in several splits, e.g. "
                           f"{', '.join(crossing[:3])}.")

  def _decode(self, row: Row) -> np.ndarray | str:
    """Word clips decode as usual; a silence row is its 1-s chunk of a background file."""
    if "#" not in row.path:
      return super()._decode(row)
    chunk = int(row.path.rsplit("#", 1)[1])
    try:
      audio = _decoded_background(row.full_path, self._sample_rate)
    except audio_io.AudioDecodeError as error:
      return error.reason
    return shard_schema.float_to_pcm16(
        audio[chunk * self._sample_rate:(chunk + 1) * self._sample_rate])


def prepare_speech_commands(out_dir: str, *, manual_dir: str, classes: str = "all",
                            sample_rate: int = 22050, min_seconds: float = 0.0,
                            expected_counts: dict | str | None = layouts.PAPER_COUNTS,
                            strict_counts: bool = True, overwrite: bool = False,
                            workers: int | None = None, progress: bool = True) -> dict:
  """Builds the shards into ``out_dir`` (``out_dir/musicrep_speech_commands/1.0.0``) and returns
  the prepare report. The layout is read before ``out_dir`` is touched; the split sizes are
  checked before decoding (module docstring; ``strict_counts=False`` warns instead)."""
  params = dict(manual_dir=os.path.abspath(manual_dir), classes=classes,
                sample_rate=sample_rate, min_seconds=min_seconds)
  read_speech_commands(manual_dir, classes)
  return prepare.prepare_manifest(
      out_dir, SpeechCommands, kind="speech_commands",
      params=dict(params, strict_counts=strict_counts),
      builder_kwargs=dict(params, expected_counts=expected_counts, strict_counts=strict_counts,
                          workers=workers, progress=progress), overwrite=overwrite)
