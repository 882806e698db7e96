"""Paper 13's MFCC-VQ baseline from a config (papers.md 14.5-14.6), runner ``"mfcc_vq"``.

1. 13 MFCCs + deltas + delta-deltas per frame of the train split (``ivector.mfcc``), a random
   sample of ``codebook.frames`` frames (2,500,000 in the paper: the same number from every clip,
   then a random subset);
2. k-means with ``codebook.size`` codewords (K = 1024; ``kmeans``) -> ``<workdir>/codebook.npy``;
3. every evaluation segment of the test split (``segments_per_clip`` windows of
   ``segment_seconds`` placed by ``config.data.eval_placement``, as the trainer's evaluation cuts
   them: ``data.pipeline.segment_starts``) becomes the normalised histogram of its frames'
   codewords (a frame belongs to the window holding its centre);
4. the metric-learning task's evaluator (``evaluators.retrieval``) on those histograms, the
   task built from ``config.task`` with ``normalize=False`` and Euclidean distances: the same
   triplets (per dimension, and track triplets on segments), triplet accuracy, Recall@K, chance
   and tagging probe as the trained models get; a track's histogram is the mean of its windows'
   (equal to the histogram of all its frames when the windows hold equally many frames);
5. with ``config.dimsim.path``: the dim-sim user triplets (``data.dimsim``) on the histograms of
   the dim-sim clips (``dimsim.audio_dir``) -> ``dimsim/agreement``.

Results go to ``<workdir>/results.json``. [unknown] in the paper and chosen here (config fields):
the MFCC framing (the papers' 23 ms window, 50 % overlap: ``n_fft`` 512, hop 256 at 22,050 Hz),
40 mel bands, no per-clip normalisation (``cmvn=False``: it would remove the timbre the baseline
compares), k-means initialisation and iterations (``kmeans``). The paper compares raw normalised
histograms with the Euclidean distance; so does this runner (no L2 normalisation).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Optional

import jax.numpy as jnp
import ml_collections
import numpy as np

from musicrep_jax import config_loading, storage
from musicrep_jax.data import dimsim as dimsim_lib
from musicrep_jax.data.pipeline import segment_starts
from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.retrieval import retrieval_evaluator
from musicrep_jax.registry import RUNNERS
from musicrep_jax.systems.ivector import features as features_lib
from musicrep_jax.systems.ivector import mfcc as mfcc_lib
from musicrep_jax.systems.mfcc_vq import kmeans as kmeans_lib
from musicrep_jax.tasks.metric_learning import MetricLearningTask

CODEBOOK_FILE = "codebook.npy"
RESULTS_FILE = "results.json"


class _Slice:
  """Clips ``[start, stop)`` of a source, remembering each record's length and ``fields`` as it
  is read (``features.split_features`` reads every record once, in order)."""

  def __init__(self, source, start: int, stop: int, fields: tuple):
    self.source, self.start, self.stop, self.fields = source, start, stop, fields
    self.split = getattr(source, "split", "")
    self.seen: dict = {}

  def __len__(self) -> int:
    return self.stop - self.start

  def __getitem__(self, i: int):
    record = self.source[self.start + i]
    missing = [f for f in self.fields if f not in record]
    if missing:
      raise UserError(f"the {self.split} records have no {', '.join(missing)} field(s) that "
                      f"config.task.eval_labels needs.")
    self.seen[i] = (len(np.asarray(record["audio"])),
                    {f: np.asarray(record[f]) for f in self.fields})
    return record


def _clip_frames(source, settings: dict, fields: tuple = ()):
  """Yields ``(frames [n_i, dim] float32, num_samples, {field: value})`` per clip, in order,
  ``clips_per_chunk`` clips of MFCCs in memory at a time."""
  chunk = settings["clips_per_chunk"]
  for start in range(0, len(source), chunk):
    part = _Slice(source, start, min(start + chunk, len(source)), fields)
    clips, _ = features_lib.split_features(part, settings["mfcc"], settings["sample_rate"],
                                           label_field="clip_id",
                                           clips_per_batch=settings["clips_per_batch"])
    for i, frames in enumerate(clips):
      num_samples, values = part.seen[i]
      yield frames, num_samples, values


def sample_frames(source, settings: dict, num_frames: int, seed: int) -> np.ndarray:
  """``num_frames`` random MFCC frames of a split ``[num_frames, dim]`` (fewer when the split
  has fewer): ``ceil(num_frames / clips)`` from each clip, then a random subset."""
  rng = np.random.default_rng(seed)
  per_clip = -(-num_frames // max(len(source), 1))
  picked = []
  for frames, _, _ in _clip_frames(source, settings):
    take = min(per_clip, len(frames))
    picked.append(frames[np.sort(rng.choice(len(frames), size=take, replace=False))])
  frames = np.concatenate(picked)
  if len(frames) > num_frames:
    frames = frames[np.sort(rng.choice(len(frames), size=num_frames, replace=False))]
  return frames


def window_histograms(frames: np.ndarray, num_samples: int, codebook: np.ndarray,
                      settings: dict) -> np.ndarray:
  """A clip's frames ``[n, dim]`` -> the codeword histogram of each evaluation window,
  float32 ``[segments_per_clip, K]`` (rows sum to 1; a window without a frame is uniform)."""
  k = len(codebook)
  codes = kmeans_lib.assign(frames, codebook)
  centres = np.arange(len(frames)) * settings["mfcc"].hop_length
  length = settings["segment_length"]
  starts = segment_starts(num_samples, length, settings["segments_per_clip"],
                          settings["placement"])
  inside = (centres[None, :] >= starts[:, None]) & (centres[None, :] < starts[:, None] + length)
  counts = np.stack([np.bincount(codes[row], minlength=k) for row in inside]).astype(np.float32)
  totals = counts.sum(1, keepdims=True)
  return np.where(totals > 0, counts / np.maximum(totals, 1.0), 1.0 / k).astype(np.float32)


def split_segments(source, codebook: np.ndarray, settings: dict, fields: tuple) -> dict:
  """The evaluator's ``segments`` of a split: ``embedding`` (window histograms) ``[S, K]``,
  ``clip_index``, ``segment_valid`` and ``fields`` per segment."""
  rows = {"embedding": [], "clip_index": []}
  rows.update({f: [] for f in fields})
  for clip, (frames, num_samples, values) in enumerate(_clip_frames(source, settings, fields)):
    hist = window_histograms(frames, num_samples, codebook, settings)
    rows["embedding"].append(hist)
    rows["clip_index"].append(np.full(len(hist), clip, np.int64))
    for f in fields:
      rows[f].append(np.repeat(values[f][None], len(hist), axis=0))
  out = {k: np.concatenate(v) for k, v in rows.items()}
  out["segment_valid"] = np.ones(len(out["clip_index"]), bool)
  return out


def dimsim_histograms(data: dimsim_lib.DimSim, audio_dir: str, codebook: np.ndarray,
                      settings: dict) -> np.ndarray:
  """Codeword histograms ``[num_clips, K]`` of the dim-sim clips (each clip one window)."""
  audio = dimsim_lib.clip_audio(data, audio_dir, settings["sample_rate"])
  out = []
  for start in range(0, len(audio), settings["clips_per_batch"]):
    batch = audio[start:start + settings["clips_per_batch"]]
    lengths = np.full(len(batch), batch.shape[1], np.int32)
    feats, mask = mfcc_lib.mfcc_features(jnp.asarray(batch), jnp.asarray(lengths),
                                         config=settings["mfcc"],
                                         sample_rate=settings["sample_rate"])
    feats, mask = np.asarray(feats), np.asarray(mask)
    for row in range(len(batch)):
      codes = kmeans_lib.assign(feats[row][mask[row]], codebook)
      out.append(np.bincount(codes, minlength=len(codebook)) / max(len(codes), 1))
  return np.asarray(out, np.float32)


def _settings(config: ml_collections.ConfigDict, sample_rate: int) -> dict:
  mfcc = config_loading.build_from_config(mfcc_lib.MfccConfig, config.mfcc,
                                          "config.mfcc does not fit MfccConfig")
  length = int(round(config.segment_seconds * sample_rate))
  if length < mfcc.n_fft or config.clips_per_chunk < 1 or config.clips_per_batch < 1:
    raise UserError("config.segment_seconds must span at least one MFCC frame, and "
                    "clips_per_chunk / clips_per_batch must be positive.")
  return {"mfcc": mfcc, "sample_rate": sample_rate, "segment_length": length,
          "segments_per_clip": int(config.data.segments_per_clip),
          "placement": config.data.eval_placement, "clips_per_chunk": int(config.clips_per_chunk),
          "clips_per_batch": int(config.clips_per_batch)}


def _task(config: ml_collections.ConfigDict, shards) -> MetricLearningTask:
  """The metric-learning task whose evaluator scores the histograms (raw, Euclidean); bound
  without a training split (no P x K tables: nothing is trained)."""
  kwargs = config_loading.constructor_kwargs(config.task)
  kwargs.update(approach="triplet", normalize=False, metric="euclidean", disentangled=False)
  task = config_loading.build_from_config(MetricLearningTask, kwargs,
                                          "config.task does not fit MetricLearningTask")
  return task.bind(dataclasses.replace(shards, split_sizes={}))


def fit(config: ml_collections.ConfigDict, workdir, data_dir: Optional[str] = None) -> dict:
  """Codebook on the train split, metrics of the test split (and dim-sim) -> results dict,
  also written to ``<workdir>/results.json``."""
  from musicrep_jax.training.run_data import resolve_shards

  shards = resolve_shards(config, data_dir)
  settings = _settings(config, shards.sample_rate)
  task = _task(config, shards)
  out = storage.as_path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  timing = {}
  begin = time.perf_counter()
  frames = sample_frames(shards.source(config.data.train_split), settings,
                         int(config.codebook.frames), int(config.seed))
  codebook, info = kmeans_lib.kmeans(frames, int(config.codebook.size),
                                     iterations=int(config.codebook.iterations),
                                     seed=int(config.seed), chunk=int(config.codebook.chunk))
  timing["codebook_s"] = time.perf_counter() - begin
  with (out / CODEBOOK_FILE).open("wb") as f:
    np.save(f, codebook)
  begin = time.perf_counter()
  split = config.data.test_split
  fields = tuple(dict.fromkeys(task.fields))
  segments = split_segments(shards.source(split), codebook, settings, fields)
  num_clips = int(segments["clip_index"].max()) + 1
  metrics = retrieval_evaluator(task, segments, num_clips)
  metrics.pop("loss", None)  # The triplet hinge of a model that has none.
  timing["evaluation_s"] = time.perf_counter() - begin
  if config.dimsim.path:
    data = dimsim_lib.load_dimsim(config.dimsim.path,
                                  min_consensus=float(config.dimsim.min_consensus))
    hist = dimsim_histograms(data, config.dimsim.audio_dir, codebook, settings)
    metrics["dimsim/agreement"] = dimsim_lib.agreement(hist, data, metric="euclidean")
    metrics["dimsim/triplets"] = int(len(data.triplets))
  result = dict(metrics, split=split, codebook_frames=int(len(frames)),
                kmeans_iterations=info["iterations"], kmeans_inertia=info["inertia"])
  (out / RESULTS_FILE).write_text(json.dumps(dict(result, timing=timing), indent=2))
  return dict(result, timing=timing)


@RUNNERS.register("mfcc_vq")
def run(config: ml_collections.ConfigDict, *, workdir: str | pathlib.Path,
        data_dir: Optional[str] = None) -> dict:
  """``fit`` into ``workdir``: the test split's metrics, ``workdir`` and ``report`` (the
  seconds per phase)."""
  result = fit(config, workdir, data_dir)
  timing = result.pop("timing")
  return dict(result, workdir=str(workdir), report=[("seconds per phase:", timing)])
