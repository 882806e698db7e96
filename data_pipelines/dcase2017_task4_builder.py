"""DCASE 2017 Task 4 (large-scale weakly supervised sound event detection for smart cars; 17
weakly labelled event classes, 10-s YouTube clips from AudioSet) read from a local copy in the
challenge's own layout: paper 6's acoustic task in the journal code (papers.md 7.2, 1.1).

Layout of ``manual_dir`` (the official lists of the task repository and the folders its download
script and the evaluation-set zip create; papers.md does not give a layout, this is the official
one, also what ``tae-jun/sampleaudio`` reads under its ``raw/``)::

    groundtruth_weak_label_training_set.csv     <file>\\t<start>\\t<end>\\t<label>, no header,
    groundtruth_weak_label_testing_set.csv      one line per (clip, label); also accepted
    groundtruth_weak_label_evaluation_set.csv   under metadata/ or raw/
    unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads/Y<file>
    unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads/Y<file>
    evaluation_set_formatted_audio_segments/Y<file>

``<file>`` is ``<YouTube id>_<start>_<end>.wav`` (e.g. ``-5QrBL6MzLg_60.000_70.000.wav``); the
audio file carries a ``Y`` prefix (the audio folders are also accepted under ``raw/``). Columns
are tab-separated (labels contain spaces and commas: ``Air horn, truck horn``).

Split (variant ``journal``, configs ``journal_22050hz`` / ``journal_16000hz``), exactly the
journal code's (``tae-jun/sampleaudio/lib/data/dcs.py``): the training (51,172 clips) and testing
(488) sets are pooled (training list first); for each class in turn, 10 % of the pooled rows with
that label are drawn (``round(0.1 * n)`` rows by ``numpy.random.RandomState(123).choice(n, k,
replace=False)``, a fresh generator per class: what pandas' ``DataFrame.sample(frac=0.1,
random_state=123)`` does); a clip drawn for any of its labels goes to validation with all its
labels. The evaluation set (1,103 clips) is the test split. Sizes **46,042 / 5,618 / 1,103**
(``tae-jun/sampleaudio/lib/data/config.py``), checked after the headers are probed and before
anything is decoded; YouTube copies are often incomplete: ``strict_counts=False``
(``--allow-count-mismatch``) builds what is there. The split is computed from the lists, not
from the files present, so a partial copy keeps every clip's split.

Records: audio downmixed to mono at the config's rate (22,050 Hz in the journal code), multi-hot
``tags`` over the 17 classes in the journal code's column order (``CLASSES``), ``track`` = the
YouTube video id (``metadata["track_names"]``; several clips of one video are reported if they
land in different splits), ``artist`` and ``album`` -1. Files shorter than 1 s are skipped
(the journal code repeated short clips to 10 s; the input pipeline here zero-pads them).
"""

from __future__ import annotations

import csv
import os

import numpy as np
import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines.manifest_builder import Manifest
from musicrep_jax.errors import UserError

# The 17 classes in the journal code's column order (tae-jun/sampleaudio lib/data/dcs.py).
CLASSES = ("Train horn", "Air horn, truck horn", "Car alarm", "Reversing beeps",
           "Ambulance (siren)", "Police car (siren)", "Fire engine, fire truck (siren)",
           "Civil defense siren", "Screaming", "Bicycle", "Skateboard", "Car", "Car passing by",
           "Bus", "Truck", "Motorcycle", "Train")
# Set -> (its weak-label list, its audio folder).
SETS = {
    "training": ("groundtruth_weak_label_training_set.csv",
                 "unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads"),
    "testing": ("groundtruth_weak_label_testing_set.csv",
                "unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads"),
    "evaluation": ("groundtruth_weak_label_evaluation_set.csv",
                   "evaluation_set_formatted_audio_segments"),
}
LIST_SUBDIRS = ("", "metadata", "raw")
AUDIO_SUBDIRS = ("", "raw")
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 123
VARIANTS = {"journal": "DCASE 2017 Task 4, 17 weak labels; training + testing sets pooled, 10% "
                       "per class held out (seed 123), evaluation set as test"}


def read_weak_labels(path: str) -> list[tuple[str, str]]:
  """``(file, label)`` rows of a weak-label list, in file order.

  Raises:
    UserError: a line without four tab-separated fields or with a label not in ``CLASSES``.
  """
  rows = []
  with open(path, encoding="utf-8-sig", newline="") as f:
    for number, fields in enumerate(csv.reader(f, delimiter="\t"), start=1):
      if not any(field.strip() for field in fields):
        continue
      if len(fields) < 4:
        raise UserError(f"Line {number} of {path} has {len(fields)} tab-separated field(s); "
                        "expected <file>\\t<start>\\t<end>\\t<label>.")
      label = fields[3].strip()
      if label not in CLASSES:
        raise UserError(f"Line {number} of {path} has the label {label!r}, not one of the 17 "
                        f"DCASE 2017 Task 4 classes ({', '.join(CLASSES)}).")
      rows.append((fields[0].strip(), label))
  return rows


def video_id(file: str) -> str:
  """``"-5QrBL6MzLg_60.000_70.000.wav"`` -> ``"-5QrBL6MzLg"`` (ids may contain ``_``)."""
  stem = os.path.splitext(os.path.basename(file))[0]
  parts = stem.rsplit("_", 2)
  return parts[0] if len(parts) == 3 else stem


def journal_validation(rows: list[tuple[str, str]], fraction: float = VALIDATION_FRACTION,
                       seed: int = VALIDATION_SEED) -> set[str]:
  """The files the journal code holds out for validation from the pooled ``(file, label)`` rows:
  per class (``CLASSES`` order), ``round(fraction * n)`` of its ``n`` rows drawn with
  ``RandomState(seed).choice(n, k, replace=False)`` (= pandas ``sample(frac, random_state)``)."""
  held_out: set[str] = set()
  for name in CLASSES:
    files = [f for f, label in rows if label == name]
    picks = np.random.RandomState(seed).choice(len(files), size=round(fraction * len(files)),
                                               replace=False)
    held_out.update(files[i] for i in picks)
  return held_out


class MusicrepDcase2017Task4(layouts.LayoutBuilder, skip_registration=True):
  """DCASE 2017 Task 4 weak labels (``musicrep_dcase2017_task4``); see the module docstring."""

  name = "musicrep_dcase2017_task4"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Journal-code split of DCASE 2017 Task 4, 17 weak labels."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  EXPECTED_COUNTS = {"journal": {"train": 46042, "validation": 5618, "test": 1103}}
  MIN_SECONDS = {"journal": 1.0}
  KIND = "dcase2017_task4"

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str,
                  validation_fraction: float = VALIDATION_FRACTION,
                  validation_seed: int = VALIDATION_SEED) -> Manifest:
    """The three lists -> one manifest (development clips in list order, then evaluation).

    Raises:
      UserError: a list is missing or malformed, or a clip is both in the development (training
        or testing) lists and in the evaluation list.
    """
    del variant  # One variant.
    if not 0.0 <= validation_fraction < 1.0:
      raise UserError(f"validation_fraction must be in [0, 1); got {validation_fraction}.")
    lists = {s: read_weak_labels(layouts.find_file(
        manual_dir, [os.path.join(sub, SETS[s][0]) for sub in LIST_SUBDIRS],
        f"The DCASE 2017 Task 4 weak-label list {SETS[s][0]}")) for s in SETS}
    development = lists["training"] + lists["testing"]
    origin = {}  # file -> the set whose audio folder holds it (first listing wins).
    for name in SETS:
      for file, _ in lists[name]:
        origin.setdefault(file, name)
    leaked = sorted({f for f, _ in development} & {f for f, _ in lists["evaluation"]})
    if leaked:
      raise UserError(f"{leaked[0]} is in both the development lists and the evaluation list "
                      f"({len(leaked)} such clips) in {manual_dir}.")
    held_out = journal_validation(development, validation_fraction, validation_seed)
    labels: dict[str, set] = {}
    for file, label in development + lists["evaluation"]:
      labels.setdefault(file, set()).add(label)
    roots = {name: layouts.find_root(manual_dir, AUDIO_SUBDIRS,
                                     [os.path.join(folder, f"Y{f}") for f, _ in lists[name][:50]])
             for name, (_, folder) in SETS.items()}  # manual_dir or manual_dir/raw, per set.
    entries = []
    for file in labels:  # Insertion order: training, testing, evaluation lists.
      if origin[file] == "evaluation":
        split = "test"
      else:
        split = "validation" if file in held_out else "train"
      path = os.path.join(SETS[origin[file]][1], f"Y{file}")
      entries.append(layouts.Entry(
          path=path, full_path=os.path.join(roots[origin[file]], path), split=split,
          tags=tuple(c for c in CLASSES if c in labels[file]), track=video_id(file)))
    return layouts.build_manifest(
        entries, CLASSES,
        f"{VARIANTS['journal']} (validation fraction {validation_fraction:g}, seed "
        f"{validation_seed})", manual_dir)
