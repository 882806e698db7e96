"""Paper 13's tempo dimension in the metric-learning task (label ``"tempo_bpm"``): clips within
``tempo_tolerance`` (5) BPM are positives and the others negatives in the triplet loss, P x K
slots are 5-BPM bins (so a slot's rows are positives of one another), unknown (NaN) tempi are
never sampled, and the label is refused where it cannot work."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.errors import UserError
from musicrep_jax.tasks.metric_learning import TEMPO, MetricLearningTask, label_classes

SHARDS = types.SimpleNamespace(tag_names=("a", "b"), dataset_dir="/nonexistent",
                               tag_groups={"g": [0, 1]}, split_sizes={})


def test_tempo_bins_and_unknown_tempi():
  classes = label_classes(TEMPO, {TEMPO: np.array([100.0, 104.9, 105.0, np.nan, 0.0])}, {}, 5.0)
  assert [c.tolist() for c in classes] == [[20], [20], [21], [], []]


def test_tempo_block_loss_uses_the_bpm_tolerance():
  """The loss equals the hand-computed mean hinge over every (a, p, n) with |a - p| <= 5 BPM
  and |a - n| > 5 BPM; 100 and 104 BPM are positives although in different slots."""
  task = MetricLearningTask(approach="triplet", labels=(TEMPO,), eval_labels=(TEMPO,),
                            classes_per_batch=3, samples_per_class=2, margin=0.3,
                            metric="euclidean").bind(SHARDS)
  bpm = np.array([100.0, 102.0, 104.0, 106.5, 130.0, 131.0], np.float32)
  x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
  loss, stats = jax.jit(task.loss)({"embedding": jnp.asarray(x)}, {TEMPO: jnp.asarray(bpm)})
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  dist = np.linalg.norm(unit[:, None] - unit[None], axis=-1)
  hinges = [max(0.0, 0.3 + dist[a, p] - dist[a, n]) for a in range(6) for p in range(6)
            for n in range(6) if a != p and abs(bpm[a] - bpm[p]) <= 5 and abs(bpm[a] - bpm[n]) > 5]
  assert len(hinges) == 2 * (4 + 4 + 2) + 2 + 2 + 2 * 4  # 20 + 8 + 8: rows 0-3 chain by 5 BPM.
  np.testing.assert_allclose(float(loss), np.mean(hinges), rtol=1e-5)


def test_pk_batches_of_tempo_slots_are_within_the_tolerance():
  rng = np.random.default_rng(0)
  bpm = np.concatenate([rng.uniform(60, 180, 40), [np.nan] * 4]).astype(np.float32)
  source = [{"audio": np.zeros(800, np.int16), "tags": np.array([1, 0], np.uint8),
             "clip_id": np.int64(i), "track": np.int64(i), "album": np.int64(-1),
             "artist": np.int64(-1), TEMPO: bpm[i]} for i in range(len(bpm))]
  task = MetricLearningTask(approach="triplet", labels=(TEMPO, "track"), eval_labels=(TEMPO,),
                            classes_per_batch=4, samples_per_class=3).bind(SHARDS)
  iterator = task.train_iterator(source, crop_length=400, global_batch_size=24, seed=0,
                                 num_workers=0)
  for _ in range(3):
    batch = next(iterator)
    tempo = np.asarray(batch[TEMPO][:12]).reshape(4, 3)  # The tempo block: 4 slots x 3 rows.
    assert np.isfinite(tempo).all()  # NaN tempi are never drawn.
    assert (tempo.max(1) - tempo.min(1) <= 5.0).all(), tempo
    assert len(set(np.asarray(batch["class"][:12]).tolist())) == 4  # Four distinct bins.
    np.testing.assert_array_equal(np.asarray(batch["class"][:12]).reshape(4, 3)[:, 0],
                                  np.floor(tempo[:, 0] / 5.0))


def test_tempo_label_is_refused_where_it_cannot_work():
  with pytest.raises(UserError, match="needs approach='triplet'"):
    MetricLearningTask(approach="classification", labels=("tag:g", TEMPO))
  with pytest.raises(UserError, match="tempo_tolerance=0 must be positive"):
    MetricLearningTask(labels=(TEMPO,), tempo_tolerance=0)
  assert MetricLearningTask(labels=(TEMPO,)).tolerance(TEMPO) == 5.0
  assert MetricLearningTask(labels=(TEMPO,)).tolerance("tag:g") is None
