"""Segment-to-clip aggregation (written once in evaluators/common.py) against naive loops, and
running several evaluators from config.evals."""

import types

import numpy as np
import pytest

from musicrep_jax.errors import UserError
from musicrep_jax.evaluators import common
from musicrep_jax.registry import EVALUATORS


def _segments(seed=0, num_clips=6, pad=3):
  """Segments of clips 0..num_clips-2 (the last clip has none), shuffled, plus padding rows
  whose values are garbage."""
  rng = np.random.default_rng(seed)
  clip_index = np.repeat(np.arange(num_clips - 1), rng.integers(1, 4, num_clips - 1))
  order = rng.permutation(len(clip_index))
  clip_index = clip_index[order]
  n = len(clip_index)
  labels = rng.integers(0, 9, num_clips)
  return {
      "scores": np.r_[rng.normal(size=(n, 2, 3)), np.full((pad, 2, 3), np.nan)].astype(np.float32),
      "loss": np.r_[rng.uniform(size=n), np.full(pad, 1e9)],
      "label": np.r_[labels[clip_index], np.full(pad, 77)],
      "clip_index": np.r_[clip_index, np.zeros(pad, int)],
      "segment_valid": np.r_[np.ones(n, bool), np.zeros(pad, bool)],
  }, labels


def test_clip_means_values_and_presence_match_a_loop():
  segments, labels = _segments()
  num_clips = 6
  means, counts = common.clip_means(segments, "scores", num_clips)
  values = common.clip_values(segments, "label", num_clips, fill=-1)
  present = common.present_clips(segments, num_clips)
  valid = segments["segment_valid"]
  for c in range(num_clips):
    rows = valid & (segments["clip_index"] == c)
    assert counts[c] == rows.sum() and present[c] == rows.any()
    if rows.any():
      np.testing.assert_allclose(means[c], segments["scores"][rows].mean(0), rtol=1e-6)
      assert values[c] == labels[c]
    else:
      assert np.isnan(means[c]).all() and values[c] == -1
  assert means.shape == (num_clips, 2, 3) and means.dtype == np.float32
  assert common.segment_mean(segments, "loss") == pytest.approx(segments["loss"][valid].mean())
  np.testing.assert_array_equal(common.valid_segments(segments, "label"), segments["label"][valid])
  aligned, _ = common.clip_means(segments, segments["scores"][:, 0], num_clips)
  np.testing.assert_allclose(aligned, means[:, 0])


@pytest.fixture
def two_evaluators():
  """Two throw-away evaluators: ``a`` and ``b`` report ``clips`` alike and ``x`` differently."""
  names = ("_test_a", "_test_b")
  for name, x in zip(names, (1.0, 2.0)):
    if name not in EVALUATORS.names():
      EVALUATORS.register(name)(
          lambda task, segments, num_clips, variables=None, *, model=None, x=x, name=name:
          {"clips": num_clips, "x": x, name: float("nan")})
  return names


def test_run_evaluators_merges_agreeing_keys_and_refuses_conflicts(two_evaluators):
  a, b = two_evaluators
  task = types.SimpleNamespace(default_evals=(a,))
  assert common.evaluator_names((), task) == (a,)
  assert common.evaluator_names([a, b], task) == (a, b)
  assert common.evaluator_names(a, task) == (a,)
  out = common.run_evaluators((a,), task, {}, 3)
  assert out["clips"] == 3 and out["x"] == 1.0 and np.isnan(out[a])
  with pytest.raises(UserError, match=r"'_test_a' and '_test_b' both report 'x' \(1.0 and 2.0\)"):
    common.run_evaluators((a, b), task, {}, 3)
  with pytest.raises(UserError, match="twice"):
    common.evaluator_names((a, a), task)
  with pytest.raises(UserError, match="Unknown evaluator 'nope'"):
    common.evaluator_names(("nope",), task)
  with pytest.raises(UserError, match="names no default evaluator"):
    common.evaluator_names((), types.SimpleNamespace(default_evals=()))


def test_every_task_names_registered_default_evaluators():
  import musicrep_jax.evaluators  # noqa: F401
  import musicrep_jax.tasks  # noqa: F401
  from musicrep_jax.registry import TASKS

  for name in TASKS.names():
    defaults = TASKS.get(name).default_evals
    assert defaults, name
    assert all(e in EVALUATORS.names() for e in defaults), (name, defaults)


def test_config_evals_reach_the_run(tiny_data_dir):
  """``config.evals`` picks the run's evaluators (the task's defaults when empty); an unknown
  name stops ``build_run`` before any model is built."""
  from musicrep_jax import config_loading
  from musicrep_jax.data.shards import open_shards
  from musicrep_jax.training import trainer
  from tests.helpers import TINY_CONFIG

  config = config_loading.load_config_file(TINY_CONFIG)
  shards = open_shards(tiny_data_dir)
  assert trainer.build_run(config, shards).evals == ("tagging",)
  config.evals = ("nope",)
  with pytest.raises(UserError, match="Unknown evaluator 'nope'"):
    trainer.build_run(config, shards)
