"""Deep content-user embedding for recommendation (paper 7, DLRS 2018; papers.md 8).

Model: ``models/dcue.py`` (a user embedding table and an audio CNN into one space, cosine
score), trained end to end.

Data (``data_pipelines/interactions.py``): the embedded corpus's ``interactions.npy`` or a
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

Evaluation (papers.md 8.6, extended): a track's vector is the mean of its segments' head vectors
(each head L2-normalised after averaging); the score of (user, track) is the sum over heads of
the cosines (the cosine for the basic model). For every user with a training interaction:

* ``warm/...``: the held-out interactions against every other training-split track the user has
  no training interaction with (the training split's tracks are embedded by the task, whichever
  split is evaluated);
* ``cold/...``: the evaluated split's tracks that no training interaction names, the user's
  interactions with them as positives (the test split's tracks: true cold start);

each with the per-user ``auc`` (ROC-AUC, ties as half), ``recall@k`` (relevant tracks in the top
``k`` over all relevant tracks) and ``ndcg@k`` (binary relevance), averaged over the users that
have a positive (``users``), and the same numbers for the popularity baseline
(``popularity/warm/...``, ``popularity/cold/...``: tracks ranked by their training play count;
cold-start tracks have none, so that baseline is at chance there, ties broken by track order).
Auto-tagging from the learned audio embedding: ``probe_roc_auc`` / ``probe_pr_auc`` of a
linear probe (ridge regression, 2-fold cross-validation inside the split,
``metric_learning.ridge_probe_scores``) on the first head's track vectors.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.data import interactions as interactions_lib
from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.ops import losses, metrics
from musicrep_jax.errors import UserError
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import Task
from musicrep_jax.tasks.metric_learning import ridge_probe_scores

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


# ------------------------------------------------------------------------------------ ranking


@functools.partial(jax.jit, static_argnames=("ks",))
def _block_ranking(scores, relevant, candidate, ks: tuple) -> dict:
  """Per-user metrics of one block: ``scores`` float ``[b, n]``, ``relevant`` / ``candidate``
  bool ``[b, n]`` -> ``{"auc", "recall@k", "ndcg@k", "num_relevant"}`` each ``[b]``."""
  relevant = relevant & candidate
  auc = jax.vmap(lambda s, r, c: metrics.roc_auc_per_tag(s[:, None], r[:, None], c)[0])(
      scores, relevant, candidate)
  kmax = min(max(ks), scores.shape[1])
  _, top = jax.lax.top_k(jnp.where(candidate, scores, -jnp.inf), kmax)
  hits = jnp.take_along_axis(relevant, top, axis=1).astype(jnp.float32)
  num_rel = relevant.sum(1)
  discount = 1.0 / jnp.log2(jnp.arange(kmax, dtype=jnp.float32) + 2.0)
  ideal_cum = jnp.cumsum(discount)
  out = {"auc": auc, "num_relevant": num_rel}
  for k in ks:
    kk = min(k, kmax)
    out[f"recall@{k}"] = hits[:, :kk].sum(1) / jnp.maximum(num_rel, 1)
    ideal = ideal_cum[jnp.clip(jnp.minimum(num_rel, kk) - 1, 0, kmax - 1)]
    out[f"ndcg@{k}"] = (hits[:, :kk] * discount[:kk]).sum(1) / ideal
  return out


def ranking_metrics(score_block, num_users: int, num_items: int, positives: tuple,
                    excluded: tuple, ks: tuple, block_size: int = 256) -> dict:
  """Per-user ranking metrics averaged over the users with a positive.

  Args:
    score_block: ``(start, stop) -> float [stop - start, num_items]`` scores of users
      ``start .. stop - 1`` (indices into the evaluated users).
    positives, excluded: ``(user_index, item_index)`` int arrays: relevant pairs, and pairs left
      out of the user's ranking (its training interactions).
    ks: cut-offs.

  Returns:
    ``{"auc", "recall@k", "ndcg@k", "users"}`` (NaN means when no user has a positive).
  """
  ks = tuple(int(k) for k in ks)
  sums: dict[str, float] = {}
  counts = {"auc": 0, "rank": 0}
  block = max(1, min(block_size, num_users))
  for start in range(0, num_users, block):
    stop = min(start + block, num_users)
    scores = np.zeros((block, num_items), np.float32)
    scores[:stop - start] = score_block(start, stop)
    relevant = np.zeros((block, num_items), bool)
    candidate = np.zeros((block, num_items), bool)
    candidate[:stop - start] = True
    for (users, items), target, value in ((positives, relevant, True),
                                          (excluded, candidate, False)):
      rows = (users >= start) & (users < stop)
      target[users[rows] - start, items[rows]] = value
    out = jax.device_get(_block_ranking(scores, relevant, candidate, ks))
    usable = out.pop("num_relevant") > 0
    auc = out.pop("auc")[usable]
    sums["auc"] = sums.get("auc", 0.0) + float(np.nansum(auc))
    counts["auc"] += int(np.isfinite(auc).sum())
    counts["rank"] += int(usable.sum())
    for name, value in out.items():
      sums[name] = sums.get(name, 0.0) + float(value[usable].sum())
  result = {name: (total / counts["auc" if name == "auc" else "rank"]
                   if counts["auc" if name == "auc" else "rank"] else float("nan"))
            for name, total in sums.items()}
  result["users"] = counts["rank"]
  return result


def _unit(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def clip_vectors(segments: dict, num_clips: int) -> tuple[list, np.ndarray, np.ndarray]:
  """Segment head vectors -> ``(heads, clip_ids, first_head_raw)`` of the clips present:
  per head the L2-normalised mean over each clip's segments ``[clips, d_h]``, the clips' ids
  ``[clips]``, and the unnormalised mean of the first head (the audio embedding)."""
  valid = np.asarray(segments["segment_valid"], bool)
  clip_index = np.asarray(segments["clip_index"])
  heads, present = [], None
  for head in segments["item_heads"]:
    mean, counts = metrics.clip_average(np.asarray(head, np.float32), clip_index, valid,
                                        num_clips)
    present = np.asarray(counts) > 0
    heads.append(np.asarray(mean)[present])
  clip_id = np.zeros(num_clips, np.int64)
  clip_id[clip_index[valid]] = np.asarray(segments["clip_id"])[valid]
  return [_unit(h) for h in heads], clip_id[present], heads[0]


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

  # --- Data and model state (filled by the hooks the trainer calls) ---------------------------
  def _state(self) -> dict:
    return self.__dict__.setdefault("_dcue_state", {})

  def data(self, shards) -> interactions_lib.RecommendationSplit:
    """The interactions of ``shards`` split for training and evaluation (cached)."""
    state = self._state()
    if state.get("dataset_dir") != str(shards.dataset_dir):
      if self.train_split not in shards.split_sizes:
        raise UserError(f"config.task.kwargs.train_split={self.train_split!r} is not a split of "
                        f"{shards.dataset_dir}.")
      state.update(dataset_dir=str(shards.dataset_dir), shards=shards,
                   data=interactions_lib.load_split(
                       shards, csv_path=self.interactions_csv, warm_split=self.train_split,
                       heldout_fraction=self.heldout_fraction, seed=self.split_seed))
    return state["data"]

  def _current(self) -> dict:
    state = self._state()
    if "data" not in state or "model" not in state:
      raise RuntimeError("DcueTask.model_kwargs(shards) and forward must run before metrics")
    return state

  # --- Model -----------------------------------------------------------------------------------
  def num_outputs(self, shards) -> int:
    return self.data(shards).num_users

  def model_kwargs(self, shards) -> dict:
    return {"num_users": self.data(shards).num_users}

  def init_inputs(self, input_length: int) -> tuple:
    return (jnp.zeros((1, input_length, 1), jnp.float32), jnp.zeros((1,), jnp.int32))

  def forward(self, model, variables: dict, batch: dict, *, train: bool, **apply_kwargs):
    """Training batches (``audio`` ``[B, 1 + K, T, 1]``, ``user``): every crop and the users;
    evaluation batches (``[B, T, 1]``): the item heads only."""
    self._state()["model"] = model  # clip_metrics embeds users and training tracks with it.
    audio = batch["audio"]
    if audio.ndim == 4:
      flat = audio.reshape((-1,) + audio.shape[2:])
      return model.apply(variables, flat, batch["user"], train=train, **apply_kwargs)
    return model.apply(variables, audio, None, train=train, **apply_kwargs)

  # --- Data ------------------------------------------------------------------------------------
  def examples(self, source, shards, *, crop_length: int, seed: int) -> DcueExamples:
    """The sampler over ``shards``' training interactions (records of ``source``)."""
    data = self.data(shards)
    if getattr(source, "split", self.train_split) != self.train_split:
      raise UserError(f"config.task.kwargs.train_split={self.train_split!r} differs from the "
                      f"training split {source.split!r} (config.data.train_split).")
    users, items = data.pairs(data.train)
    return DcueExamples(source, users, data.catalogue.record[items], negatives=self.negatives,
                        crop_length=crop_length, seed=seed)

  def train_iterator(self, source, *, crop_length: int, global_batch_size: int, seed: int,
                     num_workers: int, shards: Any = None, start_step: int = 0):
    ds = dcue_dataset(self.examples(source, shards, crop_length=crop_length, seed=seed),
                      global_batch_size=global_batch_size, seed=seed)
    return input_pipeline.iterate_batches(ds, num_workers=num_workers, start_step=start_step)

  # --- Losses and metrics ----------------------------------------------------------------------
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

  def _embed_training_tracks(self, variables, segments_per_clip: int) -> tuple[list, np.ndarray]:
    """Head vectors and clip ids of the training split's tracks (the warm candidates)."""
    state = self._current()
    model = state["model"]
    embed = state.setdefault(("embed_items", model), jax.jit(
        lambda v, a: model.apply(v, a, method="embed_items")))
    source = state["shards"].source(self.train_split)
    pieces = []
    for batch in input_pipeline.eval_batches(
        source, segment_length=model.input_length, segments_per_clip=segments_per_clip,
        global_batch_size=self.eval_batch_size, fields=(), placement=self.eval_placement,
        process_index=0, process_count=1):
      heads = embed(variables, batch["audio"])
      pieces.append(dict(item_heads=heads, clip_index=batch["clip_index"],
                         segment_valid=batch["segment_valid"], clip_id=batch["clip_id"]))
    segments = jax.tree.map(lambda *xs: np.concatenate(xs), *jax.device_get(pieces))
    heads, clip_ids, _ = clip_vectors(segments, len(source))
    return heads, clip_ids

  def _user_heads(self, variables, users: np.ndarray) -> list:
    state = self._current()
    model = state["model"]
    embed = state.setdefault(("embed_users", model), jax.jit(
        lambda v, u: model.apply(v, u, method="embed_users")))
    return [_unit(h) for h in jax.device_get(embed(variables, jnp.asarray(users, jnp.int32)))]

  def clip_metrics(self, segments: dict, num_clips: int, variables: Any = None) -> dict:
    state = self._current()
    data = state["data"]
    cat = data.catalogue
    heads, clip_ids, embedding = clip_vectors(segments, num_clips)
    rows = cat.rows_of_clips(clip_ids)
    split = str(cat.split[rows[0]]) if len(rows) else ""
    valid = np.asarray(segments["segment_valid"], bool)
    if split == self.train_split:
      warm_heads, warm_rows = heads, rows
    else:
      per_clip = int(np.bincount(np.asarray(segments["clip_index"])[valid]).max())
      warm_heads, warm_clips = self._embed_training_tracks(variables, per_clip)
      warm_rows = cat.rows_of_clips(warm_clips)
    users = data.trained_users()
    user_heads = self._user_heads(variables, users)
    cold = ~data.trained_items()[rows]
    out = {"clips": int(len(rows)), "cold/items": int(cold.sum()),
           **{f"data/{k}": v for k, v in data.summary().items()}}
    popularity = data.popularity().astype(np.float32)
    protocols = {
        "warm/": (warm_rows, [h for h in warm_heads], data.heldout, data.train),
        "cold/": (rows[cold], [h[cold] for h in heads], ~data.train, np.zeros_like(data.train)),
    }
    for prefix, (item_rows, item_heads, positive, excluded) in protocols.items():
      pos = _pair_indices(data, positive, users, item_rows)
      exc = _pair_indices(data, excluded, users, item_rows)

      def model_scores(start, stop, item_heads=item_heads):
        return sum(u[start:stop] @ i.T for u, i in zip(user_heads, item_heads))

      def popularity_scores(start, stop, item_rows=item_rows):
        return np.broadcast_to(popularity[item_rows], (stop - start, len(item_rows)))

      for name, score_block in (("", model_scores), ("popularity/", popularity_scores)):
        result = ranking_metrics(score_block, len(users), len(item_rows), pos, exc, self.ks)
        out.update({f"{name}{prefix}{k}": v for k, v in result.items()})
    out.update(_probe(segments, num_clips, embedding))
    return out


def _pair_indices(data, mask: np.ndarray, users: np.ndarray,
                  item_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(user index into users, item index into item_rows)`` of the interactions in ``mask``
  whose user and item are both evaluated."""
  user, item = data.pairs(mask)
  if not len(users):
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  column = np.full(len(data.catalogue), -1, np.int64)
  column[item_rows] = np.arange(len(item_rows))
  u = np.searchsorted(users, user)
  keep = (u < len(users)) & (users[np.minimum(u, len(users) - 1)] == user) & (column[item] >= 0)
  return u[keep], column[item[keep]]


def _probe(segments: dict, num_clips: int, embedding: np.ndarray) -> dict:
  """Auto-tagging ROC-AUC / PR-AUC of a linear probe on the track embeddings."""
  valid = np.asarray(segments["segment_valid"], bool)
  clip_index = np.asarray(segments["clip_index"])
  tags = np.asarray(segments["tags"])
  if tags.ndim != 2 or tags.shape[1] == 0:
    return {}
  clip_tags = np.zeros((num_clips, tags.shape[1]), np.float32)
  clip_tags[clip_index[valid]] = tags[valid]
  clip_tags = clip_tags[np.isin(np.arange(num_clips), clip_index[valid])]
  result = metrics.tagging_metrics(ridge_probe_scores(_unit(embedding), clip_tags), clip_tags)
  return {"probe_roc_auc": float(result["roc_auc"]), "probe_pr_auc": float(result["pr_auc"])}
