"""Orbax checkpoints: the latest N for resuming, and the best one by a validation metric.

``<workdir>/checkpoints/<step>/{state,data}``: ``state`` is the ``TrainState`` (Orbax
``StandardSave``), ``data`` the Grain iterator state of every process (``process_i-of-n.json``),
so a resumed run sees exactly the batches it would have seen, and optional JSON items (``plateau``:
the progress of ``training/plateau.py``). Saves are asynchronous: the device -> host copy happens
in ``save``, the write in the background; ``close`` waits.

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

A damaged step (a truncated or overwritten file, missing metadata: a disk fault, a partial copy
of the workdir) is never deleted: restoring tries the steps newest first, prints one
``warning:`` line per step that cannot be read (its step and the reason), moves each such step
aside to ``<step>.corrupt`` (``.corrupt-2``... if taken; Orbax no longer sees it, so the step can
be saved again) and restores the newest good one; when no step can be read nothing is moved and
the restore is a ``UserError`` listing every step's reason. A saved state of another shape is
not damage: ``CheckpointMismatch`` (a ``ValueError``), raised at once.
"""

from __future__ import annotations

import contextlib
import gc
import pathlib
import sys
from typing import Any, Callable, Optional

import grain
import jax
import orbax.checkpoint as ocp

from musicrep_jax import storage
from musicrep_jax.errors import UserError


class CheckpointSaveError(UserError):
  """A checkpoint could not be written (a full disk, lost permissions): the run stops at once."""


class CheckpointMismatch(ValueError):
  """A saved state whose shapes differ from the model's: another config, not a damaged file."""


CORRUPT_SUFFIX = ".corrupt"
# TensorStore status codes of a failure that says nothing about the files (a network, a quota, a
# credential, memory): raised as they are, the step is not moved aside.
_NOT_DAMAGE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "PERMISSION_DENIED",
               "UNAUTHENTICATED", "CANCELLED")


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

  def save(self, step: int, state: Any, data_iterator: Any,
           json_items: Optional[dict] = None) -> None:
    """Saves ``state`` and the data iterator as step ``step``; ``json_items`` (name -> plain
    JSON dict, e.g. the plateau progress) are saved in the same step, committed with it."""
    items = {name: ocp.args.JsonSave(value) for name, value in (json_items or {}).items()}
    with self._save_errors("checkpoints", step):
      self.latest.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=grain.checkpoint.CheckpointSave(data_iterator), **items), force=True)

  def read_json(self, step: int, name: str) -> Optional[Any]:
    """The JSON item ``name`` saved with the latest manager's step ``step`` (``save``'s
    ``json_items``), or None when that step has none (saved without it)."""
    if not (self.latest.directory / str(step) / name).exists():
      return None
    return self.latest.restore(step, args=ocp.args.Composite(
        **{name: ocp.args.JsonRestore()}))[name]

  def save_best(self, step: int, state: Any, metrics: dict) -> None:
    """Offers ``state`` of ``step`` to the best manager. A best step that already exists was
    saved by an earlier attempt of this run, killed after it and before the latest checkpoint of
    that step committed (both saves are asynchronous); this attempt's state replaces it (the
    same values when the config is unchanged: training is deterministic)."""
    with self._save_errors("best", step):
      if step in self.best.all_steps():
        self.best.delete(step)
      self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                     metrics={k: float(v) for k, v in metrics.items()}, force=True)

  def wait_best(self) -> None:
    """Waits until the best manager's saves have committed (raises a failed one's error)."""
    with self._save_errors("best", None):
      self.best.wait_until_finished()

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
      for manager in (self.latest, self.best):  # Earlier saves still committing finish first.
        try:
          manager.wait_until_finished()
        except Exception:  # pylint: disable=broad-except  (the failed save's own error again)
          pass
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
    """Restores the newest readable checkpoint into ``abstract_state``'s shardings and
    ``data_iterator`` (damaged newer steps are moved aside: module docstring)."""
    def restore(manager, step):
      return manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data=grain.checkpoint.CheckpointRestore(data_iterator)))["state"]

    steps = [(self.latest, s) for s in sorted(self.latest.all_steps(), reverse=True)]
    return self._restore_first_good(steps, abstract_state, restore)

  def restore_state(self, abstract_state: Any, which: str = "best") -> tuple[Any, int]:
    """The state alone from the best checkpoint (or the latest when no best exists), or with
    ``which="latest"`` from the newest. A damaged step is moved aside and the next one tried:
    after the best, the latest steps newest first (module docstring)."""
    steps = [(self.latest, s) for s in sorted(self.latest.all_steps(), reverse=True)]
    best = self.best.best_step() if which == "best" else None
    if best is not None:
      steps.insert(0, (self.best, best))
    if not steps:
      raise FileNotFoundError("no checkpoint")
    return self._restore_first_good(steps, abstract_state, lambda manager, step: manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))["state"])

  def _restore_first_good(self, steps: list, abstract_state: Any,
                          restore: Callable[[Any, int], Any]) -> tuple[Any, int]:
    """``restore(manager, step)`` of the first ``(manager, step)`` that reads; the damaged ones
    before it are reported and moved aside, or all are listed in a ``UserError`` (nothing
    moved) when none reads. ``CheckpointMismatch`` (another model) is raised at once."""
    damaged = []
    for manager, step in steps:
      reason = None
      with _quiet_abandoned_reads() as quiet:
        try:
          check_fits(manager.directory / str(step) / "state", abstract_state)
          state = restore(manager, step)
        except (CheckpointMismatch, MemoryError):
          raise
        except Exception as error:  # pylint: disable=broad-except  (any damage: try the next)
          reason = _damage_reason(error, manager.directory)
          if reason.startswith(_NOT_DAMAGE):
            raise
        if reason is not None:
          gc.collect()  # Orbax's abandoned reads of the step end now, inside the quiet hook.
          quiet["keep"] = True  # Their TensorStore callbacks may still arrive later.
      if reason is not None:
        damaged.append((manager, step, reason))
        continue
      for bad_manager, bad_step, reason in damaged:
        moved = _move_aside(bad_manager, bad_step)
        print(f"warning: checkpoint step {bad_step} in {bad_manager.directory} cannot be restored "
              f"({reason}); {moved}, restoring step {step} of {manager.directory.name}/ instead.",
              file=sys.stderr, flush=True)
      if damaged:
        _sync_processes("musicrep_checkpoint_fallback")
        for reloaded in {id(m): m for m, _, _ in damaged}.values():
          reloaded.reload()  # The moved steps are no longer steps (a later save may reuse them).
      return state, step
    listing = "; ".join(f"{m.directory.name}/{s}: {r}" for m, s, r in damaged)
    raise UserError(f"No checkpoint in {self.workdir} can be restored ({listing}); nothing was "
                    f"moved or deleted: copy the workdir back from a backup, or train into a new "
                    f"--workdir.")

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


def _damage_reason(error: BaseException, folder) -> str:
  """The innermost cause's first line (TensorStore's own words, not Orbax's wrapper with the
  whole spec) with paths made relative to ``folder``, at most 200 characters."""
  seen = set()
  while id(error) not in seen and (error.__cause__ or error.__context__) is not None:
    seen.add(id(error))
    error = error.__cause__ or error.__context__
  text = (str(error).strip().splitlines() or [type(error).__name__])[0]
  text = text.replace(f"{folder}/", "")
  return text if len(text) <= 200 else text[:197] + "..."


def _move_aside(manager, step: int) -> str:
  """Renames the damaged ``<dir>/<step>`` to ``<step>.corrupt`` (``-2``, ``-3``... when taken;
  process 0 only) -> what happened, in words."""
  folder = manager.directory / str(step)
  if jax.process_index() != 0:
    return "process 0 moves it aside"
  target, n = folder.with_name(f"{step}{CORRUPT_SUFFIX}"), 1
  while target.exists():
    n += 1
    target = folder.with_name(f"{step}{CORRUPT_SUFFIX}-{n}")
  try:
    folder.rename(target)
  except Exception as error:  # pylint: disable=broad-except  (OSError; a store without renames)
    reason = getattr(error, "strerror", None) or _damage_reason(error, manager.directory)
    return f"it could not be moved aside ({reason}) and was left as it is"
  return f"moved aside to {target}"


def _sync_processes(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def _quiet_abandoned_reads():
  """Drops what Orbax's abandoned reads of a damaged step raise into ``sys.unraisablehook``
  (dozens of tracebacks): TensorStore's callbacks into a closed event loop, and the pending
  array reads closed when collected; anything else still reaches the previous hook. Yields a
  dict: ``keep=True`` leaves the filter installed for the rest of the process (after a damaged
  step, TensorStore's threads may call back into the closed loop after the block ends)."""
  previous = sys.unraisablehook
  state = {"keep": False}

  def hook(unraisable):
    text = str(unraisable.exc_value)
    if not ("Event loop is closed" in text or
            text.startswith("Encountered error while reading array")):
      previous(unraisable)

  sys.unraisablehook = hook
  try:
    yield state
  finally:
    if not state["keep"]:
      sys.unraisablehook = previous


def check_fits(state_dir, abstract_state: Any) -> None:
  """``CheckpointMismatch`` naming the first variable whose saved shape differs from
  ``abstract_state``'s (``params`` and ``batch_stats``), read from the checkpoint's metadata
  before Orbax starts its asynchronous reads: a failed read leaves unretrieved tasks that print
  tracebacks at exit. ``FileNotFoundError`` when the metadata cannot be read (a damaged step)."""
  metadata = ocp.PyTreeCheckpointer().metadata(state_dir)
  if metadata is None or getattr(metadata, "item_metadata", None) is None:
    raise FileNotFoundError(f"no readable metadata in {state_dir}")
  saved_tree = metadata.item_metadata.tree
  for part in ("params", "batch_stats"):
    saved = _shapes(saved_tree.get(part) or {})
    wanted = _shapes(getattr(abstract_state, part))
    for key in sorted(set(saved) | set(wanted)):
      if saved.get(key) != wanted.get(key):
        raise CheckpointMismatch(f"Requested shape: {wanted.get(key)} is not compatible with "
                                 f"the stored shape: {saved.get(key)} ({part}{key})")


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
