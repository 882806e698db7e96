"""The zero-shot evaluator (papers 10, 11): seen / unseen retrieval and annotation AUCs of the
clip-averaged scores, with the seen / unseen split of the bound task."""


import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from musicrep_jax.evaluators import zero_shot
from musicrep_jax.tasks.base import UnboundTaskError
from musicrep_jax.tasks.zero_shot import SideInformation, ZeroShotTask


def test_evaluator_uses_the_bound_split_and_clip_averaged_scores():
  rng = np.random.default_rng(0)
  num_clips, num_tags = 30, 6
  seen = np.array([1, 1, 1, 0, 0, 0], bool)
  unseen = np.array([0, 0, 0, 1, 1, 0], bool)  # Tag 5 has no side information.
  labels = rng.random((num_clips, num_tags)) < 0.4
  clip_index = np.repeat(np.arange(num_clips), 2)
  scores = rng.normal(size=(len(clip_index), num_tags)).astype(np.float32)
  segments = {"scores": scores, "tags": labels[clip_index].astype(np.float32),
              "clip_index": clip_index, "segment_valid": np.ones(len(clip_index), bool)}
  task = ZeroShotTask(bound=SideInformation(np.zeros((num_tags, 2), np.float32), seen, unseen))
  got = zero_shot.zero_shot(task, segments, num_clips)
  clip_scores = scores.reshape(num_clips, 2, num_tags).mean(1)
  bc = zero_shot.instance_sets(labels, seen, unseen)
  bc = bc["B"] | bc["C"]
  expected = np.mean([roc_auc_score(labels[bc, t], clip_scores[bc, t]) for t in (3, 4)])
  assert got["auc_l_unseen"] == pytest.approx(expected, abs=1e-6)
  assert got["auc_l_seen"] == pytest.approx(np.mean(
      [roc_auc_score(labels[:, t], clip_scores[:, t]) for t in (0, 1, 2)]), abs=1e-6)
  assert (got["clips"], got["clips_bc"], got["seen_tags"], got["unseen_tags"]) == (
      num_clips, int(bc.sum()), 3, 2)
  with pytest.raises(UnboundTaskError):
    zero_shot.zero_shot(ZeroShotTask(), segments, num_clips)
