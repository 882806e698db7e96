"""TFDS builder writing the embedded synthetic corpus (``synthetic_corpus.py``) as ArrayRecord
shards.

Layout after ``prepare_synthetic(OUT)`` (TFDS ``data_dir=OUT``)::

    OUT/musicrep_synthetic/1.0.0/
        dataset_info.json, features.json, metadata.json      (TFDS)
        musicrep_synthetic-{train,validation,test}.array_record-00000-of-00001
        interactions.npy          int64 [N, 3]: user, track, play count (recommendation task)
        user_factors.npy          float32 [num_users, genres + moods]: the users' preferences
        user_artist_affinity.npy  float32 [num_users, num_artists]
        track_popularity.npy      float32 [num_clips]: log-popularity (track id = clip_id)

The ``.npy`` files are written by :func:`save_side_files` (``prepare_synthetic`` calls it) and
named in ``metadata["side_files"]``: ``np.load(shards.dataset_dir / "interactions.npy")``.

Records follow ``musicrep_jax.data.schema`` plus the extra fields ``genre``, ``mood`` (int64 [],
indices into ``metadata["genre_names"]`` / ``["mood_names"]``), ``tempo_bpm`` (float32 []) and
``instruments`` (uint8 [num_instruments], multi-hot over ``metadata["instrument_names"]``).
``metadata["corpus_config"]`` is the ``CorpusConfig`` as a dict: :func:`corpus_config_from_metadata`
rebuilds it, so a reader can re-create the corpus that was written. Records keep the corpus order
(shuffling is disabled): record i of a split is ``corpus.split_indices(split)[i]``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from musicrep_jax.data import audio_io
from musicrep_jax.data_pipelines import synthetic_corpus
from musicrep_jax.data import schema as shard_schema

SPLITS = ("train", "validation", "test")
EXTRA_FIELDS = ("genre", "mood", "tempo_bpm", "instruments")
# Corpus attribute -> file in the dataset version dir (the recommendation task's data).
SIDE_FILES = {
    "interactions": "interactions.npy",                  # int64 [N, 3]: user, track, play count
    "user_factors": "user_factors.npy",                  # float32 [users, genres + moods]
    "user_artist_affinity": "user_artist_affinity.npy",  # float32 [users, artists]
    "track_popularity": "track_popularity.npy",          # float32 [tracks] log-popularity
}


def to_jsonable(value: Any) -> Any:
  """Dataclass/tuple/numpy values -> plain JSON types (for ``DatasetInfo.metadata``)."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    value = dataclasses.asdict(value)
  if isinstance(value, dict):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def corpus_config_from_metadata(metadata: dict) -> synthetic_corpus.CorpusConfig:
  """``metadata["corpus_config"]`` (JSON: tuples became lists) -> the ``CorpusConfig`` built."""
  from musicrep_jax.config_loading import constructor_kwargs

  return synthetic_corpus.CorpusConfig(**constructor_kwargs(metadata["corpus_config"]))


def instruments_multi_hot(instruments, num_instruments: int) -> np.ndarray:
  """Indices into ``synthetic_corpus.INSTRUMENTS`` -> uint8 [num_instruments] multi-hot."""
  out = np.zeros(num_instruments, np.uint8)
  out[list(instruments)] = 1
  return out


class MusicrepSynthetic(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The synthetic corpus as a TFDS dataset (``musicrep_synthetic``)."""

  name = "musicrep_synthetic"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  # TFDS looks for a checksums file next to the builder's code through `code_path`, which needs
  # the `importlib_resources` backport (not installed on Python >= 3.9); there is nothing to
  # download, so there are no checksums.
  code_path = None

  def __init__(self, *, corpus, workers: int | None = None, progress: bool = True, **kwargs):
    """``corpus``: a ``SyntheticCorpus``; ``workers``: rendering threads; ``kwargs``: TFDS's."""
    self._corpus = corpus
    self._workers = workers or audio_io.default_workers()
    self._progress = progress
    self._instrument_names = list(synthetic_corpus.INSTRUMENTS)
    self.counts = {split: 0 for split in SPLITS}  # Records written, filled in while building.
    self.audio_samples = 0  # Total samples written.
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    corpus = self._corpus
    features = shard_schema.core_features(len(corpus.tag_names))
    features.update({
        "genre": tfds.features.Scalar(dtype=np.int64),
        "mood": tfds.features.Scalar(dtype=np.int64),
        "tempo_bpm": tfds.features.Scalar(dtype=np.float32),
        "instruments": tfds.features.Tensor(shape=(len(self._instrument_names),), dtype=np.uint8),
    })
    metadata = tfds.core.MetadataDict(
        builder="synthetic",
        sample_rate=int(corpus.config.sample_rate),
        tag_names=[str(t) for t in corpus.tag_names],
        tag_groups=to_jsonable(dict(corpus.tag_groups)),
        extra_fields=list(EXTRA_FIELDS),
        genre_names=list(synthetic_corpus.GENRES),
        mood_names=list(synthetic_corpus.MOODS),
        instrument_names=self._instrument_names,
        corpus_config=to_jsonable(corpus.config),
        side_files=dict(SIDE_FILES),
    )
    return tfds.core.DatasetInfo(
        builder=self,
        description="Synthetic music clips with tags, ids and listening interactions.",
        features=tfds.features.FeaturesDict(features),
        metadata=metadata,
        disable_shuffling=True,  # Keep corpus order: record i of a split = split_indices(split)[i].
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    present = {clip.split for clip in self._corpus.clips}
    return {split: self._generate_examples(split) for split in SPLITS if split in present}

  def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
    indices = [int(i) for i in self._corpus.split_indices(split)]
    rendered = audio_io.map_in_threads(self._render_pcm16, indices, self._workers)
    bar = tqdm.tqdm(rendered, total=len(indices), desc=f"Rendering {split}", unit=" clips",
                    disable=not self._progress, dynamic_ncols=True)
    for index, audio in zip(indices, bar):
      self.counts[split] += 1
      self.audio_samples += len(audio)
      yield index, self._record(index, audio)

  def _render_pcm16(self, index: int) -> np.ndarray:
    """Clip ``index`` -> int16 [samples] (runs on a worker thread; rendering is per-clip seeded)."""
    return shard_schema.float_to_pcm16(self._corpus.render(index))

  def _record(self, index: int, audio: np.ndarray) -> dict:
    """Clip ``index`` and its int16 [samples] audio -> one record (schema + extra fields)."""
    clip = self._corpus.clips[index]
    return {
        "audio": audio,
        "tags": np.asarray(clip.tags, np.uint8),
        "clip_id": int(clip.clip_id),
        "track": int(clip.track),
        "album": int(clip.album),
        "artist": int(clip.artist),
        "path": str(clip.name),
        "genre": int(clip.genre),
        "mood": int(clip.mood),
        "tempo_bpm": np.float32(clip.tempo_bpm),
        "instruments": instruments_multi_hot(clip.instruments, len(self._instrument_names)),
    }


def save_side_files(corpus, dataset_dir: str | os.PathLike) -> dict[str, str]:
  """Saves the corpus arrays of ``SIDE_FILES`` into ``dataset_dir``; returns name -> path."""
  paths = {}
  for attribute, filename in SIDE_FILES.items():
    if hasattr(corpus, attribute):
      paths[attribute] = os.path.join(os.fspath(dataset_dir), filename)
      np.save(paths[attribute], np.asarray(getattr(corpus, attribute)))
  return paths
