"""TFDS builder for the DCASE 2017 Task 1 acoustic scenes (TUT Acoustic Scenes 2017, development
set) read from a local copy (``manual_dir``) in the dataset's own layout; paper 6's acoustic
scene classification (papers.md 7.2).

Layout (as unpacked from ``TUT-acoustic-scenes-2017-development.*.zip``)::

    MANUAL_DIR/
      audio/<location>_<start>_<end>.wav        10-s segments, 44.1 kHz, 24-bit stereo
      meta.txt                                  <file> <scene> <location>   (optional here)
      evaluation_setup/fold{1..4}_train.txt     <file> <scene>
      evaluation_setup/fold{1..4}_evaluate.txt  <file> <scene>
      evaluation_setup/fold{1..4}_test.txt      <file>                      (not used)

``<file>`` is relative to MANUAL_DIR (``audio/a001_0_10.wav``); columns are tab-separated.
15 scenes: beach, bus, cafe/restaurant, car, city_center, forest_path, grocery_store, home,
library, metro_station, office, park, residential_area, train, tram.

Splits for ``fold`` k (1..4): ``test`` = ``fold{k}_evaluate.txt`` (the challenge's
cross-validation test fold, with labels); ``train`` = ``fold{k}_train.txt`` minus a held-out
``validation`` of whole recording locations: a location goes to validation when
``sha256(location) % 100 < validation_percent`` (default 10; 0 gives no validation split, then
set ``config.data.eval_split``). The setup has no validation list of its own, and segments of one
location must not be split (they are cut from one recording), hence the location hash.

Records: audio downmixed to mono (papers.md 1.2: mono) at ``sample_rate`` (default 22,050 Hz,
the journal code's rate), one-hot ``tags`` over the scenes (``metadata["single_label"]``),
``track`` = recording location (``metadata["track_names"]``; the location from ``meta.txt``, else
the file-name prefix before ``_``), ``artist`` and ``album`` -1. A file listed but missing, or
corrupt, is skipped with its reason in ``prepare_report.json``; files in ``audio/`` that the
fold's lists do not name are not read. ``error.txt`` (annotated audio glitches) is ignored, as the
DCASE baseline does.

Papers.md 7.2 notes that the journal code behind paper 6 used DCASE 2017 *Task 4* (17 weakly
labelled event classes, multi-label): ``dcase2017_task4_builder`` (``musicrep prepare
dcase2017_task4``), the default of ``configs/samplecnn_dcase2017.py``; this builder serves Task 1
(single-label scenes), that config's ``task1`` argument.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines import prepare
from musicrep_jax.data_pipelines.manifest_builder import (Manifest, ManifestBuilder, Row,
                                                          stable_bucket)
from musicrep_jax.data import schema as shard_schema
from musicrep_jax.errors import UserError

FOLDS = (1, 2, 3, 4)
SETUP_DIR = "evaluation_setup"
LAYOUT_HINT = ("a TUT Acoustic Scenes 2017 development folder holds audio/, meta.txt and "
               "evaluation_setup/fold{1..4}_{train,evaluate}.txt (point --manual-dir at it).")


def location_of(path: str) -> str:
  """``"audio/a001_0_10.wav"`` -> ``"a001"`` (the file-name prefix before the first ``_``)."""
  return os.path.basename(path).split("_")[0]


def read_labelled_list(path: str) -> list[tuple[str, str]]:
  """``(file, scene)`` pairs of a fold list; ``UserError`` naming a line without a scene."""
  pairs = []
  for number, fields in layouts.read_lines(path):
    if len(fields) < 2:
      raise UserError(f"Line {number} of {path} has no scene label (expected '<file>\\t<scene>').")
    pairs.append((fields[0], fields[1]))
  return pairs


def read_meta(path: str) -> dict[str, tuple[str, str]]:
  """``meta.txt`` -> ``{file: (scene, location)}``; {} when the file is absent."""
  if not os.path.isfile(path):
    return {}
  return {fields[0]: (fields[1] if len(fields) > 1 else "",
                      fields[2] if len(fields) > 2 else location_of(fields[0]))
          for _, fields in layouts.read_lines(path)}


def read_dcase2017(manual_dir: str, fold: int = 1, validation_percent: int = 10) -> Manifest:
  """The layout of ``manual_dir`` for ``fold`` -> a :class:`Manifest` (train list order, then the
  evaluate list). See the module docstring.

  Raises:
    UserError: the folder or a fold list is missing, ``fold`` or ``validation_percent`` is out of
      range, a list line has no scene, or a file is in both the train and evaluate lists.
  """
  if fold not in FOLDS:
    raise UserError(f"DCASE 2017 fold must be one of 1, 2, 3, 4; got {fold!r}.")
  if not 0 <= validation_percent < 100:
    raise UserError(f"validation_percent must be in 0..99; got {validation_percent}.")
  root = layouts.require_folder(manual_dir, "The DCASE 2017 folder")
  setup = os.path.join(root, SETUP_DIR)
  train = read_labelled_list(layouts.require_file(
      os.path.join(setup, f"fold{fold}_train.txt"), LAYOUT_HINT))
  test = read_labelled_list(layouts.require_file(
      os.path.join(setup, f"fold{fold}_evaluate.txt"), LAYOUT_HINT))
  both = sorted({f for f, _ in train} & {f for f, _ in test})
  if both:
    raise UserError(f"{both[0]} is in both fold{fold}_train.txt and fold{fold}_evaluate.txt "
                    f"({len(both)} such files) in {setup}.")
  meta = read_meta(os.path.join(root, "meta.txt"))
  scenes = tuple(sorted({s for _, s in train + test} | {s for s, _ in meta.values() if s}))
  location = {f: meta[f][1] if f in meta else location_of(f) for f, _ in train + test}
  locations = sorted(set(location.values()))
  location_id = {name: i for i, name in enumerate(locations)}

  def split_of(path: str, listed: str) -> str:
    if listed == "test":
      return "test"
    held_out = stable_bucket(location[path]) < validation_percent
    return "validation" if held_out else "train"

  rows = []
  for listed, pairs in (("train", train), ("test", test)):
    for path, scene in pairs:
      rows.append(Row(clip_id=len(rows), path=path, full_path=os.path.join(root, path),
                      tags=(scene,), artist=shard_schema.UNKNOWN_ID,
                      album=shard_schema.UNKNOWN_ID, track=location_id[location[path]],
                      split=split_of(path, listed)))
  return Manifest(rows=tuple(rows), tag_names=scenes,
                  id_names={"artist": [], "album": [], "track": locations},
                  split_rule=(f"fold{fold}_train.txt (validation: {validation_percent}% of "
                              f"locations by hash) / fold{fold}_evaluate.txt"),
                  source=setup)


class Dcase2017(ManifestBuilder, skip_registration=True):
  """DCASE 2017 Task 1 from ``manual_dir`` as a TFDS dataset (``musicrep_dcase2017``)."""

  name = "musicrep_dcase2017"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}

  def __init__(self, *, manual_dir: str, fold: int = 1, validation_percent: int = 10,
               sample_rate: int = 22050, min_seconds: float = 1.0, **kwargs):
    """Reads the layout now (``UserError`` on problems); ``kwargs`` go to ``ManifestBuilder``."""
    manifest = read_dcase2017(manual_dir, fold, validation_percent)
    super().__init__(
        manifest=manifest, sample_rate=sample_rate, min_seconds=min_seconds,
        description=f"DCASE 2017 Task 1 (TUT Acoustic Scenes 2017) fold {fold} from "
                    f"{os.path.abspath(manual_dir)}.",
        metadata=dict(builder="dcase2017", manual_dir=os.path.abspath(manual_dir), fold=fold,
                      validation_percent=validation_percent, single_label=True),
        **kwargs)


def prepare_dcase2017(out_dir: str, *, manual_dir: str, fold: int = 1,
                      validation_percent: int = 10, sample_rate: int = 22050,
                      min_seconds: float = 1.0, overwrite: bool = False,
                      workers: int | None = None, progress: bool = True) -> dict:
  """Builds the shards into ``out_dir`` (``out_dir/musicrep_dcase2017/1.0.0``) and returns the
  prepare report. The layout is read before ``out_dir`` is touched."""
  params = dict(manual_dir=os.path.abspath(manual_dir), fold=fold,
                validation_percent=validation_percent, sample_rate=sample_rate,
                min_seconds=min_seconds)
  read_dcase2017(manual_dir, fold, validation_percent)
  return prepare.prepare_manifest(
      out_dir, Dcase2017, kind="dcase2017", params=params,
      builder_kwargs=dict(params, workers=workers, progress=progress), overwrite=overwrite)
