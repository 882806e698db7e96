"""Opening prepared shards (``musicrep prepare ...``) for training and evaluation.

::

    shards = open_shards("data/synthetic", expected_sample_rate=config.data.sample_rate)
    source = shards.source("train")      # random access, picklable (Grain workers)
    record = source[0]                   # {"audio": int16 [samples], "tags": uint8 [num_tags], ...}

Records follow ``musicrep_jax.data.schema``. Scalars come back as 0-d numpy arrays of the
feature's dtype (TFDS would give Python ints and floats), text fields as ``bytes``.
``tensorflow_datasets`` is imported only when shards are opened, never TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from musicrep_jax import storage
from musicrep_jax.errors import UserError

INFO_FILE = "dataset_info.json"
PREPARE_HINT = ("prepare one with `musicrep prepare synthetic --out DIR` or "
                "`musicrep prepare folder ...` (a folder of audio files and a CSV manifest)")


@dataclasses.dataclass(frozen=True)
class Shards:
  """A prepared dataset: where it is, its dataset-level facts, and its splits."""

  data_dir: pathlib.Path  # As given to open_shards.
  dataset_dir: pathlib.Path  # The TFDS version dir (holds dataset_info.json and the shards).
  sample_rate: int
  tag_names: tuple[str, ...]
  tag_groups: dict  # str -> list[int], indices into tag_names; {} when none.
  split_sizes: dict  # str -> int, number of records.
  metadata: dict = dataclasses.field(repr=False)  # All of DatasetInfo.metadata (JSON types).

  @property
  def splits(self) -> tuple[str, ...]:
    return tuple(self.split_sizes)

  def source(self, split: str) -> "ShardSource":
    """The random-access source of ``split``; ``UserError`` naming the splits there are."""
    if split not in self.split_sizes:
      raise UserError(f"Split {split!r} is not in the shards at {self.data_dir}; available "
                      f"splits: {', '.join(self.split_sizes)}.")
    return ShardSource(str(self.dataset_dir), split)


class ShardSource:
  """Random access to one split: ``len(source)``, ``source[i] -> dict of numpy``.

  Picklable: it pickles as (dataset dir, split) and reopens the ArrayRecord files lazily, so
  Grain can send it to spawned worker processes.
  """

  def __init__(self, dataset_dir: str, split: str):
    self.dataset_dir = dataset_dir
    self.split = split
    self._source = None
    self._dtypes: dict[str, Any] = {}

  def _open(self):
    if self._source is None:
      import tensorflow_datasets as tfds

      builder = tfds.builder_from_directory(self.dataset_dir)
      self._dtypes = {name: np.dtype(feature.np_dtype)
                      for name, feature in builder.info.features.items()
                      if np.dtype(feature.np_dtype).kind in "biuf"}
      self._source = builder.as_data_source(self.split)
    return self._source

  def __len__(self) -> int:
    return len(self._open())

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    source = self._open()
    if not -len(source) <= index < len(source):
      raise IndexError(f"record {index} of split {self.split!r} (which has {len(source)})")
    return self._to_numpy(source[index % len(source)])

  def __getitems__(self, indices) -> list[dict[str, np.ndarray]]:
    return [self[int(i)] for i in indices]

  def _to_numpy(self, record: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, self._dtypes[k]) if k in self._dtypes else v
            for k, v in record.items()}

  def __getstate__(self) -> dict:
    return {"dataset_dir": self.dataset_dir, "split": self.split}

  def __setstate__(self, state: dict) -> None:
    self.__init__(state["dataset_dir"], state["split"])

  def __repr__(self) -> str:
    return f"ShardSource({self.dataset_dir!r}, {self.split!r})"


def find_dataset_dirs(data_dir: pathlib.Path) -> list[pathlib.Path]:
  """Version dirs under ``data_dir``: itself, ``NAME/VERSION`` or ``NAME/CONFIG/VERSION``."""
  if (data_dir / INFO_FILE).is_file():
    return [data_dir]
  found = []
  for pattern in (f"*/*/{INFO_FILE}", f"*/*/*/{INFO_FILE}"):
    for info in sorted(data_dir.glob(pattern)):
      parts = info.relative_to(data_dir).parts[:-1]
      if not any(p.startswith(("incomplete.", ".")) or p == "downloads" for p in parts):
        found.append(info.parent)
  return found


def read_info(dataset_dir: pathlib.Path) -> tuple[dict, dict]:
  """(metadata as plain JSON types, split name -> number of records) of a version dir."""
  import tensorflow_datasets as tfds  # Lazy: keeps `import musicrep_jax...` light.

  info = tfds.builder_from_directory(os.fspath(dataset_dir)).info
  metadata = json.loads(json.dumps(dict(info.metadata or {})))
  sizes = {name: int(split.num_examples) for name, split in info.splits.items()}
  return metadata, sizes


def open_shards(data_dir: str | os.PathLike, expected_sample_rate: int | None = None) -> Shards:
  """Opens the one dataset prepared in ``data_dir`` (a TFDS data_dir or a version dir).

  Raises:
    UserError: ``data_dir`` is missing, holds no prepared dataset or several, or its sample rate
      differs from ``expected_sample_rate`` (``config.data.sample_rate``); or ``data_dir`` is
      remote (``gs://...``): ArrayRecord's reader opens local files only (``musicrep stage``).
  """
  if storage.is_remote(data_dir):
    raise UserError(f"The data dir {data_dir} is remote and ArrayRecord reads only local files; "
                    f"copy it to this host with `musicrep stage --data-dir {data_dir} --out DIR` "
                    f"(train and eval do this themselves) or mount the bucket with gcsfuse.")
  data_dir = pathlib.Path(data_dir).expanduser()
  if not data_dir.is_dir():
    raise UserError(f"The data dir {data_dir} does not exist; {PREPARE_HINT}.")
  found = find_dataset_dirs(data_dir)
  if not found:
    raise UserError(f"No prepared dataset found in {data_dir}; {PREPARE_HINT}.")
  if len(found) > 1:
    names = ", ".join(str(d.relative_to(data_dir)) for d in found)
    raise UserError(f"Several prepared datasets found in {data_dir} ({names}); point the data dir "
                    "at one of them.")
  dataset_dir = found[0].resolve()
  metadata, sizes = read_info(dataset_dir)
  if "sample_rate" not in metadata:
    raise UserError(f"The dataset in {dataset_dir} has no sample_rate in its metadata, so it was "
                    f"not prepared by musicrep; {PREPARE_HINT}.")
  sample_rate = int(metadata["sample_rate"])
  if expected_sample_rate is not None and int(expected_sample_rate) != sample_rate:
    raise UserError(f"The shards in {data_dir} are at {sample_rate} Hz but the config expects "
                    f"{int(expected_sample_rate)} Hz (config.data.sample_rate).")
  return Shards(
      data_dir=data_dir,
      dataset_dir=dataset_dir,
      sample_rate=sample_rate,
      tag_names=tuple(metadata.get("tag_names", ())),
      tag_groups={k: list(v) for k, v in (metadata.get("tag_groups") or {}).items()},
      split_sizes=sizes,
      metadata=metadata,
  )
