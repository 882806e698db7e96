"""Metrics to TensorBoard event files (tensorboardX: no TensorFlow) and to ``metrics.jsonl``.

Only process 0 writes. Each JSONL line is ``{"step": int, "split": str, <metric>: float, ...}``;
TensorBoard tags are ``<split>/<metric>``.

A remote run directory (``gs://...``, any ``etils.epath`` URI) cannot be appended to, so the
writer keeps both files in a local folder and copies them up whole at each ``flush`` (the trainer
flushes after every checkpoint) and at ``close``; an existing remote ``metrics.jsonl`` is copied
down first, so a resumed run appends to it as it does locally. Event files keep their own names
(one per session, as TensorBoard expects; remote ones end in a unique suffix).

A resumed run passes ``resume_step`` (the restored checkpoint's step): rows of ``metrics.jsonl``
after it came from the lost attempt and are dropped (the file is rewritten up to that step, a
torn last line too), and TensorBoard is told to purge its events from the step after
(``purge_step``), so that no step appears twice in either.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import tempfile
import time

import jax

from musicrep_jax import storage


class MetricWriter:
  """Writes scalars for one run directory; a no-op on processes other than 0."""

  def __init__(self, logdir: str | pathlib.Path, resume_step: int | None = None):
    self.logdir = storage.as_path(logdir)
    self.active = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    self._local = None  # The local mirror of a remote logdir.
    if self.active:
      self.logdir.mkdir(parents=True, exist_ok=True)
      from tensorboardX import SummaryWriter  # Lazy: only the writing process needs it.

      local, suffix = self.logdir, ""
      if storage.is_remote(self.logdir):
        local = self._local = pathlib.Path(tempfile.mkdtemp(prefix="musicrep-metrics-"))
        suffix = "." + local.name  # Unique: two sessions in one second must not share a name.
        if (self.logdir / "metrics.jsonl").exists():
          storage.download_file(self.logdir / "metrics.jsonl", local / "metrics.jsonl")
      purge_step = None
      if resume_step is not None:
        _truncate_jsonl(local / "metrics.jsonl", resume_step)
        purge_step = resume_step + 1
      self._tb = SummaryWriter(str(local / "tensorboard"), filename_suffix=suffix,
                               purge_step=purge_step)
      self._jsonl = open(local / "metrics.jsonl", "a", buffering=1)

  def write(self, step: int, split: str, scalars: dict) -> None:
    if not self.active:
      return
    clean = {k: float(v) for k, v in scalars.items()}
    for key, value in clean.items():
      if math.isfinite(value):
        self._tb.add_scalar(f"{split}/{key}", value, step)
    record = {"step": int(step), "split": split, "time": time.time()}
    record.update({k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()})
    self._jsonl.write(json.dumps(record) + "\n")

  def flush(self) -> None:
    if self.active:
      self._tb.flush()
      self._jsonl.flush()
      self._upload()

  def close(self) -> None:
    if self.active:
      self._tb.close()
      self._jsonl.close()
      self._upload()
      if self._local is not None:
        shutil.rmtree(self._local, ignore_errors=True)
      self.active = False

  def _upload(self) -> None:
    """Copies the local mirror's files up to the remote logdir (nothing for a local one)."""
    if self._local is None:
      return
    for path in sorted(self._local.rglob("*")):
      if path.is_file():
        storage.upload_file(path, self.logdir.joinpath(*path.relative_to(self._local).parts))


def _truncate_jsonl(path: pathlib.Path, last_step: int) -> None:
  """Keeps the rows of the local file ``path`` up to ``last_step`` (replaced in one rename)."""
  if not path.exists():
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        if int(json.loads(line)["step"]) <= last_step:
          kept.append(line if line.endswith("\n") else line + "\n")
      except (ValueError, KeyError, TypeError):
        continue  # A line torn by a kill.
  storage.write_text_atomic(path, "".join(kept))


def read_jsonl(path: str | pathlib.Path) -> list[dict]:
  """All records of a ``metrics.jsonl`` file (local or remote)."""
  with storage.as_path(path).open() as f:
    return [json.loads(line) for line in f if line.strip()]
