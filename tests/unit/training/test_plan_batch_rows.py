"""``plan.train_batch_rows`` reads one row per process, not a global batch (issue 15).

A plan's abstract training batch is one row of the task's own iterator stacked ``batch_size``
times. Reading a whole ``config.batch_size`` batch on the planning host, with the iterator's
read-ahead, is what stopped the DCUE and zero-shot plans at 4,096 (23 GB a DCUE batch,
docs/scaling.md); the row's shapes and dtypes do not depend on the batch size, which these tests
check against the old formulation (the first row of a full batch) on the embedded corpus."""

import jax
import numpy as np

from musicrep_jax import config_loading
from musicrep_jax.training import plan, trainer

SMALL_CORPUS = ["--config.data.synthetic.num_clips=60", "--config.data.synthetic.clip_seconds=1.0",
                "--config.data.sample_rate=8000"]


def _run(name: str, overrides: list) -> trainer.Run:
  config = config_loading.load_config(name, SMALL_CORPUS + overrides)
  shards = plan.plan_shards(config, name)
  config = plan.with_standin_word_vectors(config, shards)
  return trainer.build_run(config, shards, devices=tuple(jax.devices()[:1]))


def _full_batch_row(run: trainer.Run) -> dict:
  """The old formulation: the first row of a ``config.batch_size`` batch."""
  from musicrep_jax.data import pipeline

  c = run.config
  iterator = run.task.train_iterator(
      trainer.train_source(c, run.shards), crop_length=run.input_length,
      global_batch_size=c.batch_size, seed=c.seed, num_workers=0,
      segments=pipeline.TrainSegments.from_data_config(c.data))
  return {k: np.asarray(v)[0] for k, v in next(iterator).items()}


def _spy_batch_sizes(monkeypatch, run: trainer.Run) -> list:
  """The ``global_batch_size`` of every ``train_iterator`` call of ``run.task`` (the real method
  runs)."""
  asked, original = [], type(run.task).train_iterator

  def recording(self, *args, **kwargs):
    asked.append(kwargs["global_batch_size"])
    return original(self, *args, **kwargs)

  monkeypatch.setattr(type(run.task), "train_iterator", recording)
  return asked


def _same_layout(a: dict, b: dict) -> None:
  assert a.keys() == b.keys()
  for key in a:
    assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype, key


def test_dcue_and_zero_shot_rows_come_from_one_row_batches_with_the_full_batch_layout(
    monkeypatch):
  for name, batch in (("dcue:runlocal", 48), ("zero_shot:runlocal", 40)):
    run = _run(name, [f"--config.batch_size={batch}"])
    old = _full_batch_row(run)
    asked = _spy_batch_sizes(monkeypatch, run)
    rows = plan.train_batch_rows(run)
    assert asked == [jax.process_count()], name
    _same_layout(rows, old)
    monkeypatch.undo()
    if name.startswith("dcue"):  # The positive and its negatives, one crop each.
      assert rows["audio"].shape == (1 + run.config.task.kwargs.negatives, run.input_length, 1)


def test_a_p_by_k_task_whose_batch_size_is_fixed_gets_its_own_batch(monkeypatch):
  run = _run("siamese_artist_dcnn", [])
  old = _full_batch_row(run)
  asked = _spy_batch_sizes(monkeypatch, run)
  rows = plan.train_batch_rows(run)
  assert asked == [jax.process_count(), run.config.batch_size]  # one row refused: P x K
  _same_layout(rows, old)
