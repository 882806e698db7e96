"""Config builders shared by the metric-learning systems (papers 4, 9, 13, 14; configs/*.py).

``metric_config`` is the paper-scale config of one system (the ``metric_learning`` task on an
``embedding_net``); ``metric_runlocal`` shrinks it in place to a 1-2 minute run on the embedded
corpus with the same code path; ``parse_args`` reads a config's comma-separated argument
(``"joint,runlocal"``). Backbones (``metric_config(backbone=...)``): paper 4's mel DCNN
(``"mel_dcnn"``, papers.md 5.2; papers 4 and 9, the default) or papers 13 and 14's 2-D Inception
network (``"inception"``, papers.md 14.2; ``PAPER13_BACKBONE``, which their configs use), each
with its constructor fields per size in ``BACKBONE_KWARGS`` (``backbone_kwargs_for``):
``metric_runlocal`` and ``metric_tiny`` pick the ones of the config's backbone. The papers'
256-d embedding is the Inception network's own output (no projection,
``PAPER13_PROJECTION["inception"] = 0``) or a 256-d linear projection of the DCNN's.
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
# Papers 13/14's Inception network on 129 x 128 log-mel (papers.md 14.1-14.2): the model's
# defaults are the paper's (64-channel stem, six blocks, 256-d L2-normalised embedding).
PAPER_INCEPTION = dict(num_frames=129)
BACKBONES = ("inception", "mel_dcnn")
PAPER13_BACKBONE = "inception"
# Projection width giving papers 13/14's 256-d embedding on each backbone (0: none).
PAPER13_PROJECTION = {"inception": 0, "mel_dcnn": 256}
TAG_DIMENSIONS = ("tag:genre", "tag:mood", "tag:instrument", "tag:tempo")
# Paper 13's dimensions on real data (papers.md 14.1): the MSD tag groups and the estimated tempo
# (``tempo_bpm``, similar within 5 BPM) that ``musicrep prepare msd`` writes.
PAPER13_DIMENSIONS = ("tag:genre", "tag:mood", "tag:instrument", "tempo_bpm")
# The embedded corpus at 16 kHz: 64 frames (2.1 s, enough for tempo), 64 mel bands, narrow
# convolutions pooled 64 -> 16 -> 4 -> 1.
RUNLOCAL_DCNN = dict(num_frames=64, n_mels=64, channels=(48, 48, 48, 48, 96),
                     kernel_sizes=(4, 4, 4, 2, 1), pool_sizes=(4, 4, 4, 1, 1))
# The Inception network on the same 64 frames with 32 mel bands: stem 32 x 16, three 8-wide
# blocks to 4 x 2, 64-d. Measured on the loaded 2-core machine (batch 45, one training step):
# 0.095 s and 14 s of compilation, the DCNN above 0.075 s and 6 s; a quarter of the paper's
# widths on 64 x 64 with five blocks took 0.58 s and 35 s (the full-resolution stem and first
# block dominate). Widths are multiples of 8: XLA:CPU compiles odd widths several times slower.
RUNLOCAL_INCEPTION = dict(num_frames=64, n_mels=32, stem_features=8, num_blocks=3,
                          stride_branches=(8, 8, 8), normal_branches=(8, 8, 8, 8, 8, 8),
                          embed_features=64)
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


def backbone_kwargs_for(backbone: str, size: str = "paper") -> dict:
  """The constructor fields of ``backbone`` (``BACKBONES``) at ``size`` (``BACKBONE_KWARGS``:
  ``"paper"``, ``"runlocal"`` or ``"tiny"``), a fresh dict."""
  if backbone not in BACKBONES:
    raise UserError(f"metric-learning configs know the backbones {', '.join(BACKBONES)}, not "
                    f"{backbone!r}.")
  return dict(BACKBONE_KWARGS[size][backbone])


def resize_backbone(c: ml_collections.ConfigDict, size: str) -> None:
  """Sets the backbone fields of ``c`` that ``BACKBONE_KWARGS`` sizes to ``size``'s; the others
  (the Inception network's ``normalize``) are kept."""
  backbone = c.model.kwargs.backbone
  sized = set().union(*(kwargs.get(backbone, {}) for kwargs in BACKBONE_KWARGS.values()))
  kept = {k: v for k, v in dict(c.model.kwargs.backbone_kwargs or {}).items() if k not in sized}
  c.model.kwargs.backbone_kwargs = dict(backbone_kwargs_for(backbone, size), **kept)


def metric_config(*, task: dict, backbone_kwargs: dict, embedding_dim: int = 0,
                  backbone: str = "mel_dcnn", mask_mode: str = "fixed", data_name: str = "msd",
                  sample_rate: int = 22050, batch_size: int = 16,
                  num_train_steps: int = 200_000, optimizer: dict = None,
                  eval_every: int = 5000) -> ml_collections.ConfigDict:
  """One system's paper-scale config (``embedding_net`` + ``metric_learning`` task).

  Args:
    task: ``MetricLearningTask`` fields (approach, labels, ...).
    backbone_kwargs: of the backbone; embedding_dim: projection width (0: none).
    backbone: ``"mel_dcnn"`` (papers 4, 9) or ``"inception"`` (``PAPER13_BACKBONE``).
    mask_mode: CSN masks, ``"fixed"`` or ``"learned"`` (disentangled systems).
  """
  c = trainer_config(
      data=data_config(data_name, sample_rate),
      model_name="embedding_net",
      model_kwargs=dict(backbone=backbone, backbone_kwargs=backbone_kwargs,
                        embedding_dim=embedding_dim, mask_mode=mask_mode, proxy_temperature=0.1),
      batch_size=batch_size, num_train_steps=num_train_steps,
      optimizer=optimizer or sgd_nesterov(0.1), eval_every=eval_every)
  c.task = dict(name="metric_learning", kwargs=task)
  return c


def metric_runlocal(c: ml_collections.ConfigDict, *, num_train_steps: int = 500,
                    learning_rate: float = None, eval_labels=RUNLOCAL_EVAL) -> None:
  """Shrinks a metric-learning config in place to the embedded corpus (``make_runlocal``), with
  a narrow copy of its backbone (``RUNLOCAL_DCNN`` / ``RUNLOCAL_INCEPTION``) on 2.1 s crops, 4
  evaluation segments per clip and the tag, artist and album evaluation labels."""
  lr = learning_rate if learning_rate is not None else c.optimizer.learning_rate
  make_runlocal(c, model_kwargs={}, num_train_steps=num_train_steps, batch_size=c.batch_size,
                learning_rate=lr)
  resize_backbone(c, "runlocal")
  c.task.kwargs.eval_labels = tuple(eval_labels)
  c.task.kwargs.eval_triplets = 2000
  c.eval_every = c.checkpoint_every = max(num_train_steps // 4, 1)


# Seconds-long runs for tests and `compare-paper14 --size tiny`: an 8 kHz corpus of 1,000 2-s
# clips (100 held out: enough clips per artist for retrieval), 1 s crops of 64 frames (n_fft 256,
# hop 128, 32 mel bands), a 16-32 channel DCNN with 16-d projections, or an 8-channel Inception
# network of one block (stem 64 x 32 -> 32 x 16, one stride + normal module -> 16 x 8) ending in
# 32-d: each further block adds ~6 s of CPU time per cell, most of it XLA compilation (measured:
# a tiny triplet cell takes 17.4 s of CPU with the DCNN, 18.3 s with one block, 23.1 s with two).
TINY_CORPUS = dict(num_clips=1000, seed=0, clip_seconds=2.0)
TINY_SAMPLE_RATE = 8000
TINY_MEL = dict(num_frames=64, n_fft=256, hop_length=128, n_mels=32)
TINY_DCNN = dict(TINY_MEL, channels=(16, 16, 16, 16, 32), kernel_sizes=(3, 3, 3, 2, 1),
                 pool_sizes=(4, 4, 4, 1, 1))
TINY_INCEPTION_BLOCKS = 1
TINY_INCEPTION = dict(TINY_MEL, stem_features=8, num_blocks=TINY_INCEPTION_BLOCKS,
                      stride_branches=(8, 8, 8), normal_branches=(8, 8, 8, 8, 8, 8),
                      embed_features=32)
BACKBONE_KWARGS = {
    "paper": {"inception": PAPER_INCEPTION, "mel_dcnn": PAPER_DCNN},
    "runlocal": {"inception": RUNLOCAL_INCEPTION, "mel_dcnn": RUNLOCAL_DCNN},
    "tiny": {"inception": TINY_INCEPTION, "mel_dcnn": TINY_DCNN},
}


def metric_tiny(c: ml_collections.ConfigDict, *, num_train_steps: int = 60) -> None:
  """Shrinks a ``:runlocal`` metric-learning config in place to a run of seconds (tests)."""
  c.data.sample_rate = TINY_SAMPLE_RATE
  c.data.synthetic = dict(TINY_CORPUS)
  c.data.segments_per_clip = 2
  resize_backbone(c, "tiny")
  if c.model.kwargs.embedding_dim:
    c.model.kwargs.embedding_dim = 16
  c.task.kwargs.eval_triplets = 500
  c.num_train_steps = num_train_steps
  c.log_every = max(num_train_steps // 6, 1)
  c.eval_every = c.checkpoint_every = max(num_train_steps // 2, 1)
  c.checkpoint.async_save = False
  c.progress_bar = False
