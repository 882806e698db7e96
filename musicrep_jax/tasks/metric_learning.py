"""Metric learning and classification for music similarity: papers 4, 9, 13 and 14 in one task.

One task, three approaches (papers.md 5.2, 10, 14.3, 15.2), each plain or disentangled:

* ``"triplet"``: P x K batches (``musicrep_jax.data.pk_batches``), one block per label in
  ``labels``; a triplet hinge per block on the L2-normalised embedding (plain) or on the
  block's subspace ``n(f o m_s)`` (disentangled, paper 13's CSN), averaged over the blocks.
  Each block's hinge covers every valid triplet of the block (``mining="all"``, batch-all):
  that is our choice, not paper 13's, which draws random triplets and describes no mining
  (papers.md 14.4); ``"batch_hard"`` and ``"semi_hard"`` are the other options.
  ``track_weight > 0`` adds a block of track triplets on the whole embedding (paper 13's track
  regularisation, lambda 0.5). ``negatives > 0`` replaces in-batch mining by paper 4's Siamese
  form: each row is an anchor, the next row of its class slot its positive, and the same row of
  the next ``negatives`` slots its negatives (cosine hinge, margin 0.4, 4 negatives, summed).
* ``"classification"``: random batches (``input_pipeline.train_iterator``) and a dense head:
  sigmoid cross-entropy over the tags of the tag labels (paper 14 (c), (f)), or softmax
  cross-entropy over the classes of one integer label (paper 4's basic artist model).
* ``"proxy"``: as classification with one learned proxy per tag/class and cosine logits (paper
  14 (b), (e)).

Labels are those of ``pk_batches``: ``"artist"``, ``"album"``, ``"track"``, ``"tag:GROUP"``,
``"tag"``, plus ``"tempo_bpm"`` (``TEMPO``, triplet approach only): paper 13's tempo dimension,
the records' float ``tempo_bpm`` field (``data.schema``), two clips being similar when their
tempi are within ``tempo_tolerance`` (5 BPM) and dissimilar otherwise (NaN = unknown: neither);
the loss compares the BPM values themselves (``losses.triplet_loss(tolerance=...)``), and the
P x K class slots are ``tempo_tolerance``-wide BPM bins (``floor(bpm / tolerance)``), so the
rows of a slot are within the tolerance of one another. When ``disentangled``, label ``i`` of
``labels`` owns subspace ``i`` of the ``embedding_net`` model (``num_subspaces = len(labels)``).

Evaluation (``evaluators/retrieval.py``): per label of ``eval_labels`` on the held-out clips,
leave-one-out retrieval (MAP, precision / recall / nDCG at k, chance), triplet accuracy (paper
13), track triplets, the mean over tag labels, auto-tagging through the head or a linear probe,
and the loss.

Lifecycle: ``bind(shards)`` returns the task with ``MetricLearningData``: the tag columns of each
tag label, the head's output count and tag groups, and the P x K class tables of the training
split.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.data import pk_batches
from musicrep_jax.data.schema import TEMPO_FIELD
from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.retrieval import TRACK
from musicrep_jax.ops.losses import (apply_mask, l2_normalize, label_match,
                                     sigmoid_cross_entropy, sigmoid_cross_entropy_rows,
                                     softmax_cross_entropy, triplet_loss, triplet_margin_loss)
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import Task, require_random_segments

APPROACHES = ("triplet", "classification", "proxy")
TEMPO = TEMPO_FIELD  # The tempo label: float BPM, similar within `tempo_tolerance`.


def is_tag_label(label: str) -> bool:
  return label.split(":")[0] == "tag"


def label_classes(label: str, records: dict, tag_groups: dict,
                  tempo_tolerance: float) -> list:
  """Per clip, its P x K classes under ``label`` (``pk_batches.label_values``), the tempo label
  binned: ``[floor(bpm / tempo_tolerance)]``, none for a NaN (unknown) or non-positive tempo."""
  if label != TEMPO:
    return pk_batches.label_values(label, records, tag_groups)
  bpm = np.asarray(records[label], np.float64).reshape(-1)
  known = np.isfinite(bpm) & (bpm > 0)
  bins = np.floor(np.where(known, bpm, 0.0) / tempo_tolerance).astype(np.int64)
  return [np.asarray([b] if k else [], np.int64) for b, k in zip(bins, known)]


def class_tables(source, labels: tuple, tag_groups: dict,
                 tempo_tolerance: float) -> tuple:
  """One ``pk_batches.ClassTable`` per label from one pass over ``source`` (tempo binned)."""
  records = pk_batches.read_label_records(source, pk_batches.label_fields(labels))
  return tuple(pk_batches.build_class_table(
      lab, label_classes(lab, records, tag_groups, tempo_tolerance)) for lab in labels)


@functools.lru_cache(maxsize=8)
def _train_tables(dataset_dir: str, split: str, labels: tuple, tag_groups_json: str,
                  tempo_tolerance: float):
  """Class tables of a prepared split, computed once per process (one pass over the split)."""
  from musicrep_jax.data.shards import ShardSource

  return class_tables(ShardSource(dataset_dir, split), labels, json.loads(tag_groups_json),
                      tempo_tolerance)


@dataclasses.dataclass(frozen=True)
class MetricLearningData:
  """Bound data of ``MetricLearningTask``.

  Attributes:
    tag_columns: tag label of ``labels`` / ``eval_labels`` -> its tag indices int64 ``[n]``.
    tag_groups: the shards' tag groups (name -> tag indices), for the P x K sampler.
    num_outputs: the head's outputs (0 for the triplet approach).
    head_groups: per tag label of ``labels``, its tag indices (the disentangled head's groups).
    tables: class tables of the P x K blocks over ``train_split`` (triplet approach; None when
      the shards have no such split: the sampler then builds them from its source).
  """

  tag_columns: dict
  tag_groups: dict
  num_outputs: int
  head_groups: tuple
  tables: Optional[tuple]


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
      margin 0.1, Euclidean distance on unit vectors, averaged over its random triplets.
      ``mining="all"`` (every valid triplet of each P x K block, "batch-all") is our choice;
      the paper draws random triplets and mines nothing (papers.md 14.4).
    tempo_tolerance: BPM within which two clips are similar under the ``"tempo_bpm"`` label
      (paper 13: 5); also the width of its P x K class bins.
    negatives: > 0 selects paper 4's explicit negatives (see module docstring).
    track_weight: paper 13's lambda for the track-triplet block (0 = none).
    normalize: L2-normalise the embedding before the loss and the head (paper 14's "L2 norm").
    mask_l1: L1 penalty on the masks (learned masks, CSN).
    max_overlap: of two crops of one clip in a P x K slot (paper 13: 0.5).
    eval_triplets: triplets per label at evaluation (papers 13-14: 40,000);
    eval_track_triplets: track triplets at evaluation (None: ``eval_triplets``; paper 13: 40,000);
    retrieval_ks: cut-offs (paper 14: 1,2,4,8).
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
  tempo_tolerance: float = 5.0
  normalize: bool = True
  mask_l1: float = 0.0
  max_overlap: float = 0.5
  eval_triplets: int = 40_000
  eval_track_triplets: Optional[int] = None
  retrieval_ks: tuple = (1, 2, 4, 8)
  train_split: str = "train"
  default_evals = ("retrieval",)

  def __post_init__(self):
    if self.approach not in APPROACHES:
      raise UserError(f"config.task.kwargs.approach={self.approach!r} is not one of "
                      f"{APPROACHES}.")
    if not self.labels:
      raise UserError("config.task.kwargs.labels is empty; name at least one label.")
    if self.tempo_tolerance <= 0:
      raise UserError(f"config.task.kwargs.tempo_tolerance={self.tempo_tolerance} must be "
                      "positive (BPM; paper 13: 5).")
    if self.approach != "triplet":
      if TEMPO in self.labels:
        raise UserError(f"the {TEMPO!r} label (tempo within {self.tempo_tolerance:g} BPM) "
                        "needs approach='triplet'; a head classifies tags or class ids.")
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
    names = pk_batches.label_fields(self.labels + self.eval_labels)
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

  def tolerance(self, label: str) -> Optional[float]:
    """``tempo_tolerance`` for the tempo label (its values match within it), else None."""
    return float(self.tempo_tolerance) if label == TEMPO else None

  @property
  def int_head(self) -> bool:
    """The head classifies one integer label (softmax) rather than tags (sigmoid)."""
    return self.approach != "triplet" and not is_tag_label(self.labels[0])

  # --- Lifecycle and model ---------------------------------------------------------------------
  def bind(self, shards) -> "MetricLearningTask":
    """Bound data: ``MetricLearningData`` of ``shards``."""
    num_tags = len(shards.tag_names)
    columns = {lab: pk_batches.tag_columns(lab, shards.tag_groups, num_tags)
               for lab in self.labels + self.eval_labels if is_tag_label(lab)}
    groups = tuple(tuple(int(c) for c in columns[lab]) for lab in self.labels
                   if is_tag_label(lab))
    if self.approach == "triplet":
      num_outputs = 0
    elif self.int_head:
      num_outputs = int(self._tables(shards, self.labels)[0].class_ids.max()) + 1
    else:
      num_outputs = num_tags
      covered = sorted(i for g in groups for i in g)
      if self.disentangled and covered != sorted(set(covered)):
        raise UserError(f"the tag labels {self.labels} overlap; a disentangled head needs "
                        "disjoint tag groups.")
    tables = (self._tables(shards, self.blocks)
              if self.approach == "triplet" and self.train_split in shards.split_sizes
              else None)
    return dataclasses.replace(self, bound=MetricLearningData(
        tag_columns=columns, tag_groups=dict(shards.tag_groups), num_outputs=num_outputs,
        head_groups=groups, tables=tables))

  def model_kwargs(self) -> dict:
    data = self.data
    head_groups = data.head_groups if self.disentangled and self.approach != "triplet" else ()
    return {"num_outputs": data.num_outputs,
            "head": {"triplet": "none", "classification": "dense",
                     "proxy": "proxy"}[self.approach],
            "disentangled": self.disentangled, "normalize": self.normalize,
            "num_subspaces": len(self.labels) if self.disentangled else 0,
            "head_groups": head_groups}

  def _tables(self, shards, labels: tuple):
    return _train_tables(str(shards.dataset_dir), self.train_split, tuple(labels),
                         json.dumps(shards.tag_groups, sort_keys=True),
                         float(self.tempo_tolerance))

  # --- Data ------------------------------------------------------------------------------------
  def train_iterator(self, source, *, crop_length: int, global_batch_size: int, seed: int,
                     num_workers: int,
                     segments: input_pipeline.TrainSegments = input_pipeline.TrainSegments()):
    """Classification and proxy: the base class's batches (random crops or the segment grid);
    triplet: P x K batches, random crops only (``UserError`` for the grid)."""
    if self.approach != "triplet":
      return super().train_iterator(source, crop_length=crop_length,
                                    global_batch_size=global_batch_size, seed=seed,
                                    num_workers=num_workers, segments=segments)
    require_random_segments(self, segments)
    data = self.data
    tables = data.tables if getattr(source, "split", None) == self.train_split else None
    if tables is None:  # Built here rather than by pk_batches, which has no tempo bins.
      tables = class_tables(source, self.blocks, data.tag_groups, self.tempo_tolerance)
    return pk_batches.pk_iterator(
        source, labels=self.blocks, classes_per_batch=self.classes_per_batch,
        samples_per_class=self.samples_per_class, crop_length=crop_length,
        global_batch_size=global_batch_size, seed=seed, tag_groups=data.tag_groups,
        fields=self.fields, max_overlap=self.max_overlap, tables=tables,
        num_workers=num_workers)

  # --- Losses --------------------------------------------------------------------------------
  def _labels_of(self, label: str, batch: dict, rows=slice(None)):
    """Training labels of ``rows`` for ``label``: int ids ``[n]``, multi-hot ``[n, C]`` or
    float BPM ``[n]`` (tempo). Tag labels use the clip's tags of the label's columns (positives
    share one tag), so a multi-label group (instruments) treats two clips sharing any
    instrument as similar."""
    if is_tag_label(label):
      return batch["tags"][rows][:, self.data.tag_columns[label]]
    return batch[label][rows]

  def space(self, embedding, masks, block: int):
    """The embedding a block's loss sees: ``n(f o m_block)`` (disentangled, label blocks) or
    ``n(f)`` (plain, or the track-regularisation block). ``embedding`` ``[N, D]``, ``masks``
    ``[len(labels), D]`` (or None when not disentangled)."""
    if self.disentangled and block < len(self.labels):
      embedding = apply_mask(embedding, masks[block])
    return l2_normalize(embedding) if self.normalize else embedding

  def block_weight(self, block: int) -> float:
    """A block's weight in the loss: ``1 / len(labels)`` per label, ``track_weight`` for the
    track-regularisation block (paper 13's lambda)."""
    return 1.0 / len(self.labels) if block < len(self.labels) else self.track_weight

  def _siamese(self, x, labels, tolerance=None):
    """Paper 4's hinge: anchor = every row, positive = the next row of its slot, negatives =
    the same row of the next ``negatives`` slots (not matching the anchor's label)."""
    p, k = self.classes_per_batch, self.samples_per_class
    idx = np.arange(p * k).reshape(p, k)
    pos = np.roll(idx, -1, axis=1).reshape(-1)
    neg = np.stack([np.roll(idx, -j, axis=0) for j in range(1, self.negatives + 1)],
                   -1).reshape(p * k, self.negatives)
    match = label_match(labels, labels, tolerance=tolerance)
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
      x = self.space(outputs["embedding"][rows], outputs.get("masks"), b)
      labels = self._labels_of(label, batch, rows)
      tolerance = self.tolerance(label)
      if self.negatives:
        block_loss, block_stats = self._siamese(x, labels, tolerance)
      else:
        block_loss, block_stats = triplet_loss(x, labels, margin=self.margin, mining=self.mining,
                                               metric=self.metric, reduction=self.reduction,
                                               tolerance=tolerance)
      total = total + self.block_weight(b) * block_loss
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
    columns = np.asarray(sorted({int(c) for lab in self.labels
                                 for c in self.data.tag_columns[lab]}))
    logits, targets = logits[:, columns], batch["tags"][:, columns]
    if per_row:
      return sigmoid_cross_entropy_rows(logits, targets)
    return sigmoid_cross_entropy(logits, targets)

  # --- Per-segment evaluation outputs ---------------------------------------------------------
  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    out = {"embedding": outputs["embedding"]}
    if "logits" in outputs:
      scores = (jax.nn.softmax(outputs["logits"]) if self.int_head
                else jax.nn.sigmoid(outputs["logits"]))
      out.update(scores=scores, loss=self._head_loss(outputs, batch, per_row=True))
    return out
