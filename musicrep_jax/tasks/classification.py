"""Single-label classification with a softmax (paper 6: keyword spotting and acoustic scenes;
papers.md 7.2, evaluation as in 1.2 and 1.4).

Training: softmax cross entropy (the Keras ``categorical_crossentropy``), averaged over the
global batch; every segment inherits its clip's class. Evaluation (``evaluators/
classification.py``): clip score = mean of the softmax outputs over the clip's segments;
clip-level accuracy, top-k accuracy, balanced accuracy and the mean segment loss.

Where the label comes from (``label_field``):

* ``"tags"`` (default): builders of single-label datasets (Speech Commands, DCASE 2017 scenes)
  store the class as a one-hot ``tags`` vector, so ``tag_names`` are the class names and the
  shared shard schema is unchanged. Every row must be exactly one-hot: a dataset marked
  ``metadata["single_label"] = True`` by its builder is trusted by ``bind``, any other is checked
  on its first records of the train split, and every evaluated clip is checked by the evaluator
  (a ``UserError`` otherwise, naming the row).
* an integer field (``genre`` or ``artist`` on the embedded corpus, ``artist`` of a folder
  dataset): the class is the value; the class count is ``len(metadata["<field>_names"])`` when
  the builder wrote names, else ``num_classes`` when set, else the largest id of the train split
  + 1 (one pass over the split). Negative (unknown) ids are an error.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.classification import check_class_ids, labels_from_tags
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import OutputCount, Task

# Records of the train split checked for one-hot tags by ``bind`` (datasets not marked
# single_label by their builder).
ONE_HOT_CHECK_RECORDS = 64


def count_classes(shards, label_field: str, num_classes: int = 0) -> int:
  """The class count of ``label_field`` in ``shards`` (module docstring)."""
  source = shards.source("train" if "train" in shards.split_sizes else shards.splits[0])
  if label_field == "tags":
    if not shards.tag_names:
      raise UserError(f"The shards at {shards.data_dir} have no tags to classify; set "
                      "config.task.kwargs.label_field to an integer field.")
    if not shards.metadata.get("single_label", False):
      count = min(len(source), ONE_HOT_CHECK_RECORDS)
      labels_from_tags(np.stack([source[i]["tags"] for i in range(count)]),
                       f"the first {count} records of {source.split!r} in {shards.data_dir}")
    return len(shards.tag_names)
  names = shards.metadata.get(f"{label_field}_names") or []
  if names:
    return len(names)
  if num_classes > 0:
    return int(num_classes)
  ids = np.asarray([source[i][label_field] for i in range(len(source))], np.int64)
  check_class_ids(ids, np.iinfo(np.int64).max, f"split {source.split!r}")
  return int(ids.max()) + 1


@TASKS.register("classification")
@dataclasses.dataclass(frozen=True)
class ClassificationTask(Task):
  """Batch -> softmax cross entropy (evaluated by ``evaluators/classification.py``).

  Batches carry ``label_field``: ``tags`` float32 ``[batch, C]`` one-hot, or an int64 ``[batch]``
  class id. Model outputs carry ``logits`` float32 ``[batch, C]``.

  Attributes:
    label_field: ``"tags"`` (one-hot) or an integer record field (``genre``, ``artist``...).
    num_classes: class count for an integer field without ``<field>_names`` metadata (0: from
      the data).
    top_k: k values of the ``top{k}_accuracy`` metrics.
  """

  label_field: str = "tags"
  num_classes: int = 0
  top_k: tuple = (5,)
  metric_names: tuple = ("loss", "accuracy")
  higher_is_better: tuple = ("accuracy", "balanced_accuracy", "top5_accuracy")
  default_evals = ("classification",)

  @property
  def fields(self) -> tuple:
    return (self.label_field,)

  # --- Lifecycle and model ---------------------------------------------------------------------
  def bind(self, shards) -> "ClassificationTask":
    """Bound data: ``OutputCount`` (the class count, ``count_classes``)."""
    return dataclasses.replace(
        self, bound=OutputCount(count_classes(shards, self.label_field, self.num_classes)))

  def model_kwargs(self) -> dict:
    return {"num_outputs": self.data.num_outputs}

  def _labels(self, batch: dict) -> jnp.ndarray:
    """Class ids int32 ``[batch]`` from the batch (argmax of one-hot ``tags``)."""
    value = batch[self.label_field]
    if self.label_field == "tags":
      return jnp.argmax(value, axis=-1).astype(jnp.int32)
    return value.astype(jnp.int32)

  # --- Loss ----------------------------------------------------------------------------------
  def loss(self, outputs: dict, batch: dict) -> tuple[jnp.ndarray, dict]:
    """Mean softmax cross entropy over the batch, and the batch's segment accuracy."""
    labels = self._labels(batch)
    logits = outputs["logits"]
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32))
    return loss, {"loss": loss, "accuracy": accuracy}

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    """Per segment: softmax ``probs`` ``[batch, C]`` and cross entropy ``loss`` ``[batch]``."""
    logits = outputs["logits"]
    labels = self._labels(batch)
    return {"probs": jax.nn.softmax(logits, axis=-1),
            "loss": optax.softmax_cross_entropy_with_integer_labels(logits, labels)}
