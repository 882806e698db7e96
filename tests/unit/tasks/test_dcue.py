"""DCUE (paper 7): interaction loading and splitting, binding, the negative sampler, the model
(ranking metrics: tests/unit/evaluators/test_recommendation.py; the learning test against the
popularity baseline: tests/e2e/test_learning_runs.py)."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.data import interactions as il
from musicrep_jax.errors import UserError
from musicrep_jax.data.pipeline import InMemorySource, iterate_batches
from musicrep_jax.models.dcue import DCUE
from musicrep_jax.data.shards import open_shards
from musicrep_jax.tasks import dcue


@pytest.fixture(scope="module")
def tiny(tiny_data_dir):
  shards = open_shards(tiny_data_dir)
  return shards, il.catalogue_of(shards)


def _write_csv(path, rows, header=("user", "item", "count")):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return path


def test_synthetic_interactions_match_every_track(tiny):
  shards, cat = tiny
  table = np.load(shards.dataset_dir / "interactions.npy")
  got = il.load_synthetic_interactions(shards, cat)
  assert len(got) == len(table) and got.dropped["unknown_item"] == 0
  assert got.num_users == shards.metadata["corpus_config"]["num_users"]
  np.testing.assert_array_equal(np.sort(cat.track[got.item]), np.sort(table[:, 1]))
  np.testing.assert_array_equal(np.sort(got.count), np.sort(table[:, 2].astype(np.float32)))


def test_csv_interactions_match_paths_and_ids_and_count_dropped_rows(tiny, tmp_path, capsys):
  _, cat = tiny
  path_item, id_item = cat.path[3], str(cat.track[7])
  rows = [("ann", path_item, 2), ("ann", path_item, 3),   # repeated pair: summed
          ("bob", id_item, 1), ("bob", "no/such/track", 4),  # unknown item: dropped
          ("cid", id_item, 0)]                                 # zero count: dropped
  got = il.load_interactions_csv(_write_csv(tmp_path / "i.csv", rows), cat)
  assert got.user_names == ("ann", "bob", "cid") and got.num_users == 3
  assert got.dropped == {"unknown_item": 1, "nonpositive_count": 1, "merged_duplicates": 1}
  assert sorted(zip(got.user.tolist(), got.item.tolist(), got.count.tolist())) == [
      (0, 3, 5.0), (1, 7, 1.0)]
  assert "no/such/track" in capsys.readouterr().out


@pytest.mark.parametrize("rows,header,match", [
    ([("a", "x", 1)], ("user", "song", "count"), "columns user, item"),
    ([("a", "nothing", 1), ("b", "else", 2)], ("user", "item", "count"), "None of the 2 rows"),
    ([("a", "0", "many")], ("user", "item", "count"), "line 2: count 'many'"),
    ([], ("user", "item", "count"), "has no rows"),
])
def test_csv_errors_are_one_sentence(tiny, tmp_path, rows, header, match):
  _, cat = tiny
  with pytest.raises(UserError, match=match):
    il.load_interactions_csv(_write_csv(tmp_path / "bad.csv", rows, header), cat)


def test_split_holds_out_per_user_and_test_tracks_are_cold(tiny):
  shards, cat = tiny
  data = il.load_split(shards, heldout_fraction=0.25, seed=1)
  inter = data.interactions
  warm = cat.split[inter.item] == "train"
  assert not (data.train & data.heldout).any() and ((data.train | data.heldout) == warm).all()
  for u in np.unique(inter.user[warm])[:50]:
    n = int((warm & (inter.user == u)).sum())
    held = int((data.heldout & (inter.user == u)).sum())
    assert held == min(int(np.floor(0.25 * n + 0.5)), n - 1)
  np.testing.assert_array_equal(data.cold_items("test"), cat.rows_of_split("test"))
  again = il.load_split(shards, heldout_fraction=0.25, seed=1)
  np.testing.assert_array_equal(again.heldout, data.heldout)
  assert not np.array_equal(il.load_split(shards, heldout_fraction=0.25, seed=2).heldout,
                            data.heldout)


# --------------------------------------------------------------------------------- the sampler


def _examples(seed=0, negatives=3):
  """10 tracks of 40 samples (track i is constant i), 3 users."""
  source = InMemorySource([{"audio": np.full(40, i, np.int16), "clip_id": np.int64(i)}
                           for i in range(10)])
  users = np.array([0, 0, 1, 1, 1, 2])
  positives = np.array([1, 2, 0, 5, 9, 4])
  return dcue.DcueExamples(source, users, positives, negatives=negatives, crop_length=16,
                           seed=seed)


def _stack(batches):
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def test_sampler_draws_negatives_outside_the_users_training_tracks():
  examples = _examples()
  ds = dcue.dcue_dataset(examples, global_batch_size=6, seed=0, process_index=0,
                         process_count=1)
  for step in range(4):
    batch = ds[step]
    assert batch["audio"].shape == (6, 4, 16, 1)
    # Element g of an epoch: each training interaction exactly once per epoch of 6 elements.
    pairs = sorted(zip(batch["user"].tolist(), batch["items"][:, 0].tolist()))
    assert pairs == sorted(zip(examples.users.tolist(), examples.positives.tolist()))
    track_of_crop = np.round(batch["audio"][..., 0, 0] * 32768).astype(int)
    np.testing.assert_array_equal(track_of_crop, batch["items"])
    for user, items in zip(batch["user"], batch["items"]):
      assert not np.isin(items[1:], examples.excluded(int(user))).any()


def test_sampler_is_deterministic_resumable_and_split_over_processes():
  def take(it, n):
    return _stack([next(it) for _ in range(n)])

  ds = dcue.dcue_dataset(_examples(), global_batch_size=4, seed=0, process_index=0,
                         process_count=1)
  first = take(iterate_batches(ds), 5)
  for k, v in take(iterate_batches(ds), 5).items():
    np.testing.assert_array_equal(v, first[k])
  it = iterate_batches(ds)
  take(it, 2)
  state = it.get_state()
  resumed = iterate_batches(ds)
  resumed.set_state(state)
  np.testing.assert_array_equal(take(resumed, 3)["items"], first["items"][2:])
  np.testing.assert_array_equal(take(iterate_batches(ds, start_step=2), 3)["items"],
                                first["items"][2:])
  halves = [dcue.dcue_dataset(_examples(), global_batch_size=4, seed=0, process_index=p,
                              process_count=2) for p in range(2)]
  for step in range(3):
    joined = np.concatenate([h[step]["items"] for h in halves])
    np.testing.assert_array_equal(joined, first["items"][step])
  other = dcue.dcue_dataset(_examples(seed=1), global_batch_size=4, seed=1, process_index=0,
                            process_count=1)
  assert not np.array_equal(take(iterate_batches(other), 5)["items"], first["items"])


def test_a_user_with_every_track_cannot_get_negatives():
  source = InMemorySource([{"audio": np.zeros(8, np.int16), "clip_id": np.int64(i)}
                           for i in range(2)])
  with pytest.raises(UserError, match="all 2 training tracks"):
    dcue.DcueExamples(source, np.array([0, 0]), np.array([0, 1]), negatives=1, crop_length=4,
                      seed=0)


def test_bind_splits_the_interactions_once_and_keeps_the_task_unchanged(tiny):
  shards, _ = tiny
  task = dcue.DcueTask(heldout_fraction=0.25, split_seed=1)
  bound = task.bind(shards)
  assert task.bound is None and bound == task
  expected = il.load_split(shards, heldout_fraction=0.25, seed=1)
  np.testing.assert_array_equal(bound.data.recommendation.heldout, expected.heldout)
  assert bound.model_kwargs() == {"num_users": expected.num_users}
  assert len(bound.data.train_source) == shards.split_sizes["train"]
  with pytest.raises(UserError, match="train_split='nope' is not a split"):
    dcue.DcueTask(train_split="nope").bind(shards)


# ------------------------------------------------------------------------------------ the model


def test_multi_model_has_five_heads_matched_to_user_heads():
  model = DCUE(num_users=5, num_frames=16, sample_rate=16000, n_fft=256, hop_length=128,
               n_mels=16, channels=(8, 8, 8, 8, 8), pool_sizes=(2, 2, 1, 1, 1), dim=6,
               user_hidden=4, multi=True)
  audio = jnp.zeros((3, model.input_length, 1))
  variables = model.init(jax.random.key(0), audio, jnp.zeros((1,), jnp.int32))
  out = model.apply(variables, audio, jnp.array([0, 4]))
  assert [h.shape for h in out["item_heads"]] == [(3, 6)] + [(3, 8)] * 4
  assert [h.shape for h in out["user_heads"]] == [(2, 6)] + [(2, 8)] * 4
  assert variables["params"]["user_table"]["embedding"].shape == (5, 4)
  task = dcue.DcueTask(margin=0.2)
  batch_items = tuple(jnp.tile(h[:1], (2 * 3, 1)) for h in out["item_heads"])
  loss, _ = task.loss({"item_heads": batch_items, "user_heads": out["user_heads"]}, {})
  # Identical positive and negatives: every hinge term is the margin, 2 users x 2 negatives
  # x 5 heads, summed.
  assert float(loss) == pytest.approx(0.2 * 2 * 2 * 5, rel=1e-5)
