"""Multi-label auto-tagging (papers 1, 2, 3, 5; papers.md 1.4 and 2.4).

Training: binary cross-entropy on one sigmoid per tag (``losses.sigmoid_cross_entropy``),
averaged over tags and the global batch; every segment inherits its clip's tag vector.
Evaluation (``evaluators/tagging.py``): clip score = mean of the sigmoid outputs over the clip's
segments (never max); macro ROC-AUC and PR-AUC over tags with at least one positive and one
negative clip.

Note on the loss reduction: the Keras code uses ``binary_crossentropy``, a mean over tags and
batch, which is what this task computes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from musicrep_jax.ops import losses
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import OutputCount, Task


@TASKS.register("tagging")
@dataclasses.dataclass(frozen=True)
class TaggingTask(Task):
  """Batch -> loss for multi-label tagging.

  Batches carry ``tags`` float32 ``[batch, num_tags]`` (multi-hot). Model outputs carry
  ``logits`` float32 ``[batch, num_tags]``. Bound data: ``OutputCount`` (the shards' tags).
  ``f1_threshold``: the decision threshold of the ``tagging_f1`` evaluator (score > threshold;
  0.1 in paper 6's DCASE 2017 task 4 code).
  """

  fields: tuple = ("tags",)
  metric_names: tuple = ("loss",)
  higher_is_better: tuple = ("roc_auc", "pr_auc", "f1", "precision", "recall")
  f1_threshold: float = 0.1
  default_evals = ("tagging",)

  def bind(self, shards) -> "TaggingTask":
    return dataclasses.replace(self, bound=OutputCount(len(shards.tag_names)))

  def model_kwargs(self) -> dict:
    return {"num_outputs": self.data.num_outputs}

  def loss(self, outputs: dict, batch: dict) -> tuple[jnp.ndarray, dict]:
    """Mean sigmoid BCE over ``[batch, num_tags]``; returns ``(loss, {"loss": loss})``."""
    loss, _ = losses.sigmoid_cross_entropy(outputs["logits"], batch["tags"])
    return loss, {"loss": loss}

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    """Per segment: sigmoid ``scores`` ``[batch, tags]`` and BCE ``loss`` ``[batch]``."""
    return {"scores": jax.nn.sigmoid(outputs["logits"]),
            "loss": losses.sigmoid_cross_entropy_rows(outputs["logits"], batch["tags"])}
