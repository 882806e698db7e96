"""Tests of musicrep_jax.data.pipeline: Grain training stream, eval segments, global arrays."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from musicrep_jax.data import pipeline as ip
from musicrep_jax.errors import UserError

CROP = 64
NUM_TAGS = 5


def _records(num_clips=10, seed=0, lengths=None):
  """Clips of random int16 noise (so any window is unique); clip 0 is shorter than CROP."""
  rng = np.random.default_rng(seed)
  if lengths is None:
    lengths = [CROP - 20] + [int(n) for n in rng.integers(CROP, 4 * CROP, num_clips - 1)]
  return [{
      "audio": rng.integers(-32768, 32768, n, dtype=np.int16),
      "tags": rng.integers(0, 2, NUM_TAGS, dtype=np.uint8),
      "clip_id": np.int64(1000 + i),
      "track": np.int64(i // 2),
      "album": np.int64(-1),
      "artist": np.int64(i % 3),
      "path": f"clip{i}.wav".encode(),
  } for i, n in enumerate(lengths)]


def _train(source, **kwargs):
  args = dict(crop_length=CROP, global_batch_size=8, seed=0, process_index=0, process_count=1)
  args.update(kwargs)
  return ip.train_iterator(source, **args)


def _take(it, n):
  return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def _global_stream(source, process_count, steps, global_batch_size=8, seed=0, key="clip_id"):
  """Rebuilds the global stream from process_count simulated processes -> [steps * G, ...]."""
  local = global_batch_size // process_count
  per_process = [
      _take(_train(source, global_batch_size=global_batch_size, seed=seed, process_index=p,
                   process_count=process_count), steps) for p in range(process_count)]
  stream = [None] * (steps * global_batch_size)
  for p, batches in enumerate(per_process):
    for s, batch in enumerate(batches):
      for k in range(local):
        stream[s * global_batch_size + p * local + k] = batch[key][k]
  return np.stack(stream)


# ----------------------------------------------------------------------------------- training


def test_exactly_once_per_epoch_across_processes():
  records = _records(10)
  ids = sorted(int(r["clip_id"]) for r in records)
  # 3 global steps of 8 = 24 elements: epochs 0 and 1 fully (batch 2 spans the boundary).
  stream = _global_stream(ip.InMemorySource(records), process_count=4, steps=3)
  epoch0, epoch1 = stream[:10], stream[10:20]
  assert sorted(epoch0.tolist()) == ids
  assert sorted(epoch1.tolist()) == ids
  assert epoch0.tolist() != epoch1.tolist()  # Grain reshuffles each epoch.


def test_global_stream_independent_of_process_count():
  source = ip.InMemorySource(_records(10))
  for key in ("clip_id", "audio"):
    one = _global_stream(source, process_count=1, steps=3, key=key)
    four = _global_stream(source, process_count=4, steps=3, key=key)
    np.testing.assert_array_equal(one, four)


def test_shapes_dtypes_and_fields():
  records = _records(10)
  batch = next(_train(ip.InMemorySource(records), fields=("tags", "track", "path", "clip_id")))
  assert set(batch) == {"audio", "clip_id", "tags", "track", "path"}
  assert batch["audio"].shape == (8, CROP, 1) and batch["audio"].dtype == np.float32
  assert batch["clip_id"].shape == (8,) and batch["clip_id"].dtype == np.int64
  assert batch["tags"].shape == (8, NUM_TAGS) and batch["tags"].dtype == np.float32
  assert batch["track"].dtype == np.int64
  assert batch["path"].dtype.kind == "S"
  by_id = {int(r["clip_id"]): r for r in records}
  for i, clip_id in enumerate(batch["clip_id"]):
    np.testing.assert_array_equal(batch["tags"][i], by_id[int(clip_id)]["tags"])
    assert batch["track"][i] == by_id[int(clip_id)]["track"]
    assert batch["path"][i] == by_id[int(clip_id)]["path"]
  assert np.abs(batch["audio"]).max() <= 1.0


def test_crops_are_windows_of_the_clip():
  records = _records(10)
  by_id = {int(r["clip_id"]): r["audio"] for r in records}
  starts = []
  for batch in _take(_train(ip.InMemorySource(records)), 5):
    for audio, clip_id in zip(batch["audio"][..., 0], batch["clip_id"]):
      pcm = np.round(audio * 32768.0).astype(np.int16)
      clip = by_id[int(clip_id)]
      if clip.shape[0] < CROP:  # Zero-padded at the end.
        np.testing.assert_array_equal(pcm[:clip.shape[0]], clip)
        assert not pcm[clip.shape[0]:].any()
        continue
      windows = np.lib.stride_tricks.sliding_window_view(clip, CROP)
      (found,) = np.nonzero((windows == pcm).all(axis=1))
      assert found.size == 1
      starts.append(int(found[0]))
  assert len(set(starts)) > 10  # Random starts, not always the same window.


def test_counter_based_draws_are_uniform_and_keyed():
  u = ip.uniform_from_counter(7, np.arange(70_000))
  assert u.min() >= 0.0 and u.max() < 1.0
  counts = np.bincount(np.floor(u * 7).astype(int), minlength=7)
  np.testing.assert_allclose(counts / 10_000, 1.0, atol=0.04)  # 7 crop positions, each ~1/7
  assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02  # consecutive counters unrelated
  np.testing.assert_array_equal(u[123:456], ip.uniform_from_counter(7, np.arange(123, 456)))
  assert np.abs(ip.uniform_from_counter(8, np.arange(100)) - u[:100]).min() > 0


def test_cached_split_gives_the_same_batches_and_respects_its_limit(tiny_data_dir):
  from musicrep_jax.data.shards import open_shards

  source = open_shards(tiny_data_dir).source("train")
  cached = ip.load_in_memory(source, max_megabytes=100, progress=False)
  assert len(cached) == len(source) and cached.split == "train"
  _assert_batches_equal(_take(_train(source, fields=("tags", "artist")), 3),
                        _take(_train(cached, fields=("tags", "artist")), 3))
  with pytest.raises(UserError, match=r"cache_max_mb=0.01 MB \(passed it at record 0 of"):
    ip.load_in_memory(source, max_megabytes=0.01, progress=False)


def test_deterministic_for_seed_and_seeds_differ():
  source = ip.InMemorySource(_records(10))
  a = _take(_train(source, seed=3), 4)
  _assert_batches_equal(a, _take(_train(source, seed=3), 4))
  b = _take(_train(source, seed=4), 4)
  assert not all(np.array_equal(x["clip_id"], y["clip_id"]) for x, y in zip(a, b))
  assert not any(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, b))


def test_errors():
  source = ip.InMemorySource(_records(4))
  with pytest.raises(UserError, match="multiple"):
    _train(source, global_batch_size=6, process_index=0, process_count=4)
  with pytest.raises(UserError, match="lack fields"):
    _train(source, fields=("genre",))
  with pytest.raises(UserError, match="empty"):
    _train(ip.InMemorySource([]))


def test_resume_from_state_and_orbax(tmp_path):
  import grain
  import orbax.checkpoint as ocp

  source = ip.InMemorySource(_records(10))
  reference = _take(_train(source), 7)
  it = _train(source)
  _take(it, 3)
  state = json.loads(json.dumps(it.get_state()))  # JSON-serialisable, as Grain's handler needs.
  fresh = _train(source)
  fresh.set_state(state)
  _assert_batches_equal(_take(fresh, 4), reference[3:])
  _assert_batches_equal(_take(_train(source, start_step=3), 4), reference[3:])

  manager = ocp.CheckpointManager(tmp_path, item_names=("data",))
  manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
  manager.wait_until_finished()
  restored = _train(source)
  manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
  _assert_batches_equal(_take(restored, 4), reference[3:])


# ---------------------------------------------------------------------------------- evaluation


def test_segment_starts():
  np.testing.assert_array_equal(ip.segment_starts(1000, 100, 4, "start"), [0, 100, 200, 300])
  np.testing.assert_array_equal(ip.segment_starts(400, 100, 4, "start"), [0, 100, 200, 300])
  # Too short for back-to-back segments: evenly spaced instead.
  np.testing.assert_array_equal(ip.segment_starts(350, 100, 4, "start"), [0, 83, 167, 250])
  np.testing.assert_array_equal(ip.segment_starts(1000, 100, 4, "even"), [0, 300, 600, 900])
  np.testing.assert_array_equal(ip.segment_starts(1000, 100, 1, "even"), [0])
  np.testing.assert_array_equal(ip.segment_starts(60, 100, 3, "even"), [0, 0, 0])
  with pytest.raises(UserError):
    ip.segment_starts(1000, 100, 4, "middle")


@pytest.mark.parametrize("placement", ["even", "start"])
def test_eval_batches_cover_every_segment_once(placement):
  records = _records(10, lengths=[40, 64, 100, 192, 200, 300, 64 * 3, 500, 70, 1000])
  source = ip.InMemorySource(records)
  segments, length, process_count, global_batch = 3, CROP, 3, 6
  num_batches = ip.num_eval_batches(10, segments_per_clip=segments,
                                    global_batch_size=global_batch, process_count=process_count)
  assert num_batches == 6  # ceil(ceil(10 / 3) * 3 / 2)
  seen = {}
  for p in range(process_count):
    batches = list(ip.eval_batches(
        source, segment_length=length, segments_per_clip=segments, global_batch_size=global_batch,
        fields=("tags", "artist"), placement=placement, process_index=p,
        process_count=process_count))
    assert len(batches) == num_batches
    rows = []
    for batch in batches:
      assert batch["audio"].shape == (2, length, 1) and batch["audio"].dtype == np.float32
      assert batch["segment_valid"].dtype == bool and batch["tags"].dtype == np.float32
      for key in ("clip_id", "clip_index", "segment_index", "artist"):
        assert batch[key].dtype == np.int64, key
      for i in range(2):
        row = {k: v[i] for k, v in batch.items()}
        if not row["segment_valid"]:
          assert all(not np.any(v) for v in row.values())
          continue
        rows.append(row)
    # Process p: clips p, p + P, ... in order, each clip's segments in order.
    order = [(int(r["clip_index"]), int(r["segment_index"])) for r in rows]
    assert order == [(c, s) for c in range(p, 10, process_count) for s in range(segments)]
    for row in rows:
      seen[(int(row["clip_index"]), int(row["segment_index"]))] = row
  assert len(seen) == 10 * segments
  for (clip, segment), row in seen.items():
    record = records[clip]
    start = ip.segment_starts(record["audio"].shape[0], length, segments, placement)[segment]
    expected = ip.window(record["audio"], int(start), length) / np.float32(32768)
    np.testing.assert_array_equal(row["audio"][:, 0], expected)
    assert row["clip_id"] == record["clip_id"] and row["artist"] == record["artist"]
    np.testing.assert_array_equal(row["tags"], record["tags"])


def test_eval_fewer_clips_than_processes():
  source = ip.InMemorySource(_records(2))
  counts = [len(list(ip.eval_batches(source, segment_length=CROP, segments_per_clip=2,
                                     global_batch_size=4, process_index=p, process_count=4)))
            for p in range(4)]
  assert counts == [2, 2, 2, 2]
  last = list(ip.eval_batches(source, segment_length=CROP, segments_per_clip=2,
                              global_batch_size=4, process_index=3, process_count=4))
  assert not any(b["segment_valid"].any() for b in last)
  assert last[0]["tags"].shape == (1, NUM_TAGS)


# ------------------------------------------------------------------------------- global arrays

_GLOBAL_BATCH_CHECK = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from musicrep_jax.data import pipeline as ip
    from musicrep_jax.errors import UserError

    assert jax.device_count() == 8
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    local = {
        "audio": np.arange(8 * 16, dtype=np.float32).reshape(8, 16, 1),
        "clip_id": np.arange(8, dtype=np.int64),
        "tags": np.ones([8, 5], np.float32),
        "segment_valid": np.ones([8], bool),
    }
    out = ip.to_global_batch(local, sharding)
    for name, value in out.items():
      assert isinstance(value, jax.Array)
      assert value.shape == local[name].shape, name
      assert value.sharding.is_equivalent_to(sharding, value.ndim), name
      assert len(value.addressable_shards) == 8
      for shard in value.addressable_shards:
        assert shard.data.shape == (1,) + local[name].shape[1:], name
      np.testing.assert_array_equal(np.asarray(value), local[name])
    try:
      ip.to_global_batch({"path": np.array([b"a"] * 8)}, sharding)
      raise AssertionError("bytes leaf accepted")
    except UserError:
      pass
    print("OK")
""")


def test_to_global_batch_on_eight_cpu_devices():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
  result = subprocess.run([sys.executable, "-c", _GLOBAL_BATCH_CHECK], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
