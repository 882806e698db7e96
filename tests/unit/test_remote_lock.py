"""``locks.remote_lock`` against the GCS API emulator: one writer per gs:// folder, a dead
holder's lease taken over, a live one refused (module docstring of ``musicrep_jax.locks``)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import fsspec
import pytest

from musicrep_jax import locks
from musicrep_jax.errors import UserError

BUSY = "busy: {holder} holds {folder}"


@pytest.fixture
def gs_folder(gcs_emulator, request):
  fs = fsspec.filesystem("gs")
  folder = f"gs://bucket/locks/{request.node.name}"
  yield folder, fs
  fs.invalidate_cache()


def _lease(fs, folder):
  return json.loads(fs.cat_file(f"{folder}/the.lock"))


def _write_lease(fs, folder, holder, heartbeat):
  fs.pipe_file(f"{folder}/the.lock",
               json.dumps({"holder": holder, "token": "x", "heartbeat": heartbeat}).encode())


def test_create_only_if_absent_is_exclusive(gs_folder):
  folder, fs = gs_folder
  fs.pipe_file(f"{folder}/a", b"1", mode="create")
  with pytest.raises(FileExistsError):
    fs.pipe_file(f"{folder}/a", b"2", mode="create")
  assert fs.cat_file(f"{folder}/a") == b"1"


def test_live_holder_refused_and_lock_released(gs_folder, monkeypatch):
  folder, fs = gs_folder
  monkeypatch.setenv("MUSICREP_REMOTE_LOCK_STALE_S", "2")
  with locks.folder_lock(folder, "the.lock", BUSY):
    first = _lease(fs, folder)
    assert first["holder"] == f"host {socket.gethostname()}, pid {os.getpid()}"
    # Another process: its own pid, so the "dead pid on this host" shortcut cannot apply.
    code = ("import sys\n"
            "from musicrep_jax import locks\nfrom musicrep_jax.errors import UserError\n"
            "try:\n  with locks.folder_lock(sys.argv[1], 'the.lock', 'busy: {holder}'):\n"
            "    print('acquired')\nexcept UserError as e:\n  print(e)\n")
    env = dict(os.environ)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True,
                         env=env, timeout=60).stdout
    assert out.strip() == f"busy: {first['holder']}", out
    assert time.monotonic() - t0 < 20
  assert not fs.exists(f"{folder}/the.lock")


@pytest.fixture
def short_lease(monkeypatch):
  monkeypatch.setenv("MUSICREP_REMOTE_LOCK_STALE_S", "1.5")


def test_live_holder_heartbeats(gs_folder, short_lease):
  folder, fs = gs_folder
  with locks.folder_lock(folder, "the.lock", BUSY):
    first = _lease(fs, folder)
    time.sleep(1.0)
    assert _lease(fs, folder)["heartbeat"] > first["heartbeat"]


def test_dead_holder_taken_over_after_the_lease(gs_folder, short_lease, capsys):
  folder, fs = gs_folder
  _write_lease(fs, folder, "host elsewhere, pid 7", time.time())
  t0 = time.monotonic()
  with locks.folder_lock(folder, "the.lock", BUSY):
    waited = time.monotonic() - t0
    assert _lease(fs, folder)["holder"].startswith(f"host {socket.gethostname()}")
  assert 0.7 <= waited < 10
  assert "Taking over the lock" in capsys.readouterr().out


def test_dead_pid_on_this_host_taken_over_at_once(gs_folder, monkeypatch):
  folder, fs = gs_folder
  monkeypatch.setenv("MUSICREP_REMOTE_LOCK_STALE_S", "60")
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  _write_lease(fs, folder, f"host {socket.gethostname()}, pid {proc.pid}", time.time())
  t0 = time.monotonic()
  with locks.folder_lock(folder, "the.lock", BUSY):
    assert time.monotonic() - t0 < 10


def test_two_racing_writers_one_wins(gs_folder, short_lease):
  folder, fs = gs_folder
  results, inside = [], threading.Event()

  def writer():
    try:
      with locks.remote_lock(folder, "the.lock", BUSY):
        results.append("acquired")
        inside.wait(5)
    except UserError:
      results.append("refused")
      inside.set()

  threads = [threading.Thread(target=writer) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(30)
  assert sorted(results) == ["acquired", "refused"]


def test_damaged_lease_is_an_unknown_holder(gs_folder, short_lease):
  folder, fs = gs_folder
  fs.pipe_file(f"{folder}/the.lock", b'{"heartbeat": "soon", "stale_after": "long", "holder": 3}')
  with locks.folder_lock(folder, "the.lock", BUSY):
    assert _lease(fs, folder)["holder"].startswith(f"host {socket.gethostname()}")
