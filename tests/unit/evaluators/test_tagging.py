"""The tagging evaluator (papers 1-3, 5): clip score = mean of the segments' sigmoid outputs,
macro ROC-AUC / PR-AUC over clips against scikit-learn, padding rows ignored."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.tagging import tagging
from musicrep_jax.tasks.tagging import TaggingTask


def test_tagging_metrics_of_clip_averaged_scores_match_sklearn():
  rng = np.random.default_rng(0)
  num_clips, per_clip, num_tags, pad = 40, 3, 5, 5
  clip_tags = (rng.random((num_clips, num_tags)) < 0.3).astype(np.float32)
  clip_tags[:, 4] = 0  # A tag without positives takes no part.
  clip_index = np.repeat(np.arange(num_clips), per_clip)
  scores = rng.random((len(clip_index), num_tags)).astype(np.float32)
  loss = rng.uniform(size=len(clip_index))
  segments = {
      "scores": np.r_[scores, np.full((pad, num_tags), np.nan, np.float32)],
      "loss": np.r_[loss, np.full(pad, 1e9)],
      "tags": np.r_[clip_tags[clip_index], np.ones((pad, num_tags), np.float32)],
      "clip_index": np.r_[clip_index, np.zeros(pad, int)],
      "segment_valid": np.r_[np.ones(len(clip_index), bool), np.zeros(pad, bool)],
  }
  got = tagging(TaggingTask(), segments, num_clips)
  clip_scores = scores.reshape(num_clips, per_clip, num_tags).mean(1)
  assert got["roc_auc"] == pytest.approx(np.mean(
      [roc_auc_score(clip_tags[:, t], clip_scores[:, t]) for t in range(4)]), abs=1e-6)
  assert got["pr_auc"] == pytest.approx(np.mean(
      [average_precision_score(clip_tags[:, t], clip_scores[:, t]) for t in range(4)]), abs=1e-6)
  assert got["num_tags_scored"] == 4 and got["clips"] == num_clips
  assert got["loss"] == pytest.approx(loss.mean())
  assert list(got) == ["roc_auc", "pr_auc", "num_tags_scored", "num_tags_with_positives", "loss",
                       "clips"]
  with pytest.raises(UserError, match="'tagging' needs the per-segment scores"):
    tagging(TaggingTask(), {k: v for k, v in segments.items() if k != "scores"}, num_clips)
