"""P x K metric-learning batches (musicrep_jax/data/pk_batches.py): structure, track positives,
determinism across process counts, resume."""

import itertools

import numpy as np
import pytest

from musicrep_jax.data import pk_batches as mb
from musicrep_jax.errors import UserError
from musicrep_jax.data.pipeline import InMemorySource

CLIP = 4000
CROP = 1000
TAG_GROUPS = {"genre": [0, 1, 2, 3], "instrument": [4, 5, 6]}


def _records(n=60, seed=0):
  """Clips whose sample i holds value (i + 7 * clip) % 30000, so a crop reveals its clip and
  start; 6 artists x 2 albums; one genre tag and 1-2 instrument tags each."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    tags = np.zeros(7, np.uint8)
    tags[rng.integers(0, 4)] = 1
    tags[4 + rng.choice(3, rng.integers(1, 3), replace=False)] = 1
    artist = i % 6
    out.append(dict(audio=((np.arange(CLIP) + 7 * i) % 30000).astype(np.int16),
                    clip_id=np.int64(1000 + i), track=np.int64(i), artist=np.int64(artist),
                    album=np.int64(2 * artist + (i // 6) % 2), tags=tags))
  return out


SOURCE = InMemorySource(_records())
LABELS = ("artist", "tag:genre", "tag:instrument", "track")
P, K = 3, 3
B = len(LABELS) * P * K
KWARGS = dict(labels=LABELS, classes_per_batch=P, samples_per_class=K, crop_length=CROP,
              global_batch_size=B, seed=5, tag_groups=TAG_GROUPS,
              fields=("tags", "artist", "track"))


def _starts(batch):
  """Crop start of every row (the pcm value of its first sample minus the clip offset)."""
  first = np.round(batch["audio"][:, 0, 0] * 32768).astype(np.int64)
  clip = batch["clip_id"] - 1000
  return (first - 7 * clip) % 30000


def _batches(n, **kwargs):
  it = mb.pk_iterator(SOURCE, **dict(KWARGS, process_index=0, process_count=1, **kwargs))
  return [next(it) for _ in range(n)]


def test_blocks_slots_and_positives():
  for batch in _batches(4):
    assert batch["audio"].shape == (B, CROP, 1)
    assert list(batch["condition"]) == [d for d in range(len(LABELS)) for _ in range(P * K)]
    for d, label in enumerate(LABELS):
      block = slice(d * P * K, (d + 1) * P * K)
      classes = batch["class"][block].reshape(P, K)
      assert (classes == classes[:, :1]).all()  # One class per slot.
      assert len(set(classes[:, 0])) == P  # P distinct classes per block.
      if label in ("artist", "track"):
        np.testing.assert_array_equal(batch[label][block], batch["class"][block])
      else:  # Every row carries the tag its slot was drawn for.
        rows = np.arange(block.start, block.stop)
        assert (batch["tags"][rows, batch["class"][block]] == 1).all()
        assert set(batch["class"][block]) <= set(TAG_GROUPS[label.split(":")[1]])
    # Artist slots draw distinct tracks when the artist has enough (10 tracks >= K).
    artist_tracks = batch["track"][:P * K].reshape(P, K)
    assert all(len(set(row)) == K for row in artist_tracks)


def test_track_positives_are_spread_segments_of_one_clip():
  gap = int(np.ceil(0.5 * CROP))
  for batch in _batches(5):
    block = slice(3 * P * K, 4 * P * K)
    clips = batch["clip_id"][block].reshape(P, K)
    assert (clips == clips[:, :1]).all()
    starts = _starts(batch)[block].reshape(P, K)
    for row in starts:
      assert row.min() >= 0 and row.max() <= CLIP - CROP
      assert min(abs(a - b) for a, b in itertools.combinations(row, 2)) >= gap


def test_spread_starts_falls_back_to_even_spacing_on_short_clips():
  rng = np.random.default_rng(0)
  starts = np.sort(mb.spread_starts(rng, num_samples=1500, crop_length=CROP, n=3,
                                    max_overlap=0.5))
  np.testing.assert_array_equal(starts, [0, 250, 500])
  for _ in range(20):
    s = np.sort(mb.spread_starts(rng, 10_000, CROP, 4, 0.25))
    assert s[0] >= 0 and s[-1] <= 9000 and np.diff(s).min() >= 750


def test_stream_is_independent_of_process_count_and_resumes():
  single = _batches(3)
  for count in (2, 3):
    local = [mb.pk_iterator(SOURCE, **dict(KWARGS, process_index=p, process_count=count))
             for p in range(count)]
    for step in range(3):
      parts = [next(it) for it in local]
      for key in single[step]:
        np.testing.assert_array_equal(np.concatenate([x[key] for x in parts]),
                                      single[step][key])
  it = mb.pk_iterator(SOURCE, **dict(KWARGS, process_index=0, process_count=1))
  next(it)
  state = it.get_state()
  resumed = mb.pk_iterator(SOURCE, **dict(KWARGS, process_index=0, process_count=1))
  resumed.set_state(state)
  skipped = mb.pk_iterator(SOURCE, **dict(KWARGS, process_index=0, process_count=1,
                                          start_step=1))
  for step in (1, 2):
    a, b = next(resumed), next(skipped)
    for key in a:
      np.testing.assert_array_equal(a[key], single[step][key])
      np.testing.assert_array_equal(b[key], single[step][key])
  other_seed = _batches(1, seed=6)[0]
  assert not np.array_equal(other_seed["clip_id"], single[0]["clip_id"])


def test_class_tables_multi_label_membership():
  records = mb.read_label_records(SOURCE, ("tags", "artist"))
  table = mb.build_class_table("tag:instrument",
                               mb.label_values("tag:instrument", records, TAG_GROUPS))
  np.testing.assert_array_equal(table.class_ids, [4, 5, 6])
  for c, tag in enumerate(table.class_ids):
    np.testing.assert_array_equal(table.members_of(c), np.flatnonzero(records["tags"][:, tag]))
  artists = mb.build_class_table("artist", mb.label_values("artist", records, TAG_GROUPS))
  assert artists.num_classes == 6 and len(artists.members) == len(SOURCE)


@pytest.mark.parametrize("change, message", [
    (dict(global_batch_size=B + 1), "must equal"),
    (dict(classes_per_batch=4, global_batch_size=len(LABELS) * 4 * K), "fewer than"),
    (dict(labels=("tag:mood",), global_batch_size=P * K), "no tag group 'mood'"),
    (dict(labels=(), global_batch_size=0), "at least one label"),
])
def test_errors_name_the_problem(change, message):
  with pytest.raises(UserError, match=message):
    mb.pk_dataset(SOURCE, **dict(KWARGS, process_index=0, process_count=1, **change))
