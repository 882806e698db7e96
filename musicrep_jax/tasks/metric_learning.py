"""Metric learning and classification for music similarity: papers 4, 9, 13 and 14 in one task.

One task, three approaches (papers.md 5.2, 10, 14.3, 15.2), each plain or disentangled:

* ``"triplet"``: P x K batches (``musicrep_jax.data.pk_batches``), one block per label in
  ``labels``; a triplet hinge per block on the L2-normalised embedding (plain) or on the
  block's subspace ``n(f o m_s)`` (disentangled, paper 13's CSN), averaged over the blocks.
  ``track_weight > 0`` adds a block of track triplets on the whole embedding (paper 13's track
  regularisation, lambda 0.5). ``negatives > 0`` replaces in-batch mining by paper 4's Siamese
  form: each row is an anchor, the next row of its class slot its positive, and the same row of
  the next ``negatives`` slots its negatives (cosine hinge, margin 0.4, 4 negatives, summed).
* ``"classification"``: random batches (``input_pipeline.train_iterator``) and a dense head:
  sigmoid cross-entropy over the tags of the tag labels (paper 14 (c), (f)), or softmax
  cross-entropy over the classes of one integer label (paper 4's basic artist model).
* ``"proxy"``: as classification with one learned proxy per tag/class and cosine logits (paper
  14 (b), (e)).

Labels are those of ``metric_batches``: ``"artist"``, ``"album"``, ``"track"``, ``"tag:GROUP"``,
``"tag"``. When ``disentangled``, label ``i`` of ``labels`` owns subspace ``i`` of the
``embedding_net`` model (``num_subspaces = len(labels)``).

Evaluation (per clip: the mean of the segment embeddings, paper 13's song embedding), for every
label of ``eval_labels`` on the held-out clips, in the complete space ``n(f)`` and, for a
disentangled model, in the label's own subspace (``sub_`` prefix):

* retrieval, each clip querying all the others (leave-one-out): ``map``, ``precision@k``,
  ``recall@k`` (paper 14's Recall@K: a relevant item in the top k), ``ndcg@k``, and ``chance``
  (the precision of a random ranking, for comparison);
* ``triplet_acc`` on ``eval_triplets`` triplets sampled from the label (fixed seed), Euclidean
  distance on unit vectors (paper 13);
* ``track/triplet_acc``: anchor and positive are two segments of one clip, the negative a segment
  of another clip (paper 13's track triplets);
* ``overall/...``: the mean over the tag labels of ``eval_labels``;
* ``roc_auc`` / ``pr_auc`` of auto-tagging: through the model's head when it predicts the tags,
  else through a linear probe (ridge regression on the clip embeddings, 2-fold
  cross-validation inside the split: ``probe_roc_auc``);
* ``loss``: the head's cross-entropy, or the triplet hinge on the sampled held-out triplets.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.data import pk_batches as metric_batches
from musicrep_jax.ops import metrics, retrieval
from musicrep_jax.errors import UserError
from musicrep_jax.ops.losses import (apply_mask, l2_normalize, label_match, paired_distances,
                                 sigmoid_cross_entropy, softmax_cross_entropy, triplet_loss,
                                 triplet_margin_loss)
from musicrep_jax.models.embedding import subspace_masks
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import Task

APPROACHES = ("triplet", "classification", "proxy")
TRACK = "track"


def is_tag_label(label: str) -> bool:
  return label.split(":")[0] == "tag"


@functools.lru_cache(maxsize=8)
def _train_tables(dataset_dir: str, split: str, labels: tuple, tag_groups_json: str):
  """Class tables of a prepared split, computed once per process (one pass over the split)."""
  from musicrep_jax.data.shards import ShardSource

  return metric_batches.class_tables(ShardSource(dataset_dir, split), labels,
                                     json.loads(tag_groups_json))


@TASKS.register("metric_learning")
@dataclasses.dataclass(frozen=True)
class MetricLearningTask(Task):
  """Configurable metric-learning / classification task (module docstring).

  Attributes:
    approach: ``"triplet"``, ``"classification"`` or ``"proxy"``.
    disentangled: subspace per label (CSN masks; per-subspace heads).
    labels: training labels (blocks of P x K batches, or the head's targets).
    eval_labels: labels evaluated on held-out clips.
    classes_per_batch, samples_per_class: ``P`` and ``K`` per block (triplet approach).
    margin, metric, mining, reduction: the triplet hinge (``losses.triplet_loss``); paper 13:
      0.1, Euclidean on unit vectors, every triplet of the batch, mean.
    negatives: > 0 selects paper 4's explicit negatives (see module docstring).
    track_weight: paper 13's lambda for the track-triplet block (0 = none).
    normalize: L2-normalise the embedding before the loss and the head (paper 14's "L2 norm").
    mask_l1: L1 penalty on the masks (learned masks, CSN).
    max_overlap: of two crops of one clip in a P x K slot (paper 13: 0.5).
    eval_triplets: triplets per label at evaluation; retrieval_ks: cut-offs (paper 14: 1,2,4,8).
    train_split: where the P x K class tables and the class count come from.
  """

  approach: str = "triplet"
  disentangled: bool = False
  labels: tuple = ("tag:genre", "tag:mood", "tag:instrument", "tag:tempo")
  eval_labels: tuple = ("tag:genre", "tag:mood", "tag:instrument", "tag:tempo", "artist",
                        "album")
  classes_per_batch: int = 4
  samples_per_class: int = 2
  margin: float = 0.1
  metric: str = "euclidean"
  mining: str = "all"
  reduction: str = "mean"
  negatives: int = 0
  track_weight: float = 0.0
  normalize: bool = True
  mask_l1: float = 0.0
  max_overlap: float = 0.5
  eval_triplets: int = 2000
  retrieval_ks: tuple = (1, 2, 4, 8)
  train_split: str = "train"

  def __post_init__(self):
    if self.approach not in APPROACHES:
      raise UserError(f"config.task.kwargs.approach={self.approach!r} is not one of "
                      f"{APPROACHES}.")
    if not self.labels:
      raise UserError("config.task.kwargs.labels is empty; name at least one label.")
    if self.approach != "triplet":
      if self.track_weight or self.negatives:
        raise UserError("track_weight and negatives only apply to approach='triplet'.")
      tags = [is_tag_label(lab) for lab in self.labels]
      if not all(tags) and len(self.labels) != 1:
        raise UserError(f"approach={self.approach!r} trains a head on tag labels or on one "
                        f"integer label, not on {self.labels}.")
      if self.disentangled and not all(tags):
        raise UserError("a disentangled head needs tag labels (one tag group per subspace).")
    if self.negatives and self.negatives >= self.classes_per_batch:
      raise UserError(f"negatives={self.negatives} must be below classes_per_batch="
                      f"{self.classes_per_batch} (negatives come from the other class slots).")

  # --- What the batches and the model carry ------------------------------------------------------
  @property
  def fields(self) -> tuple:
    names = metric_batches.label_fields(self.labels + self.eval_labels)
    return tuple(dict.fromkeys(names + (TRACK,)))

  @property
  def metric_names(self) -> tuple:
    if self.approach == "triplet":
      return ("loss", "active_fraction", "pos_dist", "neg_dist")
    return ("loss",)

  @property
  def higher_is_better(self) -> tuple:
    return ("overall/triplet_acc", "roc_auc", "track/triplet_acc")

  @property
  def blocks(self) -> tuple:
    """Labels of the P x K blocks: ``labels``, then the track-regularisation block if any."""
    return self.labels + ((TRACK,) if self.track_weight else ())

  @property
  def int_head(self) -> bool:
    """The head classifies one integer label (softmax) rather than tags (sigmoid)."""
    return self.approach != "triplet" and not is_tag_label(self.labels[0])

  def head_columns(self, shards) -> list:
    """Per label, the tag columns it ranges over (tag labels only)."""
    return [metric_batches.tag_columns(lab, shards.tag_groups, len(shards.tag_names)).tolist()
            for lab in self.labels if is_tag_label(lab)]

  def num_outputs(self, shards) -> int:
    if self.approach == "triplet":
      return 0
    if self.int_head:
      table = self._tables(shards, self.labels)[0]
      return int(table.class_ids.max()) + 1
    return len(shards.tag_names)

  def model_kwargs(self, shards) -> dict:
    self.bind(shards)
    groups = self.head_columns(shards) if self.approach != "triplet" else []
    if self.approach != "triplet" and not self.int_head:
      covered = sorted(i for g in groups for i in g)
      if self.disentangled and covered != sorted(set(covered)):
        raise UserError(f"the tag labels {self.labels} overlap; a disentangled head needs "
                        "disjoint tag groups.")
    return {"num_outputs": self.num_outputs(shards),
            "head": {"triplet": "none", "classification": "dense",
                     "proxy": "proxy"}[self.approach],
            "disentangled": self.disentangled, "normalize": self.normalize,
            "num_subspaces": len(self.labels) if self.disentangled else 0,
            "head_groups": tuple(tuple(g) for g in groups) if self.disentangled else ()}

  def _tables(self, shards, labels: tuple):
    return _train_tables(str(shards.dataset_dir), self.train_split, tuple(labels),
                         json.dumps(shards.tag_groups, sort_keys=True))

  def train_iterator(self, source, *, crop_length: int, global_batch_size: int, seed: int,
                     num_workers: int, shards: Any = None):
    if self.approach != "triplet":
      return super().train_iterator(source, crop_length=crop_length,
                                    global_batch_size=global_batch_size, seed=seed,
                                    num_workers=num_workers, shards=shards)
    tag_groups = shards.tag_groups if shards is not None else {}
    tables = (self._tables(shards, self.blocks) if shards is not None
              and getattr(source, "split", None) == self.train_split else None)
    return metric_batches.pk_iterator(
        source, labels=self.blocks, classes_per_batch=self.classes_per_batch,
        samples_per_class=self.samples_per_class, crop_length=crop_length,
        global_batch_size=global_batch_size, seed=seed, tag_groups=tag_groups,
        fields=self.fields, max_overlap=self.max_overlap, tables=tables,
        num_workers=num_workers)

  # --- Losses --------------------------------------------------------------------------------
  def _labels_of(self, label: str, batch: dict, rows=slice(None)):
    """Training labels of ``rows`` for ``label``: int ids ``[n]`` or multi-hot ``[n, C]``.
    Tag labels use the clip's tags of the label's columns (positives share one tag), so a
    multi-label group (instruments) treats two clips sharing any instrument as similar."""
    if is_tag_label(label):
      return batch["tags"][rows][:, self._tag_columns[label]]
    return batch[label][rows]

  def bind(self, shards) -> None:
    """Records each tag label's columns for this dataset. ``model_kwargs`` calls it: the trainer
    calls that with the shards before any loss or metric is computed."""
    columns = {lab: metric_batches.tag_columns(lab, shards.tag_groups, len(shards.tag_names))
               for lab in self.labels + self.eval_labels if is_tag_label(lab)}
    object.__setattr__(self, "_columns", columns)

  @property
  def _tag_columns(self) -> dict:
    if "_columns" not in self.__dict__:
      raise RuntimeError("MetricLearningTask.bind(shards) (or model_kwargs) must run first")
    return self.__dict__["_columns"]

  def _space(self, embedding, masks, block: int):
    """The embedding a block's loss sees: ``n(f o m_block)`` (disentangled, label blocks) or
    ``n(f)`` (plain, or the track-regularisation block)."""
    if self.disentangled and block < len(self.labels):
      embedding = apply_mask(embedding, masks[block])
    return l2_normalize(embedding) if self.normalize else embedding

  def _siamese(self, x, labels):
    """Paper 4's hinge: anchor = every row, positive = the next row of its slot, negatives =
    the same row of the next ``negatives`` slots (not matching the anchor's label)."""
    p, k = self.classes_per_batch, self.samples_per_class
    idx = np.arange(p * k).reshape(p, k)
    pos = np.roll(idx, -1, axis=1).reshape(-1)
    neg = np.stack([np.roll(idx, -j, axis=0) for j in range(1, self.negatives + 1)],
                   -1).reshape(p * k, self.negatives)
    match = label_match(labels, labels)
    neg_valid = ~jnp.take_along_axis(match, jnp.asarray(neg), axis=1)
    return triplet_margin_loss(x, x[pos], x[neg], margin=self.margin, metric=self.metric,
                               negative_valid=neg_valid, reduction=self.reduction)

  def loss(self, outputs: dict, batch: dict) -> tuple[jnp.ndarray, dict]:
    if self.approach != "triplet":
      loss, _ = self._head_loss(outputs, batch)
      loss = loss + self._mask_penalty(outputs)
      return loss, {"loss": loss}
    n = self.classes_per_batch * self.samples_per_class
    total, stats = 0.0, {k: 0.0 for k in self.metric_names[1:]}
    for b, label in enumerate(self.blocks):
      rows = slice(b * n, (b + 1) * n)
      x = self._space(outputs["embedding"][rows], outputs.get("masks"), b)
      labels = self._labels_of(label, batch, rows)
      if self.negatives:
        block_loss, block_stats = self._siamese(x, labels)
      else:
        block_loss, block_stats = triplet_loss(x, labels, margin=self.margin, mining=self.mining,
                                               metric=self.metric, reduction=self.reduction)
      weight = 1.0 / len(self.labels) if b < len(self.labels) else self.track_weight
      total = total + weight * block_loss
      for k in stats:
        stats[k] = stats[k] + block_stats[k] / len(self.blocks)
    total = total + self._mask_penalty(outputs)
    return total, dict(stats, loss=total)

  def _mask_penalty(self, outputs: dict):
    if not (self.mask_l1 and self.disentangled):
      return 0.0
    return self.mask_l1 * jnp.sum(jnp.abs(outputs["masks"]))

  def _head_loss(self, outputs: dict, batch: dict, per_row: bool = False):
    """Cross-entropy of the head (mean, or per row ``[B]`` when ``per_row``)."""
    logits = outputs["logits"]
    if self.int_head:
      labels = batch[self.labels[0]]
      if per_row:
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], -1)[:, 0]
      return softmax_cross_entropy(logits, labels)
    columns = np.asarray(sorted({c for lab in self.labels for c in self._tag_columns[lab]}))
    logits, targets = logits[:, columns], batch["tags"][:, columns]
    if per_row:
      return jnp.mean(jax.nn.relu(logits) - logits * targets
                      + jnp.log1p(jnp.exp(-jnp.abs(logits))), axis=-1)
    return sigmoid_cross_entropy(logits, targets)

  # --- Evaluation ----------------------------------------------------------------------------
  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    out = {"embedding": outputs["embedding"]}
    if "logits" in outputs:
      scores = (jax.nn.softmax(outputs["logits"]) if self.int_head
                else jax.nn.sigmoid(outputs["logits"]))
      out.update(scores=scores, loss=self._head_loss(outputs, batch, per_row=True))
    return out

  def clip_metrics(self, segments: dict, num_clips: int, variables: Any = None) -> dict:
    """Held-out retrieval, triplet accuracy, tagging and loss (module docstring) -> floats."""
    valid = np.asarray(segments["segment_valid"], bool)
    clip_index = np.asarray(segments["clip_index"])
    seg_emb = np.asarray(segments["embedding"], np.float32)
    clip_emb, counts = metrics.clip_average(seg_emb, clip_index, valid, num_clips)
    clip_emb, present = np.asarray(clip_emb), np.asarray(counts) > 0
    clip_emb = clip_emb[present]
    fields = _clip_fields(segments, clip_index, valid, num_clips, present,
                          metric_batches.label_fields(self.eval_labels + self.labels))
    masks = (subspace_masks((variables or {}).get("params", {}), len(self.labels), seg_emb.shape[-1])
             if self.disentangled else None)
    out = {"clips": int(present.sum())}
    eval_cache = {}
    all_labels = {lab: _clip_labels(lab, fields, self._tag_columns) for lab in self.eval_labels}
    # One label width for every retrieval call: its kernel then compiles once per split size.
    width = max(_as_multi_hot(labels).shape[1] for labels in all_labels.values())
    for i, label in enumerate(self.eval_labels):
      labels = all_labels[label]
      spaces = {"": _unit(clip_emb)}
      if masks is not None and label in self.labels:
        spaces["sub_"] = _unit(clip_emb * masks[self.labels.index(label)])
      triplets = _triplets(labels, self.eval_triplets, seed=i)
      eval_cache[label] = (labels, triplets)
      for prefix, space in spaces.items():
        out.update(_retrieval(space, _as_multi_hot(labels, width), self.retrieval_ks,
                              f"{label}/{prefix}"))
        out[f"{label}/{prefix}triplet_acc"] = (
            retrieval.triplet_accuracy(space, triplets, metric="euclidean")
            if triplets is not None else float("nan"))
      out[f"{label}/chance"] = _chance_precision(labels)
    seg_unit = _unit(seg_emb[valid])
    track_triplets = _triplets(clip_index[valid], self.eval_triplets, seed=len(self.eval_labels))
    out["track/triplet_acc"] = (retrieval.triplet_accuracy(seg_unit, track_triplets,
                                                           metric="euclidean")
                                if track_triplets is not None else float("nan"))
    eval_cache[TRACK] = track_triplets
    out.update(_overall(out, [lab for lab in self.eval_labels if is_tag_label(lab)],
                        self.retrieval_ks))
    out.update(self._tagging(segments, clip_index, valid, num_clips, present, clip_emb, fields))
    out["loss"] = self._eval_loss(segments, valid, clip_emb, seg_emb[valid], clip_index[valid],
                                  masks, fields, eval_cache)
    return out

  def _tagging(self, segments, clip_index, valid, num_clips, present, clip_emb, fields) -> dict:
    if "tags" not in fields:
      return {}
    tags = fields["tags"]
    if "scores" in segments and not self.int_head:
      scores, _ = metrics.clip_average(segments["scores"], clip_index, valid, num_clips)
      result = metrics.tagging_metrics(np.asarray(scores)[present], tags)
      return {k: float(v) for k, v in result.items() if k in ("roc_auc", "pr_auc")}
    result = metrics.tagging_metrics(ridge_probe_scores(_unit(clip_emb), tags), tags)
    return {"probe_roc_auc": float(result["roc_auc"]), "probe_pr_auc": float(result["pr_auc"]),
            "roc_auc": float(result["roc_auc"])}

  def _eval_loss(self, segments, valid, clip_emb, seg_emb, seg_clip, masks, fields,
                 cache) -> float:
    """The head's mean segment loss, or the training hinge on held-out triplets: per block, the
    evaluation triplets of its label (clip level; segment level for track blocks) in the
    block's space, weighted as in training."""
    if "loss" in segments:
      return float(np.sum(np.asarray(segments["loss"]) * valid) / max(valid.sum(), 1))
    total = 0.0
    for b, label in enumerate(self.blocks):
      if label == TRACK:
        emb, triplets = seg_emb, cache[TRACK]
      else:
        if label not in cache:
          labels = _clip_labels(label, fields, self._tag_columns)
          cache[label] = (labels, _triplets(labels, self.eval_triplets, seed=100 + b))
        emb, triplets = clip_emb, cache[label][1]
      if triplets is None:
        continue
      x = self._space(jnp.asarray(emb), masks, b)
      a, p, n = (x[triplets[:, j]] for j in range(3))
      hinge = jax.nn.relu(self.margin + paired_distances(a, p, self.metric)
                          - paired_distances(a, n, self.metric))
      weight = 1.0 / len(self.labels) if b < len(self.labels) else self.track_weight
      total += weight * float(jnp.mean(hinge))
    return total


# ------------------------------------------------------------------------------ eval helpers


def _unit(x) -> np.ndarray:
  """Rows scaled to unit L2 norm (host numpy; zero rows stay zero) -> float32."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


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


def _clip_fields(segments, clip_index, valid, num_clips, present, names) -> dict:
  """Per-clip values of the label fields (a clip's segments all carry its values)."""
  out = {}
  for name in names:
    if name not in segments:
      continue
    values = np.asarray(segments[name])
    clip = np.zeros((num_clips,) + values.shape[1:], values.dtype)
    clip[clip_index[valid]] = values[valid]
    out[name] = clip[present]
  return out


def _clip_labels(label: str, fields: dict, tag_columns: dict) -> np.ndarray:
  if is_tag_label(label):
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


def _overall(out: dict, tag_labels: list, ks) -> dict:
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


def ridge_probe_scores(x: np.ndarray, targets: np.ndarray, l2: float = 1.0,
                       folds: int = 2) -> np.ndarray:
  """Linear-probe tag scores ``[N, T]`` by ridge regression with ``folds``-fold cross-validation
  (each clip scored by a probe fitted on the other folds; folds are interleaved clips). Each
  fold's scores are centred per tag: the folds' different label rates would otherwise shift the
  probes' intercepts and rank whole folds against each other (with a few dozen clips that bias
  pushes the ROC-AUC of an uninformative embedding below 0.5)."""
  x = np.concatenate([x, np.ones((x.shape[0], 1), x.dtype)], axis=1).astype(np.float64)
  y = np.asarray(targets, np.float64)
  scores = np.zeros_like(y)
  fold = np.arange(x.shape[0]) % folds
  for f in range(folds):
    train, test = fold != f, fold == f
    gram = x[train].T @ x[train] + l2 * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x[train].T @ y[train])
    fold_scores = x[test] @ weights
    scores[test] = fold_scores - fold_scores.mean(axis=0)
  return scores.astype(np.float32)
