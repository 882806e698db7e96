"""Multi-label auto-tagging (papers 1, 2, 3, 5; papers.md 1.4 and 2.4).

Training: binary cross-entropy on one sigmoid per tag, averaged over tags and the global batch;
every segment inherits its clip's tag vector. Evaluation: clip score = mean of the sigmoid outputs
over the clip's segments (never max); macro ROC-AUC and PR-AUC over tags with at least one
positive and one negative clip.

Note on the loss reduction: the Keras code uses ``binary_crossentropy``, a mean over tags and
batch, which is what this task computes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from musicrep_jax.ops import metrics
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import Task


@TASKS.register("tagging")
@dataclasses.dataclass(frozen=True)
class TaggingTask(Task):
  """Batch -> loss -> metrics for multi-label tagging.

  Batches carry ``tags`` float32 ``[batch, num_tags]`` (multi-hot). Model outputs carry
  ``logits`` float32 ``[batch, num_tags]``.
  """

  fields: tuple = ("tags",)
  metric_names: tuple = ("loss",)
  higher_is_better: tuple = ("roc_auc", "pr_auc")

  def num_outputs(self, shards) -> int:
    return len(shards.tag_names)

  def loss(self, outputs: dict, batch: dict) -> tuple[jnp.ndarray, dict]:
    """Mean sigmoid BCE over ``[batch, num_tags]``; returns ``(loss, {"loss": loss})``."""
    per_tag = optax.sigmoid_binary_cross_entropy(outputs["logits"], batch["tags"])
    loss = jnp.mean(per_tag)
    return loss, {"loss": loss}

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    """Per-segment quantities kept for the clip-level metrics: scores and BCE, ``[batch, ...]``."""
    per_tag = optax.sigmoid_binary_cross_entropy(outputs["logits"], batch["tags"])
    return {"scores": jax.nn.sigmoid(outputs["logits"]), "loss": jnp.mean(per_tag, axis=-1)}

  def clip_metrics(self, segments: dict, num_clips: int, variables=None) -> dict:
    """Segment outputs of a whole split -> clip-averaged ROC-AUC / PR-AUC, mean segment loss.

    Args:
      segments: numpy, one row per segment: ``scores`` ``[segments, tags]`` and ``loss``
        ``[segments]`` (from ``eval_outputs``), ``tags`` ``[segments, tags]``, ``clip_index``
        ``[segments]`` (the clip's position in the split), ``segment_valid`` ``[segments]``
        (False for padding rows).
      num_clips: clips in the split.
      variables: unused.
    """
    del variables
    valid = np.asarray(segments["segment_valid"], bool)
    clip_index = np.asarray(segments["clip_index"])
    clip_labels = np.zeros((num_clips, segments["tags"].shape[-1]), np.float32)
    clip_labels[clip_index[valid]] = segments["tags"][valid]
    clip_scores, counts = metrics.clip_average(segments["scores"], clip_index, valid, num_clips)
    tagging = metrics.tagging_metrics(clip_scores, jnp.asarray(clip_labels), valid=counts > 0)
    valid_f = np.asarray(valid, np.float64)
    seg_loss = float(np.sum(np.asarray(segments["loss"]) * valid_f) / max(valid_f.sum(), 1.0))
    out = {k: float(v) for k, v in tagging.items()}
    out["loss"] = seg_loss
    out["clips"] = int(num_clips)
    return out
