"""A trained workdir (or a model folder) as a model ready for inference: ``musicrep export``,
``musicrep embed`` and the Python API (``serving/api.py``).

``load_trained`` restores the workdir through the one restore path,
``musicrep_jax.training.trainer.restore_workdir`` (the run rebuilt by ``build_run`` from
``<workdir>/config.json``, the best or latest checkpoint restored into it), and keeps what an
export or an embedding needs, with the variables on the host. The dataset is opened only for
what the model's shape and the outputs' names come from (the number and names of tags):
``--data-dir`` as for ``musicrep eval``, or the embedded corpus' cache for ``synthetic`` configs.
``trained_from_folder`` does the same for a model folder's parts (no data, no task).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Optional

import jax
import numpy as np

from musicrep_jax.errors import UserError


@dataclasses.dataclass
class Trained:
  """A restored model: Flax module, host variables, and the facts an export or embedding needs."""

  model: Any
  task: Any
  variables: dict  # {"params", "batch_stats"} as host numpy
  config: Any
  sample_rate: int
  input_length: int
  tag_names: tuple[str, ...]
  step: int
  workdir: pathlib.Path
  # A model folder's recorded outputs ("scores", "score_names", "subspaces"), read by
  # ``output_spec`` when there is no task (``task is None``).
  recorded: dict = dataclasses.field(default_factory=dict)


def load_trained(workdir: str | pathlib.Path, data_dir: Optional[str] = None,
                 which: str = "best") -> Trained:
  """Restores ``workdir``'s ``which`` ("best" or "latest") checkpoint (``restore_workdir``);
  ``UserError`` if it is not a training workdir or holds no checkpoint."""
  from musicrep_jax.training.trainer import restore_workdir

  restored = restore_workdir(workdir, data_dir, which)
  run = restored.run
  return Trained(model=run.model, task=run.task, variables=jax.device_get(restored.variables),
                 config=restored.config, sample_rate=int(restored.config.data.sample_rate),
                 input_length=int(run.input_length), tag_names=tuple(run.shards.tag_names),
                 step=restored.step, workdir=restored.workdir)


def trained_from_folder(path, model, config, variables: dict, info: dict) -> Trained:
  """A model folder's parts as a ``Trained`` without a task: ``model`` (the Flax module its
  ``musicrep.json`` describes, ``serving.export.pretrained.flax_model``), the training
  ``config``, the Flax ``variables`` and ``info`` (``musicrep.json``, from
  ``read_model_folder``), whose ``scores``, ``score_names`` and ``subspaces`` (the exported
  ``OutputSpec``) give the outputs. ``UserError`` if the sample rate is missing or the model's
  input length differs from the recorded one."""
  from musicrep_jax import storage

  if "sample_rate" not in info:
    raise UserError(f"{path}/musicrep.json lacks sample_rate; export the model again with "
                    f"`musicrep export --format pretrained`.")
  input_length = int(model.input_length)
  if int(info.get("input_length", input_length)) != input_length:
    raise UserError(f"{path}: the model musicrep.json describes takes {input_length} samples, "
                    f"not the recorded {info['input_length']}.")
  recorded = {k: info[k] for k in ("scores", "score_names", "subspaces") if k in info}
  return Trained(model=model, task=None, variables=variables, config=config,
                 sample_rate=int(info["sample_rate"]), input_length=input_length,
                 tag_names=tuple(info.get("tag_names", ())),
                 step=int((info.get("checkpoint") or {}).get("step", 0)),
                 workdir=storage.as_path(path), recorded=recorded)


# --- Which output is the embedding: the one rule for every model family ------------------------

# Per model family (the ``MODELS`` name): the output of the audio-only forward that is "the
# embedding" of an input, written by ``musicrep embed`` and carried by every export.
EMBEDDING_OUTPUTS = {
    "sample_cnn": "embedding",  # conv1x1 output (papers.md 2)
    "sample_level_fixed_input": "embedding",  # its SampleCNN blocks' head
    "resemul": "embedding",  # head Dense + BN + ReLU (papers.md 6.2)
    "mel_dcnn": "embedding",  # GAP of the last conv (paper 4's 256-d feature)
    "mel_frame_cnn": "embedding",  # global max of the last conv
    "mel_cnn2d": "embedding",  # global max of the last 2-D conv
    "inception": "embedding",  # L2-normalised GAP of the 1x1 embed conv (papers 13/14)
    # The projection (the backbone's vector when embedding_dim = 0), before the task's L2
    # normalisation and the CSN masks (papers 4, 9, 13, 14; not ``features``, the backbone's).
    "embedding_net": "embedding",
    # Item head 0 = item_projection(GAP of the audio branch), the vector the user heads are
    # matched with by cosine (paper 7); the user branch is not an audio embedding.
    "dcue": "embedding",
    # The audio branch's GAP, matched by cosine with the label branch (papers 10-11).
    "zero_shot": "embedding",
}
# Outputs that are the same for every input (written once, not per file): CSN masks.
CONSTANT_OUTPUTS = ("masks",)


def embedding_output(family: str) -> str:
  """The output of ``family`` that is its embedding (``EMBEDDING_OUTPUTS``)."""
  if family not in EMBEDDING_OUTPUTS:
    raise UserError(f"Model {family!r} has no embedding output in "
                    f"musicrep_jax/serving/inference.py (known: {sorted(EMBEDDING_OUTPUTS)}).")
  return EMBEDDING_OUTPUTS[family]


def head_output(model) -> Optional[str]:
  """The output holding a tag or class head's logits (``"logits"``), or None for a model
  without one: ``embedding_net`` with ``head="none"``, DCUE and zero-shot (whose scores are
  cosines with another branch)."""
  family = model_family(model)
  if family in ("dcue", "zero_shot"):
    return None
  if family == "embedding_net" and model.head == "none":
    return None
  return "logits"


def audio_outputs(model) -> tuple[str, ...]:
  """The per-example outputs of the audio-only forward an export carries: the head's logits
  (if any), then the embedding."""
  head = head_output(model)
  return ((head,) if head else ()) + (embedding_output(model_family(model)),)


def model_family(model) -> str:
  """The ``MODELS`` registry name of a Flax model instance (e.g. ``"sample_cnn"``)."""
  import musicrep_jax.models  # noqa: F401  (registers models)
  from musicrep_jax.registry import MODELS

  for name in MODELS.names():
    if MODELS.get(name) is type(model):
      return name
  raise ValueError(f"{type(model).__name__} is not a registered model")


@dataclasses.dataclass(frozen=True)
class OutputSpec:
  """What ``musicrep embed`` takes from a model's outputs (``output_spec``).

  ``scores`` is the file stem of the per-file scores (``tag_scores``: sigmoid of tag logits;
  ``class_scores``: softmax of a single-label head; ``label_scores``: zero-shot cosines with
  the label branch; ``logits``: other heads, raw) or ``""`` when the model has none;
  ``score_names`` names their columns where known; ``constants`` are batch-independent outputs
  written once (``masks.npy`` of a CSN model, whose rows ``subspaces`` name)."""

  family: str
  embedding: str
  scores: str
  score_names: tuple[str, ...] = ()
  constants: tuple[str, ...] = ()
  subspaces: tuple[str, ...] = ()
  label_columns: tuple[int, ...] = ()  # zero-shot: the tags with side information

  def select(self, outputs: dict):
    """Model outputs (inside jit) -> ``(embedding [B, d], scores [B, k], constants dict)``."""
    import jax.numpy as jnp

    from musicrep_jax.ops.losses import l2_normalize

    embedding = outputs[self.embedding]
    if self.scores in ("tag_scores", "class_scores", "logits"):
      logits = outputs["logits"]
      scores = {"tag_scores": jax.nn.sigmoid, "class_scores": jax.nn.softmax,
                "logits": lambda x: x}[self.scores](logits)
    elif self.scores == "label_scores":
      labels = outputs["label_embedding"][jnp.asarray(self.label_columns, jnp.int32)]
      scores = l2_normalize(embedding) @ l2_normalize(labels).T
    else:
      scores = jnp.zeros((embedding.shape[0], 0), jnp.float32)
    return embedding, scores, {k: outputs[k] for k in self.constants}


def output_spec(trained: Trained) -> OutputSpec:
  """The ``OutputSpec`` of a restored model and its task: the embedding from
  ``EMBEDDING_OUTPUTS``, the scores from the head (``head_output``) and the task. Without a
  task (a model folder): the scores its export recorded (``Trained.recorded``; zero-shot label
  scores need the label vectors of the training data, so a folder gives none)."""
  from musicrep_jax.tasks.metric_learning import MetricLearningTask
  from musicrep_jax.tasks.tagging import TaggingTask
  from musicrep_jax.tasks.zero_shot import ZeroShotTask

  model, task = trained.model, trained.task
  family = model_family(model)
  spec = dict(family=family, embedding=embedding_output(family), scores="")
  if family == "embedding_net" and model.num_subspaces:
    subspaces = (tuple(task.labels) if task is not None
                 else tuple(trained.recorded.get("subspaces", ())))
    spec.update(constants=CONSTANT_OUTPUTS, subspaces=subspaces[:model.num_subspaces])
  if task is None:
    scores = trained.recorded.get("scores", "tag_scores" if head_output(model) else "")
    if not head_output(model) or scores not in ("tag_scores", "class_scores", "logits"):
      scores = ""
    names = trained.recorded.get("score_names", trained.tag_names if scores == "tag_scores"
                                 else ())
    spec.update(scores=scores, score_names=tuple(names) if scores else ())
  elif head_output(model):
    if isinstance(task, TaggingTask) or (isinstance(task, MetricLearningTask)
                                         and not task.int_head):
      spec.update(scores="tag_scores", score_names=trained.tag_names)
    elif isinstance(task, MetricLearningTask):
      spec.update(scores="class_scores")
    else:
      spec.update(scores="logits")
  elif isinstance(task, ZeroShotTask):
    usable = np.flatnonzero(np.asarray(task.data.seen) | np.asarray(task.data.unseen))
    spec.update(scores="label_scores", label_columns=tuple(int(i) for i in usable),
                score_names=tuple(trained.tag_names[i] for i in usable))
  return OutputSpec(**spec)
