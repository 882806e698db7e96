"""Paper 10's remaining zero-shot metrics (papers.md 11.6): flat hit@k, P@k, thresholded
precision / recall / F1 on the (B+C)-Y block, and paper 11's annotation accuracy (papers.md 12),
against values worked out by hand on a 4-clip, 4-tag example."""

import numpy as np
import pytest

from musicrep_jax.evaluators import zero_shot
from musicrep_jax.tasks.zero_shot import SideInformation, ZeroShotTask

# Tags 0, 1 seen; 2, 3 unseen. Clips: 0, 1 in B, 2 in C, 3 in A.
LABELS = np.array([[1, 0, 1, 0],
                   [0, 1, 0, 1],
                   [0, 0, 1, 1],
                   [1, 1, 0, 0]], bool)
SCORES = np.array([[.9, .1, .8, .3],
                   [.2, .7, .6, .4],
                   [.1, .1, .2, .5],
                   [.5, .5, .9, .1]], np.float32)
SEEN = np.array([1, 1, 0, 0], bool)
UNSEEN = ~SEEN


def test_hit_and_precision_at_k_on_the_unseen_block():
  got = zero_shot.zero_shot_metrics(SCORES, LABELS, SEEN, UNSEEN, top_k=(1, 2, 5))
  # Annotation (each B+C clip ranks tags 2, 3): clip 0 tops tag 2 (hit), clip 1 tag 2 (miss),
  # clip 2 tag 3 (hit).
  assert got["hit@1_i_unseen"] == pytest.approx(2 / 3)
  assert got["p@1_i_unseen"] == pytest.approx(2 / 3)
  assert got["hit@2_i_unseen"] == pytest.approx(1.0)
  assert got["p@2_i_unseen"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 2) / 3)
  assert got["p@5_i_unseen"] == pytest.approx((1 / 5 + 1 / 5 + 2 / 5) / 3)  # k > 2 tags.
  # Retrieval (tags 2, 3 rank clips 0-2): tag 2 -> 0, 1, 2 (rel 0, 2); tag 3 -> 2, 1, 0 (rel 1, 2).
  assert got["hit@1_l_unseen"] == pytest.approx(1.0)
  assert got["p@1_l_unseen"] == pytest.approx(1.0)
  assert got["p@2_l_unseen"] == pytest.approx((1 / 2 + 2 / 2) / 2)


def test_thresholded_precision_recall_f1():
  got = zero_shot.zero_shot_metrics(SCORES, LABELS, SEEN, UNSEEN, thresholds=(0.5, 0.95))
  # scores >= 0.5 on the block: clip 0 -> tag 2, clip 1 -> tag 2, clip 2 -> tag 3 (0.5 counts).
  # Annotation, per clip: (P, R, F1) = (1, 1, 1), (0, 0, 0), (1, 1/2, 2/3).
  assert got["precision_i_unseen@0.5"] == pytest.approx(2 / 3)
  assert got["recall_i_unseen@0.5"] == pytest.approx(1 / 2)
  assert got["f1_i_unseen@0.5"] == pytest.approx(5 / 9)
  # Retrieval, per tag: tag 2 (1/2, 1/2, 1/2), tag 3 (1, 1/2, 2/3).
  assert got["precision_l_unseen@0.5"] == pytest.approx(3 / 4)
  assert got["recall_l_unseen@0.5"] == pytest.approx(1 / 2)
  assert got["f1_l_unseen@0.5"] == pytest.approx(7 / 12)
  assert got["f1_l_unseen@0.95"] == got["recall_i_unseen@0.95"] == 0.0  # Nothing predicted.


def test_annotation_accuracy_counts_single_label_clips_only():
  # Candidates 2, 3: clips 0 (tag 2) and 1 (tag 3) carry exactly one; clip 0's top is tag 2
  # (right), clip 1's is tag 2 (wrong).
  got = zero_shot.zero_shot_metrics(SCORES, LABELS, SEEN, UNSEEN,
                                    accuracy=np.array([0, 0, 1, 1], bool))
  assert (got["acc_i_all"], got["acc_clips"]) == (0.5, 2)
  one_hot = np.eye(4, dtype=bool)[[2, 0, 3, 1]]  # One label each, over all four tags.
  got = zero_shot.zero_shot_metrics(SCORES, one_hot, SEEN, UNSEEN)
  assert got["acc_i_all"] == pytest.approx(np.mean(SCORES.argmax(1) == [2, 0, 3, 1]))
  assert got["acc_clips"] == 4


def test_the_evaluator_reads_k_thresholds_and_candidates_from_the_task():
  clip_index = np.repeat(np.arange(4), 2)
  segments = {"scores": SCORES[clip_index], "tags": LABELS[clip_index].astype(np.float32),
              "clip_index": clip_index, "segment_valid": np.ones(8, bool)}
  task = ZeroShotTask(top_k=(2,), thresholds=(0.55,), bound=SideInformation(
      np.zeros((4, 2), np.float32), SEEN, UNSEEN, accuracy=np.array([0, 0, 1, 1], bool)))
  got = zero_shot.zero_shot(task, segments, 4)
  assert got["p@2_l_unseen"] == pytest.approx(3 / 4) and "p@1_l_unseen" not in got
  # >= 0.55: clip 0 -> tag 2, clip 1 -> tag 2; clip 2 nothing: F1 per clip 1, 0, 0.
  assert got["f1_i_unseen@0.55"] == pytest.approx(1 / 3)
  assert got["acc_i_all"] == 0.5
