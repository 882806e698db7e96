"""Retrieval / triplet evaluator of the metric-learning task (papers 4, 9, 13, 14; papers.md 5.5,
10, 14.5, 15.3).

Per clip: the mean of the segment embeddings (paper 13's song embedding: the evaluation
segments are ``config.data.segments_per_clip`` windows placed by ``config.data.eval_placement``,
``data.pipeline.eval_batches``; back-to-back 3-s windows of an MSD preview with ``"start"``).
For every label of ``task.eval_labels`` on the evaluated clips, in the complete space and, for a
disentangled model, in the label's own subspace (``sub_`` prefix):

* retrieval, each clip querying all the others (leave-one-out): ``map``, ``precision@k``,
  ``recall@k`` (paper 14's Recall@K: a relevant item in the top k), ``ndcg@k``, and ``chance``
  (the precision of a random ranking, for comparison);
* ``triplet_acc`` on ``task.eval_triplets`` triplets sampled from the label (fixed seed;
  paper 13: 40,000 per dimension), Euclidean distance (paper 13);
* ``track/triplet_acc``: anchor and positive are two segments of one clip, the negative a segment
  of another clip (paper 13's track triplets; ``task.eval_track_triplets`` of them when the task
  has the field, else ``eval_triplets``). Two segments of one clip overlap by at most 50 %
  (paper 13) when the windows start at least half a window apart: always with ``"start"``
  placement on clips of ``segments_per_clip`` windows or more (no overlap); not checked here;
* ``overall/...``: the mean over the tag labels and the tolerance labels (tempo) of
  ``eval_labels``: paper 13's "Overall" over genre, mood, instrument and tempo;
* ``roc_auc`` / ``pr_auc`` of auto-tagging (paper 14): through the model's head when it predicts
  the tags, else through a linear probe (ridge regression on the clip embeddings, 2-fold
  cross-validation inside the split: ``probe_roc_auc``);
* ``loss``: the head's cross-entropy, or the training hinge on the sampled held-out triplets;
* ``clips``.

A label is a tag label when the bound task has tag columns for it (``task.data.tag_columns``):
relevance = a shared tag. A label with a tolerance (``task.tolerance(label)``: tempo in BPM)
is float, NaN unknown, relevant within the tolerance (paper 13: 5 BPM). Other labels are int
ids. The space: unit vectors ranked by cosine when the task normalises its embedding or uses a
cosine loss; otherwise the raw embedding with Euclidean distances (paper 14's "L2 norm" column
applies before retrieval too, papers.md 15.2; the MFCC-VQ histograms of paper 13).
"""

from __future__ import annotations

from typing import Any, Optional

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


def _tolerance(task, label: str) -> Optional[float]:
  """The task's match tolerance of ``label`` (float labels such as tempo in BPM), else None."""
  return getattr(task, "tolerance", lambda _: None)(label)


def _clip_labels(label: str, fields: dict, tag_columns: dict,
                 tolerance: Optional[float] = None) -> np.ndarray:
  """A label's per-clip values: multi-hot over its tag columns, float32 values ``[clips]``
  (a label with a ``tolerance``: tempo in BPM, NaN unknown), or int ids ``[clips]``."""
  if label in tag_columns:
    return (fields["tags"][:, tag_columns[label]] > 0).astype(np.float32)
  if tolerance is not None:
    return np.asarray(fields[label], np.float32)
  return np.asarray(fields[label], np.int64)


def _triplets(labels, num: int, seed: int, tolerance: Optional[float] = None):
  try:
    return retrieval.sample_triplets(labels, num, seed, tolerance=tolerance)
  except ValueError:  # No clip with both a positive and a negative (tiny splits).
    return None


def evaluation_space(task) -> tuple:
  """``(transform, retrieval metric)``: unit rows and cosine ranking when the task compares
  directions (``normalize``, or a cosine loss), else the raw embedding and Euclidean ranking
  (paper 14's un-normalised classification row, papers.md 15.2: "L2 norm" applies before
  retrieval too)."""
  if getattr(task, "normalize", True) or getattr(task, "metric", "") == "cosine":
    return metrics.unit_rows, "cosine"
  return (lambda x: np.asarray(x, np.float32)), "euclidean"


def _retrieval(space, labels, ks, prefix: str, tolerance: Optional[float] = None,
               metric: str = "cosine") -> dict:
  result = retrieval.retrieval_metrics(space, space, labels, labels, ks=ks, exclude_self=True,
                                       metric=metric, tolerance=tolerance)
  keep = (["map", f"ndcg@{max(ks)}"] + [f"precision@{k}" for k in ks]
          + [f"recall@{k}" for k in ks])
  return {f"{prefix}{k}": float(result[k]) for k in keep}


def _chance_precision(labels, tolerance: Optional[float] = None) -> float:
  """Expected precision of a random ranking: the mean fraction of relevant other clips, over the
  clips that have at least one."""
  match = np.asarray(label_match(labels, labels, tolerance=tolerance))
  np.fill_diagonal(match, False)
  n = match.shape[0]
  rate = match.sum(1) / max(n - 1, 1)
  usable = match.any(1)
  return float(rate[usable].mean()) if usable.any() else float("nan")


def _overall(out: dict, tag_labels: list) -> dict:
  """Means over ``tag_labels`` (the tag labels and the tolerance labels: paper 13's four
  dimensions) of the per-label metrics present for all of them."""
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


def _track_triplets(task) -> int:
  """Track triplets sampled at evaluation: ``task.eval_track_triplets`` when the task sets it
  (not None), else ``task.eval_triplets`` (paper 13: 40,000 of each)."""
  count = getattr(task, "eval_track_triplets", None)
  return int(task.eval_triplets if count is None else count)


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
        tol = _tolerance(task, label)
        labels = _clip_labels(label, fields, task.data.tag_columns, tol)
        cache[label] = (labels, _triplets(labels, task.eval_triplets, seed=100 + b,
                                          tolerance=tol))
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
  unit, metric = evaluation_space(task)
  cache = {}
  tols = {lab: _tolerance(task, lab) for lab in task.eval_labels}
  all_labels = {lab: _clip_labels(lab, fields, tag_columns, tols[lab]) for lab in task.eval_labels}
  # One label width for every retrieval call of id / tag labels: its kernel then compiles once
  # per split size (float labels match by tolerance, without one-hot columns).
  width = max([_as_multi_hot(labels).shape[1] for lab, labels in all_labels.items()
               if tols[lab] is None], default=0)
  for i, label in enumerate(task.eval_labels):
    labels, tol = all_labels[label], tols[label]
    spaces = {"": unit(clip_emb)}
    if masks is not None and label in task.labels:
      spaces["sub_"] = unit(clip_emb * masks[task.labels.index(label)])
    triplets = _triplets(labels, task.eval_triplets, seed=i, tolerance=tol)
    cache[label] = (labels, triplets)
    for prefix, space in spaces.items():
      relevance = labels if tol is not None else _as_multi_hot(labels, width)
      out.update(_retrieval(space, relevance, task.retrieval_ks, f"{label}/{prefix}", tol,
                            metric))
      out[f"{label}/{prefix}triplet_acc"] = (
          retrieval.triplet_accuracy(space, triplets, metric="euclidean")
          if triplets is not None else float("nan"))
    out[f"{label}/chance"] = _chance_precision(labels, tol)
  valid_emb = valid_segments(segments, "embedding").astype(np.float32)
  track_triplets = _triplets(valid_segments(segments, "clip_index"), _track_triplets(task),
                             seed=len(task.eval_labels))
  out["track/triplet_acc"] = (
      retrieval.triplet_accuracy(unit(valid_emb), track_triplets,
                                 metric="euclidean")
      if track_triplets is not None else float("nan"))
  cache[TRACK] = track_triplets
  out.update(_overall(out, [lab for lab in task.eval_labels
                            if lab in tag_columns or tols[lab] is not None]))
  out.update(_tagging(task, segments, num_clips, present, clip_emb, fields))
  out["loss"] = _eval_loss(task, segments, clip_emb, valid_emb, masks, fields, cache)
  return out
