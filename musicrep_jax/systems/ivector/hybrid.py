"""Deep artist features from a trained DCNN workdir, and their fusion with i-vectors (paper 8,
papers.md 9: "a hybrid of deep audio feature and i-vector").

``dcnn_clip_outputs`` restores a training workdir's checkpoint (``trainer.restore_workdir``,
the workdir's own config) and runs the model on each clip's evaluation
segments (``config.data.segments_per_clip``, ``eval_placement``), averaging per clip the
``embedding`` (paper 4's 256-d "deep artist feature", papers.md 5.5: average over the song's
excerpts) and the softmax of ``logits`` (the network's own artist classifier).

Fusion (how paper 8 combines the two is [unknown]; both are here):

* ``"score"``: each system's artist scores ``[n, K]`` are z-normalised per clip (over artists)
  and mixed as ``a * ivector + (1 - a) * dcnn``; ``a`` is the grid value with the best
  validation accuracy (ties: lowest validation cross entropy of ``softmax(fused)``);
* ``"feature"``: the centred, length-normalised i-vector and deep feature are concatenated and
  go through one back end (``backend.fit_backend``).
"""

from __future__ import annotations

import pathlib
from typing import Optional

import jax
import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.systems.ivector import backend as backend_lib

FUSIONS = ("score", "feature")


def dcnn_clip_outputs(workdir: str | pathlib.Path, splits, data_dir: Optional[str] = None,
                      which: str = "best") -> dict:
  """Clip-level outputs of a trained workdir's model on ``splits`` (single process).

  Returns:
    ``{split: {"embedding": float32 [clips, E], "probs": float32 [clips, K] (when the model has
    logits), "labels": int64 [clips] (the task's label field, when it is an integer field)}}``.
  """
  from musicrep_jax.data import pipeline as input_pipeline
  from musicrep_jax.evaluators.common import clip_means, clip_values
  from musicrep_jax.training.trainer import restore_workdir

  restored = restore_workdir(workdir, data_dir, which)
  run, config, shards = restored.run, restored.config, restored.run.shards

  @jax.jit
  def segment_outputs(variables, batch):
    out = run.task.forward(run.model, variables, batch, train=False)
    kept = {"embedding": out["embedding"]}
    if "logits" in out:
      kept["probs"] = jax.nn.softmax(out["logits"], axis=-1)
    return kept

  label_field = getattr(run.task, "label_field", None)
  fields = (label_field,) if label_field and label_field != "tags" else ()
  result = {}
  for split in splits:
    source = shards.source(split)
    pieces = []
    for batch in input_pipeline.eval_batches(
        source, segment_length=run.input_length,
        segments_per_clip=config.data.segments_per_clip,
        global_batch_size=config.get("eval_batch_size", config.batch_size), fields=fields,
        placement=config.data.eval_placement, process_index=0, process_count=1):
      keep = {k: batch[k] for k in ("clip_index", "segment_valid") + fields}
      pieces.append((segment_outputs(restored.variables, {"audio": batch["audio"]}), keep))
    outputs, kept = jax.tree.map(lambda *xs: np.concatenate(xs), *jax.device_get(pieces))
    segments = dict(outputs, **kept)
    clips = {key: clip_means(segments, key, len(source))[0].astype(np.float32)
             for key in outputs}
    if fields:
      clips["labels"] = clip_values(segments, fields[0], len(source), fill=-1).astype(np.int64)
    result[split] = clips
  return result


def zscore_rows(scores: np.ndarray) -> np.ndarray:
  """Per-clip normalisation of ``[n, K]`` scores over the ``K`` artists."""
  scores = np.asarray(scores, np.float64)
  std = scores.std(axis=1, keepdims=True)
  return (scores - scores.mean(axis=1, keepdims=True)) / np.maximum(std, 1e-12)


def fuse_scores(ivector_scores: np.ndarray, dcnn_scores: np.ndarray, weight: float) -> np.ndarray:
  """``weight * z(ivector) + (1 - weight) * z(dcnn)`` -> ``[n, K]``."""
  return weight * zscore_rows(ivector_scores) + (1.0 - weight) * zscore_rows(dcnn_scores)


def _cross_entropy(scores: np.ndarray, columns: np.ndarray) -> float:
  logp = scores - scores.max(axis=1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
  return float(-np.mean(logp[np.arange(len(columns)), columns]))


def choose_fusion_weight(ivector_scores: np.ndarray, dcnn_scores: np.ndarray,
                         labels: np.ndarray, class_ids: np.ndarray, grid: int = 21) -> float:
  """The weight in ``linspace(0, 1, grid)`` with the best accuracy on held-out scores (ties:
  lowest cross entropy). Clips of artists without a model (not in ``class_ids``) are ignored."""
  columns = np.searchsorted(class_ids, labels)
  known = (columns < len(class_ids)) & (class_ids[np.minimum(columns, len(class_ids) - 1)]
                                         == labels)
  if not known.any():
    raise UserError("No validation clip belongs to a training artist; the fusion weight cannot "
                    "be chosen.")
  best = None
  for weight in np.linspace(0.0, 1.0, grid):
    fused = fuse_scores(ivector_scores[known], dcnn_scores[known], weight)
    acc = float(np.mean(np.argmax(fused, axis=1) == columns[known]))
    key = (acc, -_cross_entropy(fused, columns[known]))
    if best is None or key > best[0]:
      best = (key, round(float(weight), 6))
  return best[1]


def fit_fusion_features(ivectors: np.ndarray, embeddings: np.ndarray) -> dict:
  """Centring means of both systems (from training vectors) for ``fusion_features``."""
  return {"ivector_mean": ivectors.mean(axis=0), "embedding_mean": embeddings.mean(axis=0)}


def fusion_features(params: dict, ivectors: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
  """``[n, R + E]``: centred, length-normalised i-vectors and deep features side by side."""
  parts = [backend_lib.length_normalize(ivectors - params["ivector_mean"]),
           backend_lib.length_normalize(embeddings - params["embedding_mean"])]
  return np.concatenate([np.asarray(p) for p in parts], axis=1)
