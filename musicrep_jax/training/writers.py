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

``curves.png`` (``training/curves.py``: loss, learning rate and the validation metrics against
steps and training time) is redrawn from ``metrics.jsonl`` after each evaluation row and at
``close``, beside it (so a remote run's goes up with the other files). Plotting never stops
training: a failure prints one warning line and turns plotting off for the run, and a redraw is
skipped (until the next evaluation, or ``close``) while less than ``PLOT_SPACING`` times the last
plot's duration has passed since it, so plots take at most about a tenth of the run's time, and
during the writer's first ``PLOT_AFTER_S`` seconds (a run that short is plotted at ``close``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import pathlib
import shutil
import sys
import tempfile
import time

import jax

from musicrep_jax import storage
from musicrep_jax.training import curves
from musicrep_jax.training.curves import read_jsonl  # noqa: F401  (the reader of metrics.jsonl)

CURVES = "curves.png"
PLOT_SPACING = 10.0  # A redraw waits this many times the previous plot's duration.
PLOT_AFTER_S = 30.0  # Evaluations in a run's first seconds are plotted at close (tests, demos).


class MetricWriter:
  """Writes scalars for one run directory; a no-op on processes other than 0."""

  def __init__(self, logdir: str | pathlib.Path, resume_step: int | None = None,
               plots: bool = True):
    self.logdir = storage.as_path(logdir)
    self.active = jax.process_index() == 0
    self._tb = None
    self._jsonl = None
    self._local = None  # The local mirror of a remote logdir.
    self._plots = plots  # False: no curves.png.
    self._plot_due = False  # Rows to plot since the last curves.png.
    # time.monotonic() before which a redraw at an evaluation waits (PLOT_SPACING).
    self._next_plot = time.monotonic() + PLOT_AFTER_S
    if self.active:
      self.logdir.mkdir(parents=True, exist_ok=True)
      SummaryWriter = _summary_writer_class()  # Lazy: only the writing process needs it.

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
    if split in ("train", curves.EVAL_SPLIT):  # What curves.png shows.
      self._plot_due = True
    if split == curves.EVAL_SPLIT:
      self.plot_curves(force=False)

  def plot_curves(self, force: bool = True) -> None:
    """Redraws ``curves.png`` from ``metrics.jsonl`` (``force=False``: unless the last plot was
    too recent, ``PLOT_SPACING``); a failure is one warning line and no more plots."""
    if not (self.active and self._plots and self._plot_due):
      return
    if not force and time.monotonic() < self._next_plot:
      return
    local = self._local or self.logdir
    start = time.monotonic()
    try:  # matplotlib is imported on the first plot (curves.plot).
      self._jsonl.flush()
      curves.write_curves(read_jsonl(local / "metrics.jsonl"), local / CURVES,
                          title=str(self.logdir))
    except Exception as error:  # pylint: disable=broad-except  (a plot never stops training)
      self._plots = False
      print(f"Warning: could not write {self.logdir / CURVES} ({type(error).__name__}: "
            f"{error}); training goes on without it.", flush=True)
      return
    self._plot_due = False
    self._next_plot = time.monotonic() + PLOT_SPACING * (time.monotonic() - start)

  def flush(self) -> None:
    if self.active:
      self._tb.flush()
      self._jsonl.flush()
      self._upload()

  def close(self) -> None:
    if self.active:
      self.plot_curves()
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


def tensorboard_hint(logdir) -> str:
  """How to look at the run's event files: the ``tensorboard --logdir`` command, preceded by
  how to install TensorBoard when it is not importable (the ``tensorboard`` extra)."""
  command = f"tensorboard --logdir {logdir}"
  if importlib.util.find_spec("tensorboard") is None:
    return f"pip install -e '.[tensorboard]' (TensorBoard is not installed), then {command}"
  return command


def _summary_writer_class():
  """``tensorboardX.SummaryWriter``, imported without PyTorch: tensorboardX imports ``torch``
  when it is installed only to accept its tensors, which the trainer never passes, and that
  import costs every training process over a second of CPU. A process that has imported
  ``torch`` already keeps it; a later ``import torch`` works as usual."""
  blocked = "torch" not in sys.modules
  if blocked:
    sys.modules["torch"] = None  # ``import torch`` raises ImportError while this is set.
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    if blocked and sys.modules.get("torch", False) is None:
      del sys.modules["torch"]
  return SummaryWriter
