"""Paths that are local folders or remote stores (``gs://``, ``s3://``, any ``etils.epath`` scheme).

``as_path(p)`` is the one way a workdir or data dir becomes a path: a ``pathlib.Path`` made
absolute for a local path (exactly what the trainer always did), an ``etils.epath.Path`` for a
URI. Both offer ``/``, ``exists``, ``is_dir``, ``mkdir``, ``read_text``, ``write_text``, ``open``,
``iterdir`` and ``glob``, which is all the callers use, and Orbax, Grain and TensorStore take
either. ``epath`` reaches ``gs://`` through ``gcsfs`` (fsspec) when TensorFlow is absent.

Remote objects cannot be appended to or renamed atomically, so:

- ``write_text_atomic``: a temporary file and ``os.replace`` locally; one object upload remotely
  (a GCS object is replaced in one step: readers see the old or the new object, never a part).
- ``upload_file`` / ``download_file`` / ``copy_tree``: whole files between a local folder and a
  remote one (the metric writer mirrors its local files up; ``musicrep stage`` copies shards down).
- ``local_dir``: a local folder for a writer of a (possibly remote) output folder, copied up at
  the end (export, embed, features, tables, plots, vectors, fitted models).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pathlib
import shutil
import tempfile
from typing import Iterator, Optional, Union

from musicrep_jax.errors import UserError

AnyPath = Union[pathlib.Path, "epath.Path"]  # noqa: F821


def is_remote(path) -> bool:
  """Whether ``path`` names a remote store (``scheme://...``) rather than a local file."""
  return "://" in os.fspath(path)


def as_path(path) -> AnyPath:
  """``path`` as a path object: remote -> ``epath.Path``, local -> absolute ``pathlib.Path``."""
  if is_remote(path):
    from etils import epath  # Lazy: only remote paths need it.

    _quiet_gcsfs()
    return epath.Path(os.fspath(path))
  return pathlib.Path(path).absolute()


def _quiet_gcsfs() -> None:
  """gcsfs logs a full traceback (``logger.exception``) each time a request runs out of
  retries, before raising; the caller turns the error into one line, so the log is kept to
  what ``MUSICREP_LOG_STORAGE=1`` asks for."""
  if not os.environ.get("MUSICREP_LOG_STORAGE"):
    logging.getLogger("gcsfs").setLevel(logging.CRITICAL)


@functools.lru_cache(maxsize=None)
def _bucket_problem(scheme_and_bucket: str) -> Optional[str]:
  import fsspec  # Lazy: remote paths only.

  _quiet_gcsfs()
  try:
    fs, bucket = fsspec.core.url_to_fs(scheme_and_bucket)
    fs.info(bucket)
  except FileNotFoundError:
    return f"the bucket {scheme_and_bucket} does not exist (or these credentials cannot see it)"
  except Exception as error:  # pylint: disable=broad-except  (network, credentials, permissions)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = lines[0][:200] if lines else type(error).__name__
    return f"{scheme_and_bucket} cannot be reached: {reason}"
  return None


def require_reachable(path, role: str) -> None:
  """For a remote ``path`` (the run's ``role``: "workdir", "data dir"), one request to its
  bucket: a ``UserError`` naming the bucket and the first line of the reason when it does not
  exist or cannot be reached (no network, no credentials, no permission), instead of a
  "does not exist" or an I/O traceback later. Local paths and reachable buckets (checked once
  per process) pass."""
  if not is_remote(path):
    return
  scheme, rest = os.fspath(path).split("://", 1)
  problem = _bucket_problem(f"{scheme}://{rest.split('/', 1)[0]}")
  if problem:
    raise UserError(f"The {role} {os.fspath(path)}: {problem}.")


def write_text_atomic(path: AnyPath, text: str) -> None:
  """Replaces ``path``'s content with ``text`` in one step: never a truncated file."""
  if is_remote(path):
    path.write_text(text)  # One upload: the object is replaced whole.
    return
  partial = path.with_name(path.name + ".partial")
  partial.write_text(text)
  os.replace(partial, path)


def upload_file(local: pathlib.Path, remote: AnyPath) -> None:
  """Copies the local file ``local`` to ``remote`` (replacing it)."""
  with open(local, "rb") as src, remote.open("wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 22)


def download_file(remote: AnyPath, local: pathlib.Path) -> None:
  """Copies ``remote`` to the local file ``local`` (through a temporary file and a rename)."""
  local.parent.mkdir(parents=True, exist_ok=True)
  partial = local.with_name(local.name + ".partial")
  with remote.open("rb") as src, open(partial, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 22)
  os.replace(partial, local)


def copy_tree(src: AnyPath, dst) -> list:
  """Copies every file under ``src`` to the folder ``dst`` (each local or remote: a remote tree
  comes down, a local one goes up), keeping the relative layout and skipping files whose size
  already matches; returns the files under ``dst``."""
  from etils import epath  # Lazy: only copies need it; its walk() covers local and remote.

  root, dst = epath.Path(os.fspath(src)), as_path(dst) if is_remote(dst) else pathlib.Path(dst)
  copied = []
  for folder, _, names in root.walk():
    # fsspec walks give folders without the scheme ("bucket/data/x"): rebuild them under root.
    parts = _strip_scheme(folder).split("/")[len(_strip_scheme(root).split("/")):]
    for name in sorted(names):
      item = root.joinpath(*parts, name)
      target = dst.joinpath(*parts, name)
      if not (target.is_file() and _size(target) == _size(item)):
        if is_remote(target):
          with item.open("rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 22)
        else:
          download_file(item, target)
      copied.append(target)
  return sorted(copied)


@contextlib.contextmanager
def local_dir(path, *, download: bool = False, upload: bool = True) -> Iterator[pathlib.Path]:
  """A local folder to write the output folder ``path`` into: ``path`` itself when local
  (created); for a remote ``path`` a temporary folder (first filled with ``path``'s files when
  ``download``) whose files ``copy_tree`` puts at ``path`` when the block ends without an error
  (when ``upload``; ``download=True, upload=False`` reads a remote folder locally), and then
  removed. One way for every writer that needs local files (``np.save``, exporters,
  plots) to write a remote folder; a stage that must survive a later failure calls
  ``copy_tree(local, path)`` itself."""
  if not is_remote(path):
    local = pathlib.Path(path)
    local.mkdir(parents=True, exist_ok=True)
    yield local
    return
  with tempfile.TemporaryDirectory(prefix="musicrep-out-") as tmp:
    local = pathlib.Path(tmp)
    if download and as_path(path).is_dir():
      copy_tree(path, local)
    yield local
    if upload:
      copy_tree(local, path)


def _size(path) -> int:
  stat = path.stat()
  return stat.st_size if hasattr(stat, "st_size") else stat.length


def _strip_scheme(path) -> str:
  return os.fspath(path).split("://", 1)[-1].rstrip("/")

