"""The Grain training stream of musicrep_jax.data.pipeline read by worker processes: the same
batches as in-process reading, and a resume from a saved state onto the uninterrupted stream.
(The in-process pipeline: tests/unit/data/test_pipeline.py.)"""

import json

import pytest

from musicrep_jax.data import pipeline as ip
from tests.unit.data.test_pipeline import _assert_batches_equal, _records, _take, _train


@pytest.mark.slow
def test_resume_with_worker_processes():
  source = ip.InMemorySource(_records(10))
  reference = _take(_train(source), 7)
  it = _train(source, num_workers=2, worker_buffer_size=1)
  try:
    _assert_batches_equal(_take(it, 3), reference[:3])  # Workers do not change the stream.
    state = json.loads(json.dumps(it.get_state()))
  finally:
    it.close()
  fresh = _train(source, num_workers=2, worker_buffer_size=1)
  try:
    fresh.set_state(state)
    _assert_batches_equal(_take(fresh, 4), reference[3:])
  finally:
    fresh.close()
