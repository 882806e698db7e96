"""Retrieval / triplet evaluator of the metric-learning task (papers 4, 9, 13, 14; papers.md 5.5,
10, 14.5, 15.3).

Per clip: the mean of the segment embeddings (paper 13's song embedding). For every label of
``task.eval_labels`` on the evaluated clips, in the complete space ``n(f)`` and, for a
disentangled model, in the label's own subspace (``sub_`` prefix):

* retrieval, each clip querying all the others (leave-one-out): ``map``, ``precision@k``,
  ``recall@k`` (paper 14's Recall@K: a relevant item in the top k), ``ndcg@k``, and ``chance``
  (the precision of a random ranking, for comparison);
* ``triplet_acc`` on ``task.eval_triplets`` triplets sampled from the label (fixed seed),
  Euclidean distance on unit vectors (paper 13);
* ``track/triplet_acc``: anchor and positive are two segments of one clip, the negative a segment
  of another clip (paper 13's track triplets);
* ``overall/...``: the mean over the tag labels of ``eval_labels``;
* ``roc_auc`` / ``pr_auc`` of auto-tagging: through the model's head when it predicts the tags,
  else through a linear probe (ridge regression on the clip embeddings, 2-fold
  cross-validation inside the split: ``probe_roc_auc``);
* ``loss``: the head's cross-entropy, or the training hinge on the sampled held-out triplets;
* ``clips``.

A label is a tag label when the bound task has tag columns for it (``task.data.tag_columns``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.data.pk_batches import label_fields
from musicrep_jax.evaluators.common import (clip_means, clip_values, require, segment_mean,
                                            valid_segments)
from musicrep_jax.models.embedding import subspace_masks
from musicrep_jax.ops import metrics, retrieval
from musicrep_jax.ops.losses import label_match, paired_distances
from musicrep_jax.registry import EVALUATORS

TRACK = "track"


def _as_multi_hot(labels, width: int = 0) -> np.ndarray:
  """Int ids ``[N]`` (negative = unknown) -> one-hot over the ids present, or multi-hot
  ``[N, C]`` as is; zero-padded to ``width`` columns. Relevance (a shared positive column) is
  unchanged: equal ids, or a shared tag."""
  labels = np.asarray(labels)
  if labels.ndim == 1:
    ids, inverse = np.unique(labels, return_inverse=True)
    hot = np.zeros((len(labels), len(ids)), np.float32)
    hot[np.arange(len(labels)), inverse] = 1.0
    labels = hot[:, ids >= 0] if len(ids) else hot
  labels = (labels > 0).astype(np.float32)
  return np.pad(labels, ((0, 0), (0, max(width - labels.shape[1], 0))))


def _clip_labels(label: str, fields: dict, tag_columns: dict) -> np.ndarray:
  """A label's per-clip values: multi-hot over its tag columns, or int ids ``[clips]``."""
  if label in tag_columns:
    return (fields["tags"][:, tag_columns[label]] > 0).astype(np.float32)
  return np.asarray(fields[label], np.int64)


def _triplets(labels, num: int, seed: int):
  try:
    return retrieval.sample_triplets(labels, num, seed)
  except ValueError:  # No clip with both a positive and a negative (tiny splits).
    return None


def _retrieval(space, labels, ks, prefix: str) -> dict:
  result = retrieval.retrieval_metrics(space, space, labels, labels, ks=ks, exclude_self=True,
                                       metric="cosine")
  keep = (["map", f"ndcg@{max(ks)}"] + [f"precision@{k}" for k in ks]
          + [f"recall@{k}" for k in ks])
  return {f"{prefix}{k}": float(result[k]) for k in keep}


def _chance_precision(labels) -> float:
  """Expected precision of a random ranking: the mean fraction of relevant other clips, over the
  clips that have at least one."""
  match = np.asarray(label_match(labels, labels))
  np.fill_diagonal(match, False)
  n = match.shape[0]
  rate = match.sum(1) / max(n - 1, 1)
  usable = match.any(1)
  return float(rate[usable].mean()) if usable.any() else float("nan")


def _overall(out: dict, tag_labels: list) -> dict:
  """Means over the tag labels of the per-label metrics present for all of them."""
  if not tag_labels:
    return {}
  suffixes = {k.split("/", 1)[1] for k in out if k.startswith(tag_labels[0] + "/")}
  result = {}
  for suffix in sorted(suffixes):
    values = [out.get(f"{lab}/{suffix}") for lab in tag_labels]
    if all(v is not None for v in values):
      result[f"overall/{suffix}"] = float(np.nanmean(values))
  return result


def _tagging(task, segments: dict, num_clips: int, present, clip_emb, fields) -> dict:
  """Auto-tagging ROC-AUC / PR-AUC through the head, or through a linear probe."""
  if "tags" not in fields:
    return {}
  tags = fields["tags"]
  if "scores" in segments and not task.int_head:
    scores, _ = clip_means(segments, "scores", num_clips)
    result = metrics.tagging_metrics(scores[present], tags)
    return {k: float(v) for k, v in result.items() if k in ("roc_auc", "pr_auc")}
  probe = metrics.ridge_probe_scores(metrics.unit_rows(clip_emb), tags)
  result = metrics.tagging_metrics(probe, tags)
  return {"probe_roc_auc": float(result["roc_auc"]), "probe_pr_auc": float(result["pr_auc"]),
          "roc_auc": float(result["roc_auc"])}


def _eval_loss(task, segments, clip_emb, seg_emb, masks, fields, cache) -> float:
  """The head's mean segment loss, or the training hinge on held-out triplets: per block, the
  evaluation triplets of its label (clip level; segment level for track blocks) in the
  block's space (``task.space``), weighted as in training (``task.block_weight``)."""
  if "loss" in segments:
    return segment_mean(segments, "loss")
  total = 0.0
  for b, label in enumerate(task.blocks):
    if label == TRACK:
      emb, triplets = seg_emb, cache[TRACK]
    else:
      if label not in cache:
        labels = _clip_labels(label, fields, task.data.tag_columns)
        cache[label] = (labels, _triplets(labels, task.eval_triplets, seed=100 + b))
      emb, triplets = clip_emb, cache[label][1]
    if triplets is None:
      continue
    x = task.space(jnp.asarray(emb), masks, b)
    a, p, n = (x[triplets[:, j]] for j in range(3))
    hinge = jax.nn.relu(task.margin + paired_distances(a, p, task.metric)
                        - paired_distances(a, n, task.metric))
    total += task.block_weight(b) * float(jnp.mean(hinge))
  return total


@EVALUATORS.register("retrieval")
def retrieval_evaluator(task: Any, segments: dict, num_clips: int, variables: Any = None, *,
                        model: Any = None) -> dict:
  """Segment outputs of a split -> held-out retrieval, triplet accuracy, tagging and loss
  (module docstring).

  Reads ``embedding`` ``[S, D]`` (and the head's ``scores`` / ``loss`` when present) of
  ``eval_outputs``, the label fields, and ``variables["params"]`` for the subspace masks of a
  disentangled model; the task's settings (``eval_labels``, ``labels``, ``retrieval_ks``,
  ``eval_triplets``...) and tag columns (``task.data``).
  """
  del model
  require(segments, ("embedding",), "retrieval", task)
  tag_columns = task.data.tag_columns
  seg_emb = np.asarray(segments["embedding"], np.float32)
  clip_emb, counts = clip_means(segments, seg_emb, num_clips)
  present = counts > 0
  clip_emb = clip_emb[present]
  fields = {name: clip_values(segments, name, num_clips)[present]
            for name in label_fields(task.eval_labels + task.labels) if name in segments}
  masks = (subspace_masks((variables or {}).get("params", {}), len(task.labels),
                          seg_emb.shape[-1]) if task.disentangled else None)
  out = {"clips": int(present.sum())}
  cache = {}
  all_labels = {lab: _clip_labels(lab, fields, tag_columns) for lab in task.eval_labels}
  # One label width for every retrieval call: its kernel then compiles once per split size.
  width = max(_as_multi_hot(labels).shape[1] for labels in all_labels.values())
  for i, label in enumerate(task.eval_labels):
    labels = all_labels[label]
    spaces = {"": metrics.unit_rows(clip_emb)}
    if masks is not None and label in task.labels:
      spaces["sub_"] = metrics.unit_rows(clip_emb * masks[task.labels.index(label)])
    triplets = _triplets(labels, task.eval_triplets, seed=i)
    cache[label] = (labels, triplets)
    for prefix, space in spaces.items():
      out.update(_retrieval(space, _as_multi_hot(labels, width), task.retrieval_ks,
                            f"{label}/{prefix}"))
      out[f"{label}/{prefix}triplet_acc"] = (
          retrieval.triplet_accuracy(space, triplets, metric="euclidean")
          if triplets is not None else float("nan"))
    out[f"{label}/chance"] = _chance_precision(labels)
  valid_emb = valid_segments(segments, "embedding").astype(np.float32)
  track_triplets = _triplets(valid_segments(segments, "clip_index"), task.eval_triplets,
                             seed=len(task.eval_labels))
  out["track/triplet_acc"] = (
      retrieval.triplet_accuracy(metrics.unit_rows(valid_emb), track_triplets,
                                 metric="euclidean")
      if track_triplets is not None else float("nan"))
  cache[TRACK] = track_triplets
  out.update(_overall(out, [lab for lab in task.eval_labels if lab in tag_columns]))
  out.update(_tagging(task, segments, num_clips, present, clip_emb, fields))
  out["loss"] = _eval_loss(task, segments, clip_emb, valid_emb, masks, fields, cache)
  return out
