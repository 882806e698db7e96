"""Zero-shot evaluator: seen / unseen label and instance AUCs (papers 10, 11; papers.md 11.1,
11.6, 12).

Clip score per tag = the mean over the clip's segments of the cosine between segment embedding
and label embedding (the paper averages the embeddings first; [choice]). The tags with side
information are split into seen (X) and unseen (Y) tags (``task.data.seen`` / ``unseen``); the
clips into A (seen tags only), B (seen and unseen), C (no seen tag). Reported on the split:

* ``auc_l_unseen`` / ``map_l_unseen``: retrieval (per unseen tag over the B+C clips), the
  headline "(B+C)-Y AUC-l"; ``auc_i_unseen`` / ``map_i_unseen``: annotation (per B+C clip over
  the unseen tags);
* generalised: ``auc_i_all`` (per B+C clip over seen + unseen tags), ``auc_l_all`` (per tag
  over all clips);
* ``auc_l_seen``: retrieval of seen tags over all clips (model selection uses it: choosing
  checkpoints on unseen tags would leak them);
* counts: ``clips``, ``clips_bc``, ``unseen_tags``, ``seen_tags``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrep_jax.evaluators.common import clip_means, clip_values, require
from musicrep_jax.ops import metrics
from musicrep_jax.registry import EVALUATORS


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


def zero_shot_metrics(scores: np.ndarray, labels: np.ndarray, seen: np.ndarray,
                      unseen: np.ndarray) -> dict:
  """The metrics of the module docstring from clip scores ``[N, T]``, bool labels ``[N, T]``
  and the bool ``[T]`` seen / unseen tag masks."""
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
  return out


@EVALUATORS.register("zero_shot")
def zero_shot(task: Any, segments: dict, num_clips: int, variables: Any = None, *,
              model: Any = None) -> dict:
  """Segment outputs of a split -> the metrics of the module docstring.

  Reads ``scores`` ``[S, T]`` (cosines, from ``eval_outputs``) and the ``tags`` field
  ``[S, T]``; the seen / unseen masks ``[T]`` from the bound task (``task.data``).
  """
  del variables, model
  require(segments, ("scores", "tags"), "zero_shot", task)
  side = task.data
  scores, counts = clip_means(segments, "scores", num_clips)
  labels = clip_values(segments, "tags", num_clips) > 0
  have = counts > 0
  return zero_shot_metrics(scores[have], labels[have], side.seen, side.unseen)
