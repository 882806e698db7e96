"""``storage.local_dir`` and ``storage.copy_tree`` upwards: the one way a writer of local files
(exports, embeddings, features, tables, vectors, fitted models) fills a remote output folder,
locally and against the GCS API emulator on 127.0.0.1 (``gcs_emulator``)."""

import pathlib

import pytest

from musicrep_jax import storage


def test_a_local_folder_is_written_in_place(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with storage.local_dir("out/sub") as local:
    assert local == pathlib.Path("out/sub") and local.is_dir()
    (local / "a.txt").write_text("one")
  assert (tmp_path / "out" / "sub" / "a.txt").read_text() == "one"


def test_a_remote_folder_gets_the_files_when_the_block_ends(gcs_emulator):
  del gcs_emulator
  remote = "gs://bucket/unit/local_dir/ok"
  with storage.local_dir(remote) as local:
    assert isinstance(local, pathlib.Path) and not storage.is_remote(local)
    (local / "a.txt").write_text("one")
    (local / "deep" / "er").mkdir(parents=True)
    (local / "deep" / "er" / "b.bin").write_bytes(b"\x00\x01\x02")
    assert not storage.as_path(remote).exists()  # Nothing up before the block ends.
  assert not local.exists()  # The temporary folder is gone.
  path = storage.as_path(remote)
  assert (path / "a.txt").read_text() == "one"
  assert (path / "deep" / "er" / "b.bin").read_bytes() == b"\x00\x01\x02"

  # Read back locally (download, no upload), then a second upload replaces a changed file.
  with storage.local_dir(remote, download=True, upload=False) as copy:
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == [
        "a.txt", "deep/er/b.bin"]
    (copy / "a.txt").write_text("changed")
  assert (path / "a.txt").read_text() == "one"
  with storage.local_dir(remote) as local:
    (local / "a.txt").write_text("two!")
  assert (path / "a.txt").read_text() == "two!"


def test_a_failed_block_uploads_nothing(gcs_emulator):
  del gcs_emulator
  remote = "gs://bucket/unit/local_dir/failed"
  with pytest.raises(RuntimeError, match="parity"):
    with storage.local_dir(remote) as local:
      (local / "model.bin").write_bytes(b"x")
      raise RuntimeError("parity check failed")
  assert not storage.as_path(remote).exists()


def test_copy_tree_uploads_a_local_tree(gcs_emulator, tmp_path):
  del gcs_emulator
  (tmp_path / "src" / "x").mkdir(parents=True)
  (tmp_path / "src" / "x" / "f.npy").write_bytes(b"1234")
  (tmp_path / "src" / "g.json").write_text("{}")
  copied = storage.copy_tree(tmp_path / "src", "gs://bucket/unit/up")
  assert [str(p) for p in copied] == ["gs://bucket/unit/up/g.json", "gs://bucket/unit/up/x/f.npy"]
  assert storage.as_path("gs://bucket/unit/up/x/f.npy").read_bytes() == b"1234"
