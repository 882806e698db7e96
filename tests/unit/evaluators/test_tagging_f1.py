"""The ``tagging_f1`` evaluator (paper 6, DCASE 2017 Task 4): clip score = mean of the segments'
sigmoid outputs, ``score > threshold``, samples-averaged F1 / precision / recall as
``sklearn.metrics.f1_score(average="samples")`` on the clips, padding and empty clips ignored."""

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from musicrep_jax.evaluators import tagging as tagging_evals
from musicrep_jax.tasks.tagging import TaggingTask


@dataclasses.dataclass(frozen=True)
class ThresholdTask(TaggingTask):
  """A tagging task carrying the ``f1_threshold`` setting the evaluator reads."""

  f1_threshold: float = 0.5


def segments_of(rng, num_clips=30, per_clip=4, num_tags=6, pad=3):
  """Segments of ``num_clips - 1`` clips (the last clip has no segment) plus padding rows."""
  clip_tags = (rng.random((num_clips, num_tags)) < 0.25).astype(np.float32)
  clip_tags[:3] = 0  # Clips without any event.
  clip_index = np.repeat(np.arange(num_clips - 1), per_clip)
  # Quantised scores with a clip mean exactly on 0.1 for the first clip's first tag.
  scores = np.round(rng.random((len(clip_index), num_tags)) * 0.25 + 0.1 * clip_tags[clip_index],
                    2).astype(np.float32)
  scores[:per_clip, 0] = 0.1
  segments = {
      "scores": np.r_[scores, np.full((pad, num_tags), np.nan, np.float32)],
      "tags": np.r_[clip_tags[clip_index], np.ones((pad, num_tags), np.float32)],
      "clip_index": np.r_[clip_index, np.full(pad, num_clips - 1)],
      "segment_valid": np.r_[np.ones(len(clip_index), bool), np.zeros(pad, bool)],
  }
  clip_scores = scores.reshape(num_clips - 1, per_clip, num_tags).mean(1)
  return segments, clip_tags[:-1], clip_scores


@pytest.mark.parametrize("task, threshold", [(TaggingTask(), tagging_evals.F1_THRESHOLD),
                                             (ThresholdTask(f1_threshold=0.2), 0.2)])
def test_samples_f1_of_clip_means_matches_sklearn(task, threshold):
  segments, labels, clip_scores = segments_of(np.random.default_rng(1))
  got = tagging_evals.tagging_f1(task, segments, len(labels) + 1)
  pred = clip_scores > np.float32(threshold)  # Strictly above, as the journal code.
  p, r, f, _ = precision_recall_fscore_support(labels, pred, average="samples", zero_division=0)
  assert got == pytest.approx(dict(f1=f, precision=p, recall=r, clips=len(labels) + 1), abs=1e-6)
  assert 0.0 < got["f1"] < 1.0
