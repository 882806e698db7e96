"""Orbax checkpoints: the latest N for resuming, and the best one by a validation metric.

``<workdir>/checkpoints/<step>/{state,data}``: ``state`` is the ``TrainState`` (Orbax
``StandardSave``), ``data`` the Grain iterator state of every process (``process_i-of-n.json``),
so a resumed run sees exactly the batches it would have seen. Saves are asynchronous: the device
-> host copy happens in ``save``, the write in the background; ``close`` waits.

``<workdir>/best/<step>/state``: the state with the best validation metric so far (papers.md 1.4:
the papers select by validation loss), kept in its own manager so that keeping the best never
deletes the checkpoint a restart needs. A resume requires the same process count, per-process
batch and Grain worker count as the run that saved (the iterator state is per worker).

The workdir may be remote (``gs://...``, ``musicrep_jax.storage``): Orbax writes arrays through
TensorStore and marks a step finished with a commit file instead of a rename on GCS, so a run
killed mid-save resumes from the last finished step there as it does locally.

A finished workdir is restored in one place, ``musicrep_jax.training.trainer.restore_workdir``
(it rebuilds the run to restore into); only it and the trainer's final test call
``Checkpoints.restore_state``.
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any, Optional

import grain
import jax
import orbax.checkpoint as ocp

from musicrep_jax import storage
from musicrep_jax.errors import UserError


class CheckpointSaveError(UserError):
  """A checkpoint could not be written (a full disk, lost permissions): the run stops at once."""


def _os_error(error: BaseException) -> Optional[OSError]:
  """The first ``OSError`` in ``error``'s chain of causes (Orbax and TensorStore wrap them)."""
  seen = set()
  while error is not None and id(error) not in seen:
    if isinstance(error, OSError):
      return error
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  return None


class Checkpoints:
  """The two checkpoint managers of a run.

  A save that fails with an OS error (synchronously, or in the background: ``check``, ``wait``)
  raises ``CheckpointSaveError``: one line with the folder and the OS's reason. The failed step is
  never committed, so the previous checkpoint stays the one a rerun resumes from.
  """

  def __init__(self, workdir: str | pathlib.Path, *, keep: int = 3, best_metric: str = "loss",
               best_mode: str = "min", async_save: bool = True):
    workdir = storage.as_path(workdir)  # Local, or gs:// (Orbax writes through TensorStore).
    self.workdir = workdir
    self.best_metric = best_metric
    # Both managers may save the same step; on several processes their barriers need distinct
    # names (Orbax keys them by step alone: "Barrier _async_write_complete.20 already ongoing").
    self.latest = ocp.CheckpointManager(
        workdir / "checkpoints",
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix="latest")))
    self.best = ocp.CheckpointManager(
        workdir / "best",
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, best_fn=lambda metrics: metrics[best_metric],
            best_mode=best_mode, keep_checkpoints_without_metrics=False,
            enable_async_checkpointing=async_save,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix="best")))

  def latest_step(self) -> Optional[int]:
    return self.latest.latest_step()

  def save(self, step: int, state: Any, data_iterator: Any) -> None:
    with self._save_errors("checkpoints", step):
      self.latest.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=grain.checkpoint.CheckpointSave(data_iterator)), force=True)

  def save_best(self, step: int, state: Any, metrics: dict) -> None:
    with self._save_errors("best", step):
      self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                     metrics={k: float(v) for k, v in metrics.items()}, force=True)

  def check(self) -> None:
    """Raises the error of a background save that has failed (cheap: nothing waits)."""
    for name, manager in (("checkpoints", self.latest), ("best", self.best)):
      with self._save_errors(name, None):
        manager.check_for_errors()

  @contextlib.contextmanager
  def _save_errors(self, folder: str, step: Optional[int]):
    """OS errors of a save (``step``; None: a background one) -> ``CheckpointSaveError``."""
    try:
      yield
    except CheckpointSaveError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      os_error = _os_error(error)
      if os_error is None:
        raise
      where = os_error.filename or self.workdir / folder / ("" if step is None else str(step))
      # Finished steps are folders named by their number (Orbax writes into a temporary name).
      folder_path = self.workdir / "checkpoints"
      previous = max((int(p.name) for p in folder_path.iterdir()
                      if p.name.isdigit() and int(p.name) != step), default=None) \
          if folder_path.is_dir() else None
      raise CheckpointSaveError(
          f"Saving a checkpoint into {where} failed: {os_error.strerror or os_error}; the run "
          f"stopped there (latest usable checkpoint: step {previous}); fix the disk or folder, "
          f"then rerun to resume.") from None

  def restore_latest(self, abstract_state: Any, data_iterator: Any) -> tuple[Any, int]:
    """Restores the newest checkpoint into ``abstract_state``'s shardings and ``data_iterator``."""
    step = self.latest.latest_step()
    check_fits(self.latest.directory / str(step) / "state", abstract_state)
    restored = self.latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=grain.checkpoint.CheckpointRestore(data_iterator)))
    return restored["state"], step

  def restore_state(self, abstract_state: Any, which: str = "best") -> tuple[Any, int]:
    """The state alone from the best checkpoint (or the latest when no best exists)."""
    manager = self.best if which == "best" and self.best.best_step() is not None else self.latest
    step = manager.best_step() if manager is self.best else manager.latest_step()
    if step is None:
      raise FileNotFoundError("no checkpoint")
    check_fits(manager.directory / str(step) / "state", abstract_state)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))
    return restored["state"], step

  def wait(self, raise_errors: bool = True) -> None:
    """Waits for the background saves; ``raise_errors=False``: a failed one is dropped silently
    (an error is already on its way up)."""
    for name, manager in (("checkpoints", self.latest), ("best", self.best)):
      try:
        with self._save_errors(name, None):
          manager.wait_until_finished()
      except Exception:  # pylint: disable=broad-except
        if raise_errors:
          raise

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def check_fits(state_dir, abstract_state: Any) -> None:
  """``ValueError`` naming the first variable whose saved shape differs from ``abstract_state``'s
  (``params`` and ``batch_stats``), read from the checkpoint's metadata before Orbax starts its
  asynchronous reads: a failed read leaves unretrieved tasks that print tracebacks at exit."""
  saved_tree = ocp.PyTreeCheckpointer().metadata(state_dir).item_metadata.tree
  for part in ("params", "batch_stats"):
    saved = _shapes(saved_tree.get(part) or {})
    wanted = _shapes(getattr(abstract_state, part))
    for key in sorted(set(saved) | set(wanted)):
      if saved.get(key) != wanted.get(key):
        raise ValueError(f"Requested shape: {wanted.get(key)} is not compatible with the stored "
                         f"shape: {saved.get(key)} ({part}{key})")


def _shapes(tree: Any) -> dict:
  """``{keystr(path): shape}`` of a tree's array leaves (anything with a ``shape``)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
  return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in leaves}


def load_state_as_numpy(state_dir: str | pathlib.Path) -> dict:
  """A saved ``TrainState`` item (``<workdir>/checkpoints/<step>/state``) as nested numpy dicts,
  whatever mesh wrote it: for parity checks, inspection and export."""
  import numpy as np

  checkpointer = ocp.PyTreeCheckpointer()
  tree = checkpointer.metadata(state_dir).item_metadata.tree
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return checkpointer.restore(state_dir, args=ocp.args.PyTreeRestore(restore_args=restore_args))
