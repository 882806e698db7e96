"""Zero-shot evaluator: seen / unseen label and instance metrics (papers 10, 11; papers.md 11.1,
11.6, 12).

Clip score per tag = the mean over the clip's segments of the cosine between segment embedding
and label embedding (the paper averages the embeddings first; [choice]). The tags with side
information are split into seen (X) and unseen (Y) tags (``task.data.seen`` / ``unseen``); the
clips into A (seen tags only), B (seen and unseen), C (no seen tag). Reported on the split
("_l": retrieval, per tag over clips; "_i": annotation, per clip over tags; as ``eval.py``):

* ``auc_l_unseen`` / ``map_l_unseen``: retrieval (per unseen tag over the B+C clips), the
  headline "(B+C)-Y AUC-l"; ``auc_i_unseen`` / ``map_i_unseen``: annotation (per B+C clip over
  the unseen tags);
* ``hit@k_l_unseen`` / ``p@k_l_unseen`` and ``hit@k_i_unseen`` / ``p@k_i_unseen`` for k in
  ``task.top_k`` (the paper's 1, 5, 10), on the same two rankings: flat hit@k = the fraction of
  queries with a relevant item among their top k, P@k = relevant items in the top k / k.
  [choice] queries without a relevant item are left out (``eval.py`` counts them as misses); a
  k larger than the ranked list takes the whole list (P@k still divides by k, as
  ``ops.retrieval``); ties rank by column order (a stable sort).
  ``eval.py``'s printed "average precision@k" is an AP@k, not reported here;
* ``precision_l_unseen@t`` / ``recall_l_unseen@t`` / ``f1_l_unseen@t`` (per unseen tag over the
  B+C clips, averaged over tags: "macro") and ``precision_i_unseen@t`` / ... (per B+C clip over
  the unseen tags, averaged over clips: "samples") for each threshold t of ``task.thresholds``,
  a tag predicted where its cosine >= t (``ops.metrics.precision_recall_f1``; ``eval.py`` sweeps
  t = 0.0, 0.1, ..., 0.9 with scikit-learn's per-row ``average="binary"``, the same values);
* generalised: ``auc_i_all`` (per B+C clip over seen + unseen tags), ``auc_l_all`` (per tag
  over all clips; paper 11's "MTAT retrieval ROC-AUC" on MTAT shards);
* ``acc_i_all``: annotation accuracy over the candidate labels ``task.data.accuracy`` (default
  seen + unseen tags): each clip carrying exactly one candidate scores 1 when that label has the
  highest cosine among the candidates (ties: the first column); the mean over those clips
  (``acc_clips``). Paper 11's GTZAN number (0.7310, papers.md 12: "most likely top-1 over the
  10 genre names") on GTZAN shards, whose clips all carry one genre;
* ``auc_l_seen``: retrieval of seen tags over all clips (model selection uses it: choosing
  checkpoints on unseen tags would leak them);
* counts: ``clips``, ``clips_bc``, ``unseen_tags``, ``seen_tags``, ``acc_clips``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrep_jax.evaluators.common import clip_means, clip_values, require
from musicrep_jax.ops import metrics
from musicrep_jax.ops.retrieval import ranking_metric_sums
from musicrep_jax.registry import EVALUATORS

TOP_K = (1, 5, 10)  # Paper 10's eval.py (papers.md 11.6).


def instance_sets(tags: np.ndarray, seen: np.ndarray, unseen: np.ndarray) -> dict:
  """bool ``[N]`` masks ``A`` (seen tags only), ``B`` (seen and unseen), ``C`` (no seen tag,
  at least one unseen) of multi-hot ``tags`` ``[N, T]`` (papers.md 11.1)."""
  has_seen = (tags[:, seen] > 0).any(1)
  has_unseen = (tags[:, unseen] > 0).any(1)
  return {"A": has_seen & ~has_unseen, "B": has_seen & has_unseen, "C": ~has_seen & has_unseen}


def _retrieval(scores, labels, rows, cols) -> tuple[float, float]:
  """Macro (ROC-AUC, AP) per tag of ``cols`` over the clips ``rows``."""
  if not rows.any() or not cols.any():
    return float("nan"), float("nan")
  m = metrics.tagging_metrics(scores[rows][:, cols], labels[rows][:, cols].astype(np.float32))
  return float(m["roc_auc"]), float(m["pr_auc"])


def top_k_metrics(scores: np.ndarray, relevant: np.ndarray, ks, suffix: str) -> dict:
  """``hit@k<suffix>`` and ``p@k<suffix>`` for ``k`` in ``ks``: each row of ``scores`` ``[Q, N]``
  ranks its ``N`` items (higher first), ``relevant`` bool ``[Q, N]``; means over the rows with a
  relevant item (NaN without any). ``k > N``: the whole list is the top k (P@k divides by k)."""
  out = {}
  num_items = scores.shape[1] if scores.ndim == 2 else 0
  sums = (ranking_metric_sums(-np.asarray(scores, np.float64), np.asarray(relevant, bool),
                               np.ones(len(scores), bool), tuple(ks))
          if num_items and len(scores) else {})
  count = sums.get("num_queries", 0.0)
  for k in ks:
    out[f"hit@{k}{suffix}"] = float(sums[f"recall@{k}"] / count) if count else float("nan")
    out[f"p@{k}{suffix}"] = float(sums[f"precision@{k}"] / count) if count else float("nan")
  return out


def thresholded_metrics(scores: np.ndarray, labels: np.ndarray, thresholds, average: str,
                        suffix: str) -> dict:
  """``precision<suffix>@t``, ``recall<suffix>@t``, ``f1<suffix>@t`` of ``scores >= t`` against
  bool ``labels`` ``[N, K]`` for each ``t`` (``ops.metrics.precision_recall_f1`` with
  ``average``); NaN on an empty matrix."""
  out = {}
  for t in thresholds:
    if labels.size:
      values = metrics.precision_recall_f1(labels, scores.astype(np.float32), float(t), average)
    else:
      values = dict.fromkeys(("precision", "recall", "f1"), float("nan"))
    out.update({f"{name}{suffix}@{float(t):g}": float(v) for name, v in values.items()})
  return out


def annotation_accuracy(scores: np.ndarray, labels: np.ndarray,
                        candidates: np.ndarray) -> tuple[float, int]:
  """``(accuracy, clips)``: top-1 over the ``candidates`` columns (bool ``[T]``) of the clips
  with exactly one candidate label (module docstring); NaN without such a clip."""
  hits = labels[:, candidates]
  single = hits.sum(1) == 1
  if not single.any():
    return float("nan"), 0
  top = np.argmax(scores[single][:, candidates], axis=1)
  return float(hits[single][np.arange(int(single.sum())), top].mean()), int(single.sum())


def zero_shot_metrics(scores: np.ndarray, labels: np.ndarray, seen: np.ndarray,
                      unseen: np.ndarray, *, top_k=TOP_K, thresholds=(0.5,),
                      accuracy: np.ndarray | None = None) -> dict:
  """The metrics of the module docstring from clip scores ``[N, T]``, bool labels ``[N, T]``,
  the bool ``[T]`` seen / unseen tag masks and accuracy candidates (None: seen | unseen)."""
  sets = instance_sets(labels, seen, unseen)
  bc = sets["B"] | sets["C"]
  everyone = np.ones(len(labels), bool)
  out = {"clips": int(len(labels)), "clips_bc": int(bc.sum()),
         "unseen_tags": int(unseen.sum()), "seen_tags": int(seen.sum())}
  out["auc_l_unseen"], out["map_l_unseen"] = _retrieval(scores, labels, bc, unseen)
  # Annotation = retrieval on the transposed matrix: per clip over tags.
  out["auc_i_unseen"], out["map_i_unseen"] = _retrieval(scores.T, labels.T, unseen, bc)
  out["auc_i_all"], _ = _retrieval(scores.T, labels.T, seen | unseen, bc)
  out["auc_l_all"], _ = _retrieval(scores, labels, everyone, seen | unseen)
  out["auc_l_seen"], _ = _retrieval(scores, labels, everyone, seen)
  # The (B+C)-Y block: clips [n_bc, unseen tags].
  block_scores, block_labels = scores[bc][:, unseen], labels[bc][:, unseen]
  out.update(top_k_metrics(block_scores.T, block_labels.T, top_k, "_l_unseen"))
  out.update(top_k_metrics(block_scores, block_labels, top_k, "_i_unseen"))
  out.update(thresholded_metrics(block_scores, block_labels, thresholds, "macro", "_l_unseen"))
  out.update(thresholded_metrics(block_scores, block_labels, thresholds, "samples",
                                 "_i_unseen"))
  candidates = (seen | unseen) if accuracy is None else np.asarray(accuracy, bool)
  out["acc_i_all"], out["acc_clips"] = annotation_accuracy(scores, labels, candidates)
  return out


@EVALUATORS.register("zero_shot")
def zero_shot(task: Any, segments: dict, num_clips: int, variables: Any = None, *,
              model: Any = None) -> dict:
  """Segment outputs of a split -> the metrics of the module docstring.

  Reads ``scores`` ``[S, T]`` (cosines, from ``eval_outputs``) and the ``tags`` field
  ``[S, T]``; the seen / unseen masks and accuracy candidates ``[T]`` from the bound task
  (``task.data``), ``top_k`` and ``thresholds`` from its settings.
  """
  del variables, model
  require(segments, ("scores", "tags"), "zero_shot", task)
  side = task.data
  scores, counts = clip_means(segments, "scores", num_clips)
  labels = clip_values(segments, "tags", num_clips) > 0
  have = counts > 0
  return zero_shot_metrics(scores[have], labels[have], side.seen, side.unseen,
                           top_k=tuple(getattr(task, "top_k", TOP_K)),
                           thresholds=tuple(getattr(task, "thresholds", (0.5,))),
                           accuracy=side.accuracy)
