"""Tagging evaluator: clip-level macro ROC-AUC / PR-AUC (papers 1, 2, 3, 5; papers.md 1.4, 2.5).

Clip score = mean of the segments' sigmoid outputs (never max); ROC-AUC averaged over the tags
with a positive and a negative clip, PR-AUC over those with a positive (``ops.metrics``), and
the mean segment binary cross-entropy (model selection uses it, papers.md 1.4).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrep_jax.evaluators.common import clip_means, clip_values, require, segment_mean
from musicrep_jax.ops import metrics
from musicrep_jax.registry import EVALUATORS


@EVALUATORS.register("tagging")
def tagging(task: Any, segments: dict, num_clips: int, variables: Any = None, *,
            model: Any = None) -> dict:
  """Segment outputs of a split -> ``roc_auc``, ``pr_auc``, ``num_tags_scored``,
  ``num_tags_with_positives``, mean segment ``loss``, ``clips``.

  Reads ``scores`` ``[S, T]`` (sigmoid outputs) and ``loss`` ``[S]`` of ``eval_outputs`` and the
  ``tags`` field ``[S, T]`` (``evaluators.common`` describes ``segments``).
  """
  del variables, model
  require(segments, ("scores", "loss", "tags"), "tagging", task)
  scores, counts = clip_means(segments, "scores", num_clips)
  labels = clip_values(segments, "tags", num_clips).astype(np.float32)
  result = metrics.tagging_metrics(scores, labels, valid=counts > 0)
  out = {k: float(v) for k, v in result.items()}
  out["loss"] = segment_mean(segments, "loss")
  out["clips"] = int(num_clips)
  return out
