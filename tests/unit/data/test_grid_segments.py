"""The segment grid of the training stream (``config.data.train_segments = "grid"``, papers 1, 5,
6: every clip cut into fixed windows, each (clip, segment) once per epoch) in
musicrep_jax.data.pipeline; random crops are tests/unit/data/test_pipeline.py."""

import json
import pickle

import ml_collections
import numpy as np
import pytest

from musicrep_jax.data import pipeline as ip
from musicrep_jax.errors import UserError

SEG = 50  # Window (= model input) length.
S = 3  # Grid segments per clip.
GRID = ip.TrainSegments("grid", S, "start")
# Long clips (>= S * SEG: back-to-back windows from sample 0, the tail unused), one clip between
# SEG and S * SEG (evenly spaced overlapping windows) and one shorter than SEG (zero-padded).
LENGTHS = [S * SEG, S * SEG + 37, 4 * SEG, 120, 30, S * SEG + 1, 5 * SEG]


def _records(lengths=LENGTHS, seed=0):
  rng = np.random.default_rng(seed)
  return [{"audio": rng.integers(-32768, 32768, n, dtype=np.int16),
           "tags": rng.integers(0, 2, 4, dtype=np.uint8), "clip_id": np.int64(100 + i)}
          for i, n in enumerate(lengths)]


def _expected_windows(n):
  """Start samples of the grid of an n-sample clip, written out (not segment_starts)."""
  if n >= S * SEG:
    starts = [k * SEG for k in range(S)]
  else:  # Fallback of segment_starts: evenly spaced, first at 0, last ending the clip.
    last = max(n - SEG, 0)
    starts = [int(round(k * last / (S - 1))) for k in range(S)]
  return starts


def _train(source, segments=GRID, **kwargs):
  args = dict(crop_length=SEG, global_batch_size=6, seed=0, process_index=0, process_count=1,
              segments=segments)
  args.update(kwargs)
  return ip.train_iterator(source, **args)


def _take(it, n):
  return [next(it) for _ in range(n)]


def _global_rows(source, process_count, steps, **kwargs):
  """The global stream rebuilt from ``process_count`` simulated processes: ``(clip_ids [E],
  pcm int16 [E, SEG])`` for ``E = steps * 6`` elements, rows in global order."""
  ids, pcm = [None] * (steps * 6), [None] * (steps * 6)
  local = 6 // process_count
  for p in range(process_count):
    batches = _take(_train(source, process_index=p, process_count=process_count, **kwargs), steps)
    for s, batch in enumerate(batches):
      for k in range(local):
        row = s * 6 + p * local + k
        ids[row] = int(batch["clip_id"][k])
        pcm[row] = np.round(batch["audio"][k, :, 0] * 32768.0).astype(np.int16)
  return np.array(ids), np.stack(pcm)


def _segment_of(clip, pcm):
  """Index of the grid segment of ``clip`` whose window (zero-padded) equals ``pcm``: the
  first match (a clip shorter than SEG has S identical windows)."""
  for k, start in enumerate(_expected_windows(clip.shape[0])):
    piece = clip[start:start + SEG]
    expected = np.concatenate([piece, np.zeros([SEG - piece.shape[0]], np.int16)])
    if np.array_equal(expected, pcm):
      return k
  raise AssertionError(f"row is no grid window of its clip (length {clip.shape[0]})")


@pytest.mark.parametrize("process_count", [1, 2])
def test_each_clip_segment_exactly_once_per_epoch(process_count):
  records = _records()
  by_id = {int(r["clip_id"]): r["audio"] for r in records}
  epoch = len(records) * S  # 21 units; 7 global steps of 6 = 2 epochs (steps 3 spans both).
  ids, pcm = _global_rows(ip.InMemorySource(records), process_count, steps=7)
  units = [(int(i), _segment_of(by_id[int(i)], p)) for i, p in zip(ids, pcm)]
  expected = sorted((int(r["clip_id"]), k) for r in records for k in range(S))
  expected = [(c, 0 if by_id[c].shape[0] < SEG else k) for c, k in expected]  # Identical windows.
  for e in range(2):
    assert sorted(units[e * epoch:(e + 1) * epoch]) == sorted(expected), e
  assert units[:epoch] != units[epoch:2 * epoch]  # A new permutation each epoch.


def test_grid_stream_independent_of_process_count_and_of_pickling():
  source = ip.InMemorySource(_records())
  one = _global_rows(source, 1, steps=4)
  for got in (_global_rows(source, 2, steps=4), _global_rows(source, 3, steps=4)):
    np.testing.assert_array_equal(one[0], got[0])
    np.testing.assert_array_equal(one[1], got[1])
  # Grain worker processes receive a pickled TrainBatches (spawn): the same batches.
  batches = ip.TrainBatches(source, crop_length=SEG, global_batch_size=6, seed=0, fields=("tags",),
                            process_index=0, process_count=1, segments=GRID)
  batches(5)  # Fill the permutation cache, which is not pickled.
  copy = pickle.loads(pickle.dumps(batches))
  for step in (0, 5):
    for name, value in batches(step).items():
      np.testing.assert_array_equal(copy(step)[name], value, err_msg=name)


def test_grid_resumes_from_state_and_from_step():
  source = ip.InMemorySource(_records())
  for p in range(2):
    reference = _take(_train(source, process_index=p, process_count=2), 6)
    it = _train(source, process_index=p, process_count=2)
    _take(it, 2)
    state = json.loads(json.dumps(it.get_state()))
    fresh = _train(source, process_index=p, process_count=2)
    fresh.set_state(state)
    for resumed in (_take(fresh, 4), _take(_train(source, process_index=p, process_count=2,
                                                   start_step=2), 4)):
      for a, b in zip(resumed, reference[2:]):
        assert a.keys() == b.keys() == {"audio", "clip_id", "tags"}
        for k in a:
          np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_grid_batches_carry_the_clip_fields_and_seed_changes_the_order():
  records = _records()
  by_id = {int(r["clip_id"]): r for r in records}
  batch = next(_train(ip.InMemorySource(records)))
  assert batch["audio"].shape == (6, SEG, 1) and batch["audio"].dtype == np.float32
  for i, clip_id in enumerate(batch["clip_id"]):
    np.testing.assert_array_equal(batch["tags"][i], by_id[int(clip_id)]["tags"])
  a, _ = _global_rows(ip.InMemorySource(records), 1, steps=4)
  b, _ = _global_rows(ip.InMemorySource(records), 1, steps=4, seed=1)
  assert sorted(a[:21]) == sorted(b[:21]) and a.tolist() != b.tolist()


def test_even_placement_grid_and_random_default():
  records = _records([4 * SEG])
  even = ip.TrainSegments("grid", 4, "even")  # starts 0, 50, 100, 150 of a 200-sample clip
  _, pcm = _global_rows(ip.InMemorySource(records), 1, steps=2, segments=even)
  clip = records[0]["audio"]
  starts = sorted(int(np.flatnonzero((np.lib.stride_tricks.sliding_window_view(clip, SEG)
                                       == row).all(axis=1))[0]) for row in pcm[:4])
  assert starts == [0, 50, 100, 150]
  # Random crops: one unit per clip and epoch whatever segments_per_clip says; the default.
  source = ip.InMemorySource(_records())
  random_ids, random_pcm = _global_rows(source, 1, steps=3, segments=ip.TrainSegments())
  other_ids, other_pcm = _global_rows(source, 1, steps=3,
                                      segments=ip.TrainSegments("random", 5, "even"))
  np.testing.assert_array_equal(random_ids, other_ids)
  np.testing.assert_array_equal(random_pcm, other_pcm)
  assert sorted(random_ids[:7]) == sorted(int(r["clip_id"]) for r in _records())


def test_train_segments_from_config_and_errors():
  data = ml_collections.ConfigDict(dict(train_segments="grid", segments_per_clip=10,
                                        eval_placement="start"))
  assert ip.TrainSegments.from_data_config(data) == ip.TrainSegments("grid", 10, "start")
  assert ip.TrainSegments.from_data_config(data).per_clip == 10
  assert ip.TrainSegments.from_data_config({"segments_per_clip": 10}).per_clip == 1
  with pytest.raises(UserError, match="train_segments='crops' is not one of"):
    ip.TrainSegments("crops")
  with pytest.raises(UserError, match="placement"):
    ip.TrainSegments("grid", 3, "middle")
  with pytest.raises(UserError, match="segments_per_clip must be positive"):
    ip.TrainSegments("grid", 0)


def test_tasks_with_their_own_sampler_refuse_the_grid():
  from musicrep_jax.tasks.dcue import DcueTask

  with pytest.raises(UserError, match="config.data.train_segments=random"):
    DcueTask().train_iterator(ip.InMemorySource(_records()), crop_length=SEG,
                              global_batch_size=6, seed=0, num_workers=0, segments=GRID)


def test_vectorized_grid_starts_match_numpy_linspace():
  rng = np.random.default_rng(0)
  for _ in range(300):
    n, length, count = (int(rng.integers(1, hi)) for hi in (5000, 700, 12))
    last = max(n - length, 0)
    even = np.round(np.linspace(0, last, count)).astype(np.int64)
    start = np.arange(count) * length if n >= count * length else even
    k = rng.permutation(count)
    for placement, expected in (("even", even), ("start", start)):
      np.testing.assert_array_equal(
          ip.grid_starts(np.full(count, n), k, length, count, placement), expected[k])
      np.testing.assert_array_equal(ip.segment_starts(n, length, count, placement), expected)
