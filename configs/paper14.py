"""Paper 14 (ISMIR 2020): metric learning vs classification, plain or disentangled; papers.md 15.

``--config paper14:APPROACH,VARIANT[,runlocal]`` is one cell of the grid (runner ``trainer``),
with APPROACH one of

* ``triplet``: P x K batches, one block per tag dimension, triplet hinge (margin 0.1, Euclidean
  on unit vectors, every triplet of the batch: a choice, the papers draw random triplets), model
  (a) plain / (d) disentangled;
* ``triplet_track``: ``triplet`` plus paper 13's track regularisation (lambda 0.5; the poster's
  "Triplet + track reg.", disentangled in the paper);
* ``proxy``: one learned proxy per tag, cosine logits / 0.1, sigmoid cross-entropy, (b) / (e);
* ``classification``: L2-normalised embedding -> dense -> tags, sigmoid cross-entropy, (c) / (f);
* ``classification_nonorm``: the same without the L2 normalisation (the poster's first
  classification row),

and VARIANT ``plain`` or ``disentangled`` (fixed disjoint masks, one subspace per dimension).
Paper scale: MSD 50 tags grouped into genre / mood / instrument / era (``tag:era`` needs a
dataset whose builder writes those tag groups), 3 s crops, 256-d embedding (4 x 64), Adam 0.001
[unknown in the paper: batch, learning rate, steps]. Backbone (argument): ``inception`` (the
default, ``metric_learning.PAPER13_BACKBONE``: papers 13/14's 2-D Inception network, papers.md
14.2, whose own 256-d output is the embedding; its L2 normalisation follows the cell's, off for
``classification_nonorm``) or ``mel_dcnn`` (paper 4's DCNN with a 256-d projection).
``:runlocal``: the embedded corpus, where tempo stands in for era, narrow backbones ending in
64-d (``metric_learning.RUNLOCAL_INCEPTION``, ``RUNLOCAL_DCNN`` + a 64-d projection).

``--config paper14:grid`` (or ``grid,runlocal``: both default to the ``runlocal`` cells) is the
whole grid (runner ``paper14``, as ``musicrep compare-paper14``; keys read by
``musicrep_jax.systems.paper14.grid.run``): ``cells`` (comma-separated ``APPROACH:VARIANT``, ""
for the poster's eight rows), each cell config at ``size`` (``runlocal``; ``paper``: the
paper-scale cells, on ``--data-dir``; or ``tiny``: seconds per cell, for tests) on
``backbone`` with ``steps`` per cell (0: the cell config's), ``evals`` validation points and
``cell_overrides`` (``"--config.a.b=v"`` strings), then the table and plots; ``target`` and
``fraction`` define the time-to-target columns.
"""

import ml_collections

from musicrep_jax.configs.common import sgd_nesterov
from musicrep_jax.configs.metric_learning import (BACKBONES, PAPER13_BACKBONE,
                                                  PAPER13_PROJECTION, TAG_DIMENSIONS,
                                                  backbone_kwargs_for, metric_config,
                                                  metric_runlocal, parse_args)

APPROACHES = ("triplet", "triplet_track", "proxy", "classification", "classification_nonorm")
MODEL_VARIANTS = ("plain", "disentangled")
PAPER_DIMENSIONS = ("tag:genre", "tag:mood", "tag:instrument", "tag:era")
VARIANTS = ("runlocal", "grid", "grid,runlocal") + tuple(
    f"{a},{v}{local}" for a in APPROACHES for v in MODEL_VARIANTS for local in ("", ",runlocal")
) + ("classification_nonorm,plain,mel_dcnn", "triplet,disentangled,mel_dcnn,runlocal")
# The order parse_args reads the backbone argument in: the default first.
BACKBONE_ARGS = (PAPER13_BACKBONE,) + tuple(b for b in BACKBONES if b != PAPER13_BACKBONE)


def task_kwargs(approach: str, disentangled: bool, dimensions) -> dict:
  """The ``metric_learning`` task of one grid cell."""
  kwargs = dict(approach=approach.split("_")[0], disentangled=disentangled,
                labels=tuple(dimensions), eval_labels=tuple(dimensions), normalize=True)
  if approach.startswith("triplet"):
    kwargs.update(classes_per_batch=4, samples_per_class=4, margin=0.1, metric="euclidean",
                  mining="all", track_weight=0.5 if approach == "triplet_track" else 0.0)
  if approach == "classification_nonorm":
    kwargs["normalize"] = False
  return kwargs


def grid_config() -> ml_collections.ConfigDict:
  """The whole grid, for the ``paper14`` runner (``musicrep_jax.systems.paper14.grid``)."""
  c = ml_collections.ConfigDict()
  c.runner = "paper14"
  c.cells = ""
  c.size = "runlocal"  # or "paper" (on --data-dir) or "tiny": grid.SIZES
  c.backbone = PAPER13_BACKBONE  # or "mel_dcnn": the backbone argument of every cell
  c.steps = 0
  c.evals = 8
  c.target = "overall/triplet_acc"
  c.fraction = 0.9
  c.cell_overrides = ()
  return c


def get_config(arg=None):
  args = parse_args(arg, {"approach": APPROACHES, "variant": MODEL_VARIANTS,
                          "kind": ("cell", "grid"), "backbone": BACKBONE_ARGS}, "paper14")
  if args["kind"] == "grid":
    if set(filter(None, (arg or "").split(","))) - {"grid", "runlocal"}:
      raise ValueError(f"paper14:grid takes only runlocal besides, not {arg!r}; the grid's "
                       f"cells are config.cells, their backbone config.backbone")
    return grid_config()
  disentangled = args["variant"] == "disentangled"
  dims = TAG_DIMENSIONS if args["runlocal"] else PAPER_DIMENSIONS
  task = task_kwargs(args["approach"], disentangled, dims)
  blocks = len(dims) + (1 if task.get("track_weight") else 0)
  batch = blocks * 4 * 4 if task["approach"] == "triplet" else 64
  backbone = args["backbone"]
  c = metric_config(task=task, backbone=backbone, backbone_kwargs=backbone_kwargs_for(backbone),
                    embedding_dim=PAPER13_PROJECTION[backbone], batch_size=batch,
                    num_train_steps=200_000,
                    optimizer=sgd_nesterov(0.001, "constant", name="adam"))
  if args["runlocal"]:
    # The corpus has 3 tempo classes: 3 classes x 3 clips per block, 36 rows for 4 blocks.
    if task["approach"] == "triplet":
      c.task.kwargs.classes_per_batch = c.task.kwargs.samples_per_class = 3
    c.batch_size = blocks * 3 * 3 if task["approach"] == "triplet" else 36
    metric_runlocal(c, num_train_steps=400, learning_rate=0.003, eval_labels=dims + (
        "artist", "album"))
    c.model.kwargs.embedding_dim = 64 if PAPER13_PROJECTION[backbone] else 0
  if backbone == "inception":
    # The Inception network's own L2 normalisation is the cell's "L2 norm" (papers.md 15.2).
    c.model.kwargs.backbone_kwargs.normalize = task["normalize"]
  c.checkpoint.best_metric = "loss"
  return c
