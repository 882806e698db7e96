"""Which prepared shards a run reads: ``--data-dir``, or the embedded corpus rendered into a cache.

Without ``--data-dir``, a config whose ``data.name`` is ``"synthetic"`` renders the corpus once
into ``$MUSICREP_CACHE`` (default ``~/.cache/musicrep_jax``) under a name derived from its
settings, so the README's first command needs nothing else. Each process renders its own copy if
missing (hosts of a pod do not share disks); a file lock keeps processes of one machine from
racing.

A remote ``--data-dir`` (``gs://...``, any ``etils.epath`` URI) is copied to this host first
(``stage_data_dir``, into ``$MUSICREP_CACHE/staged/``): ArrayRecord's random access reads local
files only. Every host copies the whole dataset (each reads rows of every shard); a dataset
larger than a host's disk needs the bucket mounted with gcsfuse and that mount as ``--data-dir``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pathlib

import ml_collections

from musicrep_jax import storage
from musicrep_jax.errors import UserError


def cache_root() -> pathlib.Path:
  return pathlib.Path(os.environ.get("MUSICREP_CACHE", "~/.cache/musicrep_jax")).expanduser()


def synthetic_cache_dir(data: ml_collections.ConfigDict) -> pathlib.Path:
  settings = dict(data.synthetic.to_dict(), sample_rate=data.sample_rate)
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
  return cache_root() / f"synthetic-{digest}"


def ensure_synthetic(data: ml_collections.ConfigDict, *, progress: bool = True) -> pathlib.Path:
  """Renders and prepares the embedded corpus for ``data`` unless the cache already holds it;
  ``progress``: the rendering's progress bars on stderr (callers pass the run config's
  ``progress_bar``)."""
  out = synthetic_cache_dir(data)
  out.parent.mkdir(parents=True, exist_ok=True)
  with open(str(out) + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (out / "prepare_report.json").exists():
      from musicrep_jax.data_pipelines.prepare import prepare_synthetic  # Lazy: pulls in TFDS.

      print(f"Rendering the embedded synthetic corpus into {out} (once) ...", flush=True)
      prepare_synthetic(out, num_clips=data.synthetic.num_clips, seed=data.synthetic.seed,
                        sample_rate=data.sample_rate, clip_seconds=data.synthetic.clip_seconds,
                        progress=progress)
  return out


def staged_dir(data_dir: str) -> pathlib.Path:
  """Where ``stage_data_dir`` puts a remote ``data_dir`` by default: a cache folder named after
  it (readable, and unique by a hash of the full URI)."""
  text = str(data_dir).rstrip("/")
  digest = hashlib.sha256(text.encode()).hexdigest()[:12]
  name = "-".join(p for p in text.split("://", 1)[-1].split("/")[-2:] if p)
  return cache_root() / "staged" / f"{name}-{digest}"


def stage_data_dir(data_dir: str, out: str | os.PathLike | None = None) -> pathlib.Path:
  """Copies every file of the remote ``data_dir`` into the local folder ``out`` (default
  ``staged_dir(data_dir)``), skipping files already there with the same size; -> ``out``.
  A file lock keeps the processes of one machine from copying at once."""
  if not storage.is_remote(data_dir):
    raise UserError(f"{data_dir} is a local folder already; stage copies gs://... (or another "
                    f"remote URI) to this host.")
  storage.require_reachable(data_dir, "data dir")
  source = storage.as_path(data_dir)
  if not source.is_dir():
    raise UserError(f"The data dir {data_dir} does not exist or holds no files.")
  out = pathlib.Path(out).expanduser().absolute() if out else staged_dir(data_dir)
  out.parent.mkdir(parents=True, exist_ok=True)
  with open(str(out) + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print(f"Staging {data_dir} into {out} (ArrayRecord reads local files only) ...", flush=True)
    files = storage.copy_tree(source, out)
  if not files:
    raise UserError(f"The data dir {data_dir} does not exist or holds no files.")
  return out


def resolve_shards(config: ml_collections.ConfigDict, data_dir: str | None):
  """-> ``musicrep_jax.data.shards.Shards`` for the run, checked against
  ``config.data.sample_rate``; a remote ``data_dir`` is staged to this host first. The embedded
  corpus is rendered with progress bars unless ``config.progress_bar`` is false."""
  from musicrep_jax.data.shards import open_shards

  if data_dir is None:
    if config.data.name != "synthetic":
      raise UserError(
          f"config.data.name={config.data.name!r} reads prepared shards: pass --data-dir DIR "
          f"(see `musicrep prepare --help`), or train on the embedded corpus with "
          f"{config.get('config_file', 'the config')}:runlocal.")
    data_dir = ensure_synthetic(config.data, progress=bool(config.get("progress_bar", True)))
  elif storage.is_remote(data_dir):
    data_dir = stage_data_dir(data_dir)
  return open_shards(data_dir, expected_sample_rate=config.data.sample_rate)
