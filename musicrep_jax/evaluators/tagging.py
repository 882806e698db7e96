"""Tagging evaluators: clip-level macro ROC-AUC / PR-AUC (``tagging``; papers 1, 2, 3, 5;
papers.md 1.4, 2.5) and thresholded F1 / precision / recall (``tagging_f1``; paper 6's DCASE 2017
Task 4 protocol, papers.md 7.2).

Clip score = mean of the segments' sigmoid outputs (never max); ROC-AUC averaged over the tags
with a positive and a negative clip, PR-AUC over those with a positive (``ops.metrics``), and
the mean segment binary cross-entropy (model selection uses it, papers.md 1.4). ``tagging_f1``
thresholds the same clip scores at ``task.f1_threshold`` (default ``F1_THRESHOLD`` = 0.1, the
journal code's DCASE threshold; a class is predicted where its score is strictly above it, as
``y_prob > threshold`` in ``tae-jun/sampleaudio/eval.py``) and averages over clips
(scikit-learn's ``f1_score(average="samples")``, as that code does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrep_jax.evaluators.common import clip_means, clip_values, require, segment_mean
from musicrep_jax.ops import metrics
from musicrep_jax.registry import EVALUATORS

# Decision threshold of paper 6's DCASE 2017 Task 4 F1 (tae-jun/sampleaudio, DCS_CONFIG).
F1_THRESHOLD = 0.1


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


@EVALUATORS.register("tagging_f1")
def tagging_f1(task: Any, segments: dict, num_clips: int, variables: Any = None, *,
               model: Any = None) -> dict:
  """Segment outputs of a split -> samples-averaged ``f1``, ``precision``, ``recall`` of the
  clips' mean sigmoid outputs thresholded (``score > threshold``) at ``task.f1_threshold``
  (``F1_THRESHOLD`` when the task has no such field), and ``clips``.

  Reads ``scores`` ``[S, T]`` of ``eval_outputs`` and the ``tags`` field ``[S, T]``. Each clip
  scores ``2 TP / (2 TP + FP + FN)`` over its tags (0 for a clip with no tag and no prediction,
  as scikit-learn's default); clips without a valid segment are left out
  (``ops.metrics.precision_recall_f1``).
  """
  del variables, model
  require(segments, ("scores", "tags"), "tagging_f1", task)
  scores, counts = clip_means(segments, "scores", num_clips)
  labels = clip_values(segments, "tags", num_clips)
  threshold = float(getattr(task, "f1_threshold", F1_THRESHOLD))
  result = metrics.precision_recall_f1(labels, scores, threshold, "samples", valid=counts > 0,
                                       inclusive=False)
  out = {k: float(v) for k, v in result.items()}
  out["clips"] = int(num_clips)
  return out
