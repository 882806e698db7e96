"""Recommendation evaluator: warm / cold-start ranking against popularity, and a tagging probe
(paper 7, DCUE; papers.md 8.6, extended).

A track's vector is the mean of its segments' head vectors (each head L2-normalised after
averaging); the score of (user, track) is the sum over heads of the cosines (the cosine for the
basic model). The users are those with a training interaction (``task.data.recommendation``):

* ``warm/...``: the held-out interactions against every other training-split track the user has
  no training interaction with (the training split's tracks are embedded here with ``model``,
  whichever split is evaluated);
* ``cold/...``: the evaluated split's tracks that no training interaction names, the user's
  interactions with them as positives (the test split's tracks: true cold start);

each with the per-user ``auc`` (ROC-AUC, ties as half), ``recall@k`` (relevant tracks in the top
``k`` over all relevant tracks) and ``ndcg@k`` (binary relevance), averaged over the users that
have a positive (``users``), and the same numbers for the popularity baseline
(``popularity/warm/...``, ``popularity/cold/...``: tracks ranked by their training play count;
cold-start tracks have none, so that baseline is at chance there, ties broken by track order).
Also ``clips``, ``cold/items``, ``data/...`` (the interaction counts) and auto-tagging from the
learned audio embedding: ``probe_roc_auc`` / ``probe_pr_auc`` of a linear probe (ridge
regression, 2-fold cross-validation inside the split, ``metrics.ridge_probe_scores``) on the
first head's track vectors.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.evaluators.common import (clip_means, clip_values, present_clips, require,
                                            valid_segments)
from musicrep_jax.ops import metrics
from musicrep_jax.registry import EVALUATORS


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


def clip_vectors(segments: dict, num_clips: int) -> tuple[list, np.ndarray, np.ndarray]:
  """Segment head vectors (``item_heads``: a tuple of ``[S, d_h]``) -> ``(heads, clip_ids,
  first_head_raw)`` of the clips present: per head the L2-normalised mean over each clip's
  segments ``[clips, d_h]``, the clips' ids ``[clips]``, and the unnormalised mean of the first
  head (the audio embedding)."""
  means = [clip_means(segments, head, num_clips) for head in segments["item_heads"]]
  present = means[0][1] > 0
  heads = [mean[present] for mean, _ in means]
  clip_ids = clip_values(segments, "clip_id", num_clips).astype(np.int64)[present]
  return [metrics.unit_rows(h) for h in heads], clip_ids, heads[0]


@functools.partial(jax.jit, static_argnames=("model", "method"))
def _apply(variables: dict, inputs, *, model, method: str):
  """``model.apply(variables, inputs, method=method)``, compiled once per model and method."""
  return model.apply(variables, inputs, method=method)


def _embed_training_tracks(task, model, variables, segments_per_clip: int) -> tuple:
  """Head vectors and clip ids of the training split's tracks (the warm candidates)."""
  source = task.data.train_source
  pieces = []
  for batch in input_pipeline.eval_batches(
      source, segment_length=model.input_length, segments_per_clip=segments_per_clip,
      global_batch_size=task.eval_batch_size, fields=(), placement=task.eval_placement,
      process_index=0, process_count=1):
    heads = _apply(variables, batch["audio"], model=model, method="embed_items")
    pieces.append(dict(item_heads=heads, clip_index=batch["clip_index"],
                       segment_valid=batch["segment_valid"], clip_id=batch["clip_id"]))
  segments = jax.tree.map(lambda *xs: np.concatenate(xs), *jax.device_get(pieces))
  heads, clip_ids, _ = clip_vectors(segments, len(source))
  return heads, clip_ids


def _user_heads(model, variables, users: np.ndarray) -> list:
  heads = _apply(variables, jnp.asarray(users, jnp.int32), model=model, method="embed_users")
  return [metrics.unit_rows(h) for h in jax.device_get(heads)]


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
  """Auto-tagging ROC-AUC / PR-AUC of a linear probe on the track embeddings ``[clips, d]``
  (the clips present)."""
  tags = np.asarray(segments.get("tags", np.zeros((0, 0))))
  if tags.ndim != 2 or tags.shape[1] == 0:
    return {}
  present = present_clips(segments, num_clips)
  clip_tags = clip_values(segments, "tags", num_clips).astype(np.float32)[present]
  result = metrics.tagging_metrics(
      metrics.ridge_probe_scores(metrics.unit_rows(embedding), clip_tags), clip_tags)
  return {"probe_roc_auc": float(result["roc_auc"]), "probe_pr_auc": float(result["pr_auc"])}


@EVALUATORS.register("recommendation")
def recommendation(task: Any, segments: dict, num_clips: int, variables: Any = None, *,
                   model: Any = None) -> dict:
  """Segment outputs of a split -> the metrics of the module docstring.

  Reads ``item_heads`` (``eval_outputs``) and the ``clip_id`` (and ``tags``) fields; the
  interactions and the training split from the bound task (``task.data``); embeds users and
  training tracks with ``model`` and ``variables``.
  """
  require(segments, ("item_heads", "clip_id"), "recommendation", task)
  if model is None or variables is None:
    raise ValueError("The recommendation evaluator embeds users and tracks: pass the model "
                     "and its variables.")
  data = task.data.recommendation
  cat = data.catalogue
  heads, clip_ids, embedding = clip_vectors(segments, num_clips)
  rows = cat.rows_of_clips(clip_ids)
  split = str(cat.split[rows[0]]) if len(rows) else ""
  if split == task.train_split:
    warm_heads, warm_rows = heads, rows
  else:
    per_clip = int(np.bincount(valid_segments(segments, "clip_index")).max())
    warm_heads, warm_clips = _embed_training_tracks(task, model, variables, per_clip)
    warm_rows = cat.rows_of_clips(warm_clips)
  users = data.trained_users()
  user_heads = _user_heads(model, variables, users)
  cold = ~data.trained_items()[rows]
  out = {"clips": int(len(rows)), "cold/items": int(cold.sum()),
         **{f"data/{k}": v for k, v in data.summary().items()}}
  popularity = data.popularity().astype(np.float32)
  protocols = {
      "warm/": (warm_rows, list(warm_heads), data.heldout, data.train),
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
      result = ranking_metrics(score_block, len(users), len(item_rows), pos, exc, task.ks)
      out.update({f"{name}{prefix}{k}": v for k, v in result.items()})
  out.update(_probe(segments, num_clips, embedding))
  return out
