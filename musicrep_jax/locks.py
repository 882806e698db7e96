"""One writer per local folder: a training workdir (``musicrep train``), a prepare output
(``musicrep prepare``).

``folder_lock`` is an advisory ``flock`` on a file in the folder, holding "host H, pid P" of its
holder, so that a second writer fails at once with a line naming the first. The kernel drops the
lock when its process dies: a lock file left by a killed process is stale and simply reused.

Object stores (``gs://...``) have no ``flock``; remote folders are not locked (the callers skip
them, and say so where they do).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket

from musicrep_jax.errors import UserError


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, lock_name: str, busy: str):
  """Holds ``folder/lock_name`` (an advisory ``flock``) while the block runs; a second holder
  fails at once with ``UserError(busy.format(holder=..., folder=...))``, ``holder`` being
  "host H, pid P" of the process that holds it. Local folders only."""
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
