"""One writer per folder: a training workdir (``musicrep train``), a prepare output
(``musicrep prepare``), local or in an object store.

``folder_lock`` holds a lock file in the folder naming "host H, pid P" of its holder, so that a
second writer fails at once with a line naming the first.

- **Local folders**: an advisory ``flock``. The kernel drops it when its process dies: a lock file
  left by a killed process is stale and simply reused.
- **Remote folders** (``gs://...``, any fsspec scheme; ``remote_lock``): object stores have no
  ``flock``, so the lock is a *lease*. The lock object is created only if absent (GCS
  ``ifGenerationMatch=0``: of two writers racing, exactly one creates it) and rewritten by a
  heartbeat thread every ``stale_after / 4`` seconds. A newcomer that finds it watches it: if the
  content changes (a heartbeat), the holder is alive and the newcomer fails with the usual line;
  if it stays unchanged until ``stale_after`` seconds after its recorded heartbeat (or its
  holder is a dead pid on this host: at once), the holder died (SIGKILL, a lost
  VM) and the newcomer takes the lock over, saying so. The newcomer watches for at least two
  heartbeat periods whatever the recorded time says, so clock skew between hosts cannot make it
  take a live holder's lock. A preempted pod that
  restarts after a hard kill therefore waits up to ``stale_after`` (default 90 s,
  ``MUSICREP_REMOTE_LOCK_STALE_S``) before training; one that stopped cleanly (SIGTERM: the
  trainer checkpoints and returns) released its lock and starts at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid

from musicrep_jax import storage
from musicrep_jax.errors import UserError

STALE_AFTER_S = 90.0  # Default lease of a remote lock (seconds without a heartbeat).


@contextlib.contextmanager
def folder_lock(folder, lock_name: str, busy: str):
  """Holds ``folder/lock_name`` while the block runs; a second holder fails with
  ``UserError(busy.format(holder=..., folder=...))``, ``holder`` being "host H, pid P" of the
  process that holds it. Local folders: an advisory ``flock``; remote ones: ``remote_lock``."""
  if storage.is_remote(folder):
    with remote_lock(os.fspath(folder), lock_name, busy):
      yield
    return
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, lock_name)
  with open(path, "a+", encoding="utf-8") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "another process"
      raise UserError(busy.format(holder=holder, folder=folder)) from None
    f.seek(0)
    f.truncate()
    f.write(f"host {socket.gethostname()}, pid {os.getpid()}\n")
    f.flush()
    try:
      yield
    finally:
      f.seek(0)
      f.truncate()


def _holder() -> str:
  return f"host {socket.gethostname()}, pid {os.getpid()}"


def _dead_here(holder: str) -> bool:
  """Whether ``holder`` ("host H, pid P") is a process of this host that no longer runs."""
  prefix = f"host {socket.gethostname()}, pid "
  if not holder.startswith(prefix) or not holder[len(prefix):].isdigit():
    return False
  try:
    os.kill(int(holder[len(prefix):]), 0)
  except ProcessLookupError:
    return True
  except PermissionError:
    return False
  return False


def _read_lease(fs, path: str):
  """The lease object's text, or None when it does not exist."""
  try:
    return fs.cat_file(path).decode("utf-8", "replace")
  except FileNotFoundError:
    return None


def _lease_fields(text: str) -> dict:
  """The fields of a lease object (holder, token, heartbeat, stale_after); a damaged or foreign
  one reads as an unknown holder with no recorded time."""
  try:
    fields = json.loads(text)
  except ValueError:
    fields = None
  if not isinstance(fields, dict):
    fields = {}
  out = {"holder": str(fields.get("holder", "an unknown writer")), "token": fields.get("token")}
  for key in ("heartbeat", "stale_after"):
    value = fields.get(key)
    out[key] = float(value) if isinstance(value, (int, float)) and value == value else 0.0
  return out


@contextlib.contextmanager
def remote_lock(folder: str, lock_name: str, busy: str, *, stale_after: float | None = None):
  """A lease on ``folder/lock_name`` in an object store (module docstring): created only if
  absent, renewed by a heartbeat thread, deleted at exit; a live holder makes this raise
  ``UserError(busy.format(...))``, a dead one (no heartbeat for ``stale_after`` s) is taken over
  with one line on stdout. The lease is JSON: holder, token, heartbeat (Unix time) and
  stale_after (the holder's lease: a newcomer waits for the longer of its own and that)."""
  import fsspec  # Lazy: remote folders only.

  if stale_after is None:
    stale_after = float(os.environ.get("MUSICREP_REMOTE_LOCK_STALE_S", STALE_AFTER_S))
  fs, root = fsspec.core.url_to_fs(folder.rstrip("/"))
  path = f"{root}/{lock_name}"
  token = uuid.uuid4().hex

  def lease() -> bytes:
    return json.dumps({"holder": _holder(), "token": token, "heartbeat": time.time(),
                       "stale_after": stale_after}).encode()

  def create() -> bool:
    try:
      fs.pipe_file(path, lease(), mode="create")
      return True
    except FileExistsError:
      return False

  while not create():
    seen = _read_lease(fs, path)
    if seen is None:
      continue  # Released between our attempt and the read: try again.
    fields = _lease_fields(seen)
    holder = fields["holder"]
    age = time.time() - fields["heartbeat"]
    # The holder's own lease, when longer: it heartbeats at a quarter of it.
    lease_s = max(stale_after, min(fields["stale_after"], 600.0))
    # At least two heartbeat periods, whatever the recorded time says (clock skew).
    deadline = time.monotonic() + max(lease_s - max(age, 0.0), lease_s / 2)
    if not _dead_here(holder):
      while time.monotonic() < deadline:
        time.sleep(min(lease_s / 8, 5.0))
        now = _read_lease(fs, path)
        if now != seen:
          if now is None:
            break  # Released: try to create it again.
          raise UserError(busy.format(holder=holder, folder=folder))
    if _read_lease(fs, path) == seen:
      print(f"Taking over the lock {folder}/{lock_name} of {holder}: no heartbeat for "
            f"{max(age, lease_s):.0f} s (a killed run).", flush=True)
      try:
        fs.rm_file(path)
      except FileNotFoundError:
        pass
  stop = threading.Event()

  def heartbeat():
    while not stop.wait(stale_after / 4):
      try:
        if _lease_fields(_read_lease(fs, path) or "").get("token") != token:
          print(f"warning: the lock {folder}/{lock_name} was taken over by another writer.",
                flush=True)
          return
        fs.pipe_file(path, lease())
      except OSError:
        pass  # A missed heartbeat; the next one retries well within the lease.

  thread = threading.Thread(target=heartbeat, name="musicrep-remote-lock", daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join()
    try:
      if _lease_fields(_read_lease(fs, path) or "").get("token") == token:
        fs.rm_file(path)
    except OSError:
      pass  # Left behind: the next writer sees it go stale.
