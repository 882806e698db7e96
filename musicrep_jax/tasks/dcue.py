"""Deep content-user embedding for recommendation (paper 7, DLRS 2018; papers.md 8).

Model: ``models/dcue.py`` (a user embedding table and an audio CNN into one space, cosine
score), trained end to end.

Data (``data/interactions.py``): the embedded corpus's ``interactions.npy`` or a
``user,item,count`` CSV (``interactions_csv``), matched to the shards' records. Interactions with
tracks of the training split are split per user into training and held-out ("warm") ones
(``heldout_fraction``, ``split_seed``); the tracks of the other splits are never trained on,
so the validation and test tracks are cold-start items.

Sampling (papers.md 8.4), inside the Grain pipeline (:class:`DcueExamples`): the global stream
runs over the training interactions, a new permutation each epoch; element ``g`` (interaction
``(u, i+)``) draws ``negatives`` tracks of the training split uniformly with replacement among
those ``u`` has no training interaction with, and a random crop of each of the ``1 + K`` tracks,
all from the rng ``(seed, g)``. So the stream depends only on the seed and the data, is split
over processes as ``input_pipeline.process_batches`` does, and resumes from the iterator state.
Batch: ``audio`` float32 ``[B, 1 + K, input_length, 1]`` (the positive first), ``user`` int64
``[B]``, ``items`` int64 ``[B, 1 + K]`` (record indices in the training split).

Loss (papers.md 8.3): ``sum_{b, k} max(0, margin - s(u_b, i+_b) + s(u_b, i-_bk))`` on cosines
(``losses.triplet_margin_loss``, margin 0.2, summed as the paper does); for the multi model the
heads' losses are summed.

Evaluation (``evaluators/recommendation.py``, papers.md 8.6, extended): warm (held-out
listens of training tracks) and cold-start (tracks of the evaluated split) ranking per user,
against the popularity baseline, and a tagging probe on the track embeddings.

Lifecycle: ``bind(shards)`` loads and splits the interactions (``DcueData``); the model is passed
to ``forward`` (and to the evaluator), never kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grain
import jax.numpy as jnp
import numpy as np

from musicrep_jax.data import interactions as interactions_lib
from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.errors import UserError
from musicrep_jax.ops import losses
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import Task, require_random_segments

_SHUFFLE_STREAM, _EXAMPLE_STREAM = 31, 37


# ------------------------------------------------------------------------------------- sampling


def sample_negatives(rng: np.random.Generator, excluded: np.ndarray, num_candidates: int,
                     k: int) -> np.ndarray:
  """``k`` draws from ``range(num_candidates)`` minus the sorted ``excluded``, with
  replacement (rejection sampling) -> int64 ``[k]``."""
  out = rng.integers(0, num_candidates, k)
  bad = np.isin(out, excluded)
  while bad.any():
    out[bad] = rng.integers(0, num_candidates, int(bad.sum()))
    bad = np.isin(out, excluded)
  return out.astype(np.int64)


class DcueExamples:
  """Element ``g`` of the global stream (training interaction ``j``) -> one example (module
  docstring). Picklable when the source is (Grain workers).

  Args:
    source: the training split (records ``0 .. num_candidates - 1`` are the candidates).
    users, positives: int64 ``[N]`` user and positive record of each training interaction.
    negatives: K; crop_length: samples per crop; seed: the run's seed.
  """

  def __init__(self, source: Any, users: np.ndarray, positives: np.ndarray, *, negatives: int,
               crop_length: int, seed: int):
    self.source, self.negatives, self.crop_length, self.seed = (source, int(negatives),
                                                                int(crop_length), int(seed))
    self.users, self.positives = np.asarray(users, np.int64), np.asarray(positives, np.int64)
    order = np.lexsort((self.positives, self.users))
    self._sorted_items = self.positives[order]
    ids, starts = np.unique(self.users[order], return_index=True)
    self._user_ids, self._starts = ids, np.append(starts, len(order))
    self.num_candidates = len(source)
    worst = np.diff(self._starts).max(initial=0)
    if worst >= self.num_candidates:
      raise UserError(f"A user has training interactions with all {self.num_candidates} "
                      f"training tracks, so no negative can be sampled for them.")

  def __len__(self) -> int:
    return len(self.users)

  def excluded(self, user: int) -> np.ndarray:
    """Sorted training records of ``user`` (never drawn as its negatives)."""
    i = int(np.searchsorted(self._user_ids, user))
    return self._sorted_items[self._starts[i]:self._starts[i + 1]]

  def __call__(self, index: int, j: int) -> dict:
    rng = np.random.default_rng((self.seed, _EXAMPLE_STREAM, index))
    user = int(self.users[j])
    items = np.concatenate([[self.positives[j]], sample_negatives(
        rng, self.excluded(user), self.num_candidates, self.negatives)])
    crops = []
    for item in items:
      record = self.source[int(item)]
      n = np.asarray(record["audio"]).shape[0]
      start = int(rng.integers(0, max(n - self.crop_length, 0) + 1))
      crops.append(input_pipeline.crop_example(record, start, self.crop_length, ())["audio"])
    return {"audio": np.stack(crops), "user": np.int64(user), "items": items}


def dcue_dataset(examples: DcueExamples, *, global_batch_size: int, seed: int,
                 process_index: int | None = None,
                 process_count: int | None = None) -> grain.MapDataset:
  """This process's infinite ``MapDataset`` of DCUE batches (item ``s`` = global step ``s``)."""
  process_index, process_count = input_pipeline.resolve_processes(process_index, process_count)
  shuffle_seed = int(np.random.SeedSequence((seed, _SHUFFLE_STREAM)).generate_state(1)[0])
  ds = grain.MapDataset.range(len(examples)).shuffle(seed=shuffle_seed).repeat()
  return input_pipeline.process_batches(ds.map_with_index(examples),
                                        global_batch_size=global_batch_size,
                                        process_index=process_index, process_count=process_count)


@dataclasses.dataclass(frozen=True)
class DcueData:
  """Bound data of ``DcueTask``: the interactions of the shards split for training and
  evaluation, and the training split's records (the warm candidates the evaluator embeds)."""

  recommendation: interactions_lib.RecommendationSplit
  train_source: Any


# --------------------------------------------------------------------------------------- task


@TASKS.register("dcue")
@dataclasses.dataclass(frozen=True)
class DcueTask(Task):
  """DCUE recommendation (module docstring). Fields are ``config.task.kwargs``.

  ``train_split`` must be ``config.data.train_split``; ``eval_placement`` places the segments of
  the training-split tracks embedded for the warm evaluation (use ``config.data.eval_placement``).
  """

  interactions_csv: str = ""
  heldout_fraction: float = 0.2
  split_seed: int = 0
  negatives: int = 20
  margin: float = 0.2
  ks: tuple = (10, 50)
  train_split: str = "train"
  eval_placement: str = "start"
  eval_batch_size: int = 64
  fields: tuple = ("clip_id", "tags")
  metric_names: tuple = ("loss",)
  higher_is_better: tuple = ("warm/auc", "cold/auc", "probe_roc_auc")
  default_evals = ("recommendation",)

  # --- Lifecycle and model ---------------------------------------------------------------------
  def bind(self, shards) -> "DcueTask":
    """Bound data: ``DcueData`` (the interactions split per user, module docstring)."""
    if self.train_split not in shards.split_sizes:
      raise UserError(f"config.task.kwargs.train_split={self.train_split!r} is not a split of "
                      f"{shards.dataset_dir}.")
    recommendation = interactions_lib.load_split(
        shards, csv_path=self.interactions_csv, warm_split=self.train_split,
        heldout_fraction=self.heldout_fraction, seed=self.split_seed)
    return dataclasses.replace(self, bound=DcueData(recommendation,
                                                    shards.source(self.train_split)))

  def model_kwargs(self) -> dict:
    return {"num_users": self.data.recommendation.num_users}

  def init_inputs(self, input_length: int) -> tuple:
    return (jnp.zeros((1, input_length, 1), jnp.float32), jnp.zeros((1,), jnp.int32))

  def forward(self, model, variables: dict, batch: dict, *, train: bool, **apply_kwargs):
    """Training batches (``audio`` ``[B, 1 + K, T, 1]``, ``user``): every crop and the users;
    evaluation batches (``[B, T, 1]``): the item heads only."""
    audio = batch["audio"]
    if audio.ndim == 4:
      flat = audio.reshape((-1,) + audio.shape[2:])
      return model.apply(variables, flat, batch["user"], train=train, **apply_kwargs)
    return model.apply(variables, audio, None, train=train, **apply_kwargs)

  # --- Data ------------------------------------------------------------------------------------
  def examples(self, source, *, crop_length: int, seed: int) -> DcueExamples:
    """The sampler over the bound training interactions (records of ``source``)."""
    data = self.data.recommendation
    if getattr(source, "split", self.train_split) != self.train_split:
      raise UserError(f"config.task.kwargs.train_split={self.train_split!r} differs from the "
                      f"training split {source.split!r} (config.data.train_split).")
    users, items = data.pairs(data.train)
    return DcueExamples(source, users, data.catalogue.record[items], negatives=self.negatives,
                        crop_length=crop_length, seed=seed)

  def train_iterator(self, source, *, crop_length: int, global_batch_size: int, seed: int,
                     num_workers: int, start_step: int = 0,
                     segments: input_pipeline.TrainSegments = input_pipeline.TrainSegments()):
    """Batches of interactions (module docstring); random crops only (``segments``)."""
    require_random_segments(self, segments)
    ds = dcue_dataset(self.examples(source, crop_length=crop_length, seed=seed),
                      global_batch_size=global_batch_size, seed=seed)
    return input_pipeline.iterate_batches(ds, num_workers=num_workers, start_step=start_step)

  # --- Loss ----------------------------------------------------------------------------------
  def loss(self, outputs: dict, batch: dict):
    total = 0.0
    for user, items in zip(outputs["user_heads"], outputs["item_heads"]):
      items = items.reshape(user.shape[0], -1, items.shape[-1])
      head_loss, _ = losses.triplet_margin_loss(user, items[:, 0], items[:, 1:],
                                                margin=self.margin, metric="cosine",
                                                reduction="sum")
      total = total + head_loss
    return total, {"loss": total}

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    return {"item_heads": outputs["item_heads"]}
