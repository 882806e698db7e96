"""``musicrep_jax.storage`` and what is built on it, locally and against the GCS API emulator on
127.0.0.1 (``gcs_emulator``): atomic text writes, copies down, the metric writer's mirror of a
remote run directory, and the one-line errors for a remote data dir opened directly or in a
bucket that does not exist."""

import json
import pathlib

import pytest

from musicrep_jax import storage
from musicrep_jax.data.shards import open_shards
from musicrep_jax.errors import UserError
from musicrep_jax.training import run_data
from musicrep_jax.training.writers import MetricWriter, read_jsonl


def test_local_paths_stay_pathlib_and_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = storage.as_path("run")
  assert isinstance(path, pathlib.Path) and path == tmp_path / "run"
  assert not storage.is_remote("run") and storage.is_remote("gs://bucket/run")


def test_atomic_write_replaces_a_local_file_and_leaves_no_partial(tmp_path):
  target = tmp_path / "timing.json"
  storage.write_text_atomic(target, "{}")
  storage.write_text_atomic(target, '{"steps": 3}')
  assert json.loads(target.read_text()) == {"steps": 3}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["timing.json"]


def test_remote_text_round_trip_and_copy_down(gcs_emulator, tmp_path):
  del gcs_emulator
  remote = storage.as_path("gs://bucket/unit/copy")
  assert str(remote) == "gs://bucket/unit/copy"
  storage.write_text_atomic(remote / "a.txt", "one")
  storage.write_text_atomic(remote / "a.txt", "two")
  (remote / "sub" / "deeper").mkdir(parents=True, exist_ok=True)
  (remote / "sub" / "deeper" / "b.bin").write_bytes(b"\x00\x01")
  copied = storage.copy_tree(remote, tmp_path / "local")
  assert copied == [tmp_path / "local" / "a.txt", tmp_path / "local" / "sub" / "deeper" / "b.bin"]
  assert (tmp_path / "local" / "a.txt").read_text() == "two"
  assert (tmp_path / "local" / "sub" / "deeper" / "b.bin").read_bytes() == b"\x00\x01"


def test_metric_writer_mirrors_a_remote_run_and_appends_on_resume(gcs_emulator):
  del gcs_emulator
  logdir = "gs://bucket/unit/metrics"
  writer = MetricWriter(logdir)
  writer.write(1, "train", {"loss": 1.0})
  writer.flush()  # The trainer flushes after each checkpoint: the lines are in the bucket.
  assert [r["loss"] for r in read_jsonl(f"{logdir}/metrics.jsonl")] == [1.0]
  writer.write(2, "train", {"loss": float("nan")})
  writer.close()
  resumed = MetricWriter(logdir)  # A resumed run appends, as to a local file.
  resumed.write(3, "validation", {"roc_auc": 0.5})
  resumed.close()
  records = read_jsonl(f"{logdir}/metrics.jsonl")
  assert [(r["step"], r["split"]) for r in records] == [(1, "train"), (2, "train"),
                                                        (3, "validation")]
  assert records[1]["loss"] == "nan"
  events = list(storage.as_path(logdir).joinpath("tensorboard").iterdir())
  assert len(events) == 2 and all(p.name.startswith("events.out.tfevents.") for p in events)


def test_a_remote_data_dir_is_staged_or_refused_in_one_line(gcs_emulator, tiny_data_dir,
                                                             tmp_path):
  del gcs_emulator
  remote = storage.as_path("gs://bucket/unit/shards")
  for path in tiny_data_dir.rglob("*"):
    if path.is_file():
      storage.upload_file(path, remote.joinpath(*path.relative_to(tiny_data_dir).parts))
  with pytest.raises(UserError) as error:
    open_shards(str(remote))
  assert "\n" not in str(error.value) and "musicrep stage --data-dir gs://bucket/unit/shards" in (
      str(error.value))
  staged = run_data.stage_data_dir(str(remote), tmp_path / "staged")
  assert open_shards(staged).split_sizes == open_shards(tiny_data_dir).split_sizes
  default = run_data.staged_dir(str(remote))
  assert default.parent == run_data.cache_root() / "staged"
  assert default.name.startswith("unit-shards-")
  with pytest.raises(UserError, match="is a local folder already"):
    run_data.stage_data_dir(str(tiny_data_dir))
  # A bucket that is not there: one line naming it, before any listing.
  with pytest.raises(UserError) as error:
    run_data.stage_data_dir("gs://no-such-bucket/shards")
  assert str(error.value) == ("The data dir gs://no-such-bucket/shards: the bucket "
                              "gs://no-such-bucket does not exist (or these credentials cannot "
                              "see it).")
  storage.require_reachable("gs://bucket/unit/shards", "data dir")  # exists: passes
  storage.require_reachable(str(tmp_path), "workdir")  # local: no request
