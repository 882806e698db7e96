"""Small readers shared by the builders that read a dataset's own folder layout from a user's
local copy (Speech Commands, DCASE 2017): required folders and files with clear errors, list
files, and a stable hash bucket for held-out splits."""

from __future__ import annotations

import hashlib
import os

from musicrep_jax.errors import UserError


def require_folder(path: str, what: str) -> str:
  """``path`` as an absolute path; ``UserError`` naming ``what`` when it is not a folder."""
  path = os.path.abspath(os.fspath(path))
  if not os.path.isdir(path):
    raise UserError(f"{what} {path} does not exist (or is not a folder).")
  return path


def require_file(path: str, layout_hint: str) -> str:
  """``path``; ``UserError`` with the expected layout when it is not a file."""
  if not os.path.isfile(path):
    raise UserError(f"{path} is missing; {layout_hint}")
  return path


def read_lines(path: str) -> list[tuple[int, list[str]]]:
  """Non-blank lines of a text list as ``(line number, whitespace-separated fields)``.

  Paths use ``/`` whatever the list was written with (some copies carry ``\\``).
  """
  with open(path, encoding="utf-8-sig") as f:
    lines = [(n, line.replace("\\", "/").split()) for n, line in enumerate(f, start=1)]
  return [(n, fields) for n, fields in lines if fields]


def stable_bucket(key: str) -> int:
  """``int(sha256(key)[:8 hex], 16) % 100``: the same bucket on every machine and run."""
  return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100


def keys_in_several_splits(pairs) -> list[str]:
  """Keys (e.g. speakers, locations) of ``(key, split)`` pairs that occur in several splits."""
  splits: dict[str, set] = {}
  for key, split in pairs:
    splits.setdefault(key, set()).add(split)
  return sorted(k for k, s in splits.items() if len(s) > 1)
