"""Config builders shared by the metric-learning systems (papers 4, 9, 13, 14; configs/*.py).

``metric_config`` is the paper-scale config of one system (the ``metric_learning`` task on an
``embedding_net``); ``metric_runlocal`` shrinks it in place to a 1-2 minute run on the embedded
corpus with the same code path; ``parse_args`` reads a config's comma-separated argument
(``"joint,runlocal"``). The backbone of every system is paper 4's mel DCNN (papers.md 5.2);
papers 13 and 14 used a 2-D Inception network (papers.md 14.2) that this package does not have
yet: their configs name the backbone in one place (``PAPER13_BACKBONE``) so it can be swapped.
Triplet mining is the task's ``mining="all"`` (every valid triplet of a P x K block), a choice
for papers 13 and 14: paper 13 draws random triplets and describes no mining (papers.md 14.4).
Papers 4 and 9 (``siamese_task``) use explicit negatives instead. L2 on conv kernels
(``optimizer.kernel_l2``, Keras' kernel regulariser) is set by the configs of papers 4 and 9.
"""

from __future__ import annotations

import ml_collections

from musicrep_jax.configs.common import data_config, make_runlocal, sgd_nesterov, trainer_config
from musicrep_jax.errors import UserError

# Paper 4's DCNN on 129 frames of the papers' mel front end (papers.md 1.3, 5.1-5.2).
PAPER_DCNN = dict(num_frames=129)
PAPER13_BACKBONE = "mel_dcnn"
TAG_DIMENSIONS = ("tag:genre", "tag:mood", "tag:instrument", "tag:tempo")
# The embedded corpus at 16 kHz: 64 frames (2.1 s, enough for tempo), 64 mel bands, narrow
# convolutions pooled 64 -> 16 -> 4 -> 1.
RUNLOCAL_DCNN = dict(num_frames=64, n_mels=64, channels=(48, 48, 48, 48, 96),
                     kernel_sizes=(4, 4, 4, 2, 1), pool_sizes=(4, 4, 4, 1, 1))
RUNLOCAL_EVAL = TAG_DIMENSIONS + ("artist", "album")


def parse_args(arg, known: dict, config_name: str) -> dict:
  """``"a,b,runlocal"`` -> ``{group: value}`` for the groups of ``known`` (group -> allowed values,
  first = default) plus ``runlocal`` (bool)."""
  tokens = [t for t in (arg or "").split(",") if t]
  out = {group: values[0] for group, values in known.items()}
  out["runlocal"] = False
  for token in tokens:
    if token == "runlocal":
      out["runlocal"] = True
      continue
    groups = [g for g, values in known.items() if token in values]
    if not groups:
      allowed = sorted({v for values in known.values() for v in values} | {"runlocal"})
      raise UserError(f"configs/{config_name}.py: unknown argument {token!r}; known: "
                      f"{', '.join(allowed)}.")
    out[groups[0]] = token
  return out


def siamese_task(labels, eval_labels, *, classes_per_batch: int = 8) -> dict:
  """Paper 4's Siamese hinge (papers.md 5.2) on P x K batches of ``labels``: each row an anchor,
  the next row of its slot its positive, the same row of 4 other slots its negatives;
  ``max(0, 0.4 - cos(a, p) + cos(a, n))`` summed (papers 4 and 9)."""
  return dict(approach="triplet", labels=tuple(labels), eval_labels=tuple(eval_labels),
              classes_per_batch=classes_per_batch, samples_per_class=2, negatives=4,
              margin=0.4, metric="cosine", reduction="sum", normalize=False)


def metric_config(*, task: dict, backbone_kwargs: dict, embedding_dim: int = 0,
                  mask_mode: str = "fixed", data_name: str = "msd", sample_rate: int = 22050,
                  batch_size: int = 16, num_train_steps: int = 200_000, optimizer: dict = None,
                  eval_every: int = 5000) -> ml_collections.ConfigDict:
  """One system's paper-scale config (``embedding_net`` + ``metric_learning`` task).

  Args:
    task: ``MetricLearningTask`` fields (approach, labels, ...).
    backbone_kwargs: of the ``mel_dcnn`` backbone; embedding_dim: projection width (0: none).
    mask_mode: CSN masks, ``"fixed"`` or ``"learned"`` (disentangled systems).
  """
  c = trainer_config(
      data=data_config(data_name, sample_rate),
      model_name="embedding_net",
      model_kwargs=dict(backbone=PAPER13_BACKBONE, backbone_kwargs=backbone_kwargs,
                        embedding_dim=embedding_dim, mask_mode=mask_mode, proxy_temperature=0.1),
      batch_size=batch_size, num_train_steps=num_train_steps,
      optimizer=optimizer or sgd_nesterov(0.1), eval_every=eval_every)
  c.task = dict(name="metric_learning", kwargs=task)
  return c


def metric_runlocal(c: ml_collections.ConfigDict, *, num_train_steps: int = 500,
                    learning_rate: float = None, eval_labels=RUNLOCAL_EVAL) -> None:
  """Shrinks a metric-learning config in place to the embedded corpus (``make_runlocal``), with
  a narrow DCNN on 2.1 s crops, 4 evaluation segments per clip and the tag, artist and album
  evaluation labels."""
  lr = learning_rate if learning_rate is not None else c.optimizer.learning_rate
  make_runlocal(c, model_kwargs={}, num_train_steps=num_train_steps, batch_size=c.batch_size,
                learning_rate=lr)
  c.model.kwargs.backbone_kwargs = dict(RUNLOCAL_DCNN)
  c.task.kwargs.eval_labels = tuple(eval_labels)
  c.task.kwargs.eval_triplets = 2000
  c.eval_every = c.checkpoint_every = max(num_train_steps // 4, 1)


# Seconds-long runs for tests and `compare-paper14 --size tiny`: an 8 kHz corpus of 1,000 2-s
# clips (100 held out: enough clips per artist for retrieval), 1 s crops of 64 frames (n_fft 256,
# hop 128, 32 mel bands), a 16-32 channel DCNN, 16-d projections.
TINY_CORPUS = dict(num_clips=1000, seed=0, clip_seconds=2.0)
TINY_SAMPLE_RATE = 8000
TINY_DCNN = dict(num_frames=64, n_fft=256, hop_length=128, n_mels=32,
                 channels=(16, 16, 16, 16, 32), kernel_sizes=(3, 3, 3, 2, 1),
                 pool_sizes=(4, 4, 4, 1, 1))


def metric_tiny(c: ml_collections.ConfigDict, *, num_train_steps: int = 60) -> None:
  """Shrinks a ``:runlocal`` metric-learning config in place to a run of seconds (tests)."""
  c.data.sample_rate = TINY_SAMPLE_RATE
  c.data.synthetic = dict(TINY_CORPUS)
  c.data.segments_per_clip = 2
  c.model.kwargs.backbone_kwargs = dict(TINY_DCNN)
  if c.model.kwargs.embedding_dim:
    c.model.kwargs.embedding_dim = 16
  c.task.kwargs.eval_triplets = 500
  c.num_train_steps = num_train_steps
  c.log_every = max(num_train_steps // 6, 1)
  c.eval_every = c.checkpoint_every = max(num_train_steps // 2, 1)
  c.checkpoint.async_save = False
  c.progress_bar = False
