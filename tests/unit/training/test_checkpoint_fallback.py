"""A damaged checkpoint step (issue 17: "a corrupted latest checkpoint falls back to the previous
one"): ``Checkpoints`` restores the newest step that reads, prints one ``warning:`` line per
damaged step naming it and the reason, moves the damaged step aside to ``<step>.corrupt`` (never
deleted) so that it can be saved again; with no readable step it is one ``UserError`` and
nothing is moved. A saved state of another shape is not damage and is refused at once. (The
resumed run after a fallback, equal to an uninterrupted one: tests/e2e/test_workdir_safety.py.)"""

from __future__ import annotations

import shutil

import jax
import numpy as np
import pytest

from musicrep_jax.data.shards import open_shards
from musicrep_jax.errors import UserError
from musicrep_jax.training import checkpoints, trainer
from tests.configs import tiny as tiny_config

# Orbax's abandoned reads of a damaged step must not leak tracebacks (``sys.unraisablehook``).
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.fixture(scope="module")
def saved(tiny_data_dir, tmp_path_factory):
  """The tiny run's initial state saved (synchronously) as steps 1, 2 and 3, each with its params
  shifted by the step, so each step's state is recognisable; -> (run, folder, states by step)."""
  run = trainer.build_run(tiny_config.get_config(), open_shards(tiny_data_dir))
  folder = tmp_path_factory.mktemp("fallback") / "wd"
  base = run.create_state(jax.random.key(0))
  saver = checkpoints.Checkpoints(folder, async_save=False)
  states = {}
  for step in (1, 2, 3):
    states[step] = base.replace(params=jax.tree.map(lambda x, s=step: x + s, base.params))
    saver.save(step, states[step], trainer.make_train_iterator(run))
  saver.close()
  return run, folder, states


@pytest.fixture
def workdir(saved, tmp_path):
  """A fresh copy of the saved steps for one test (each test damages its own)."""
  run, folder, states = saved
  copy = tmp_path / "wd"
  shutil.copytree(folder, copy)
  return run, copy, states


def _truncate_arrays(step_dir):
  """Every array data file of ``step_dir``'s state (OCDBT's ``ocdbt.process_*/d/``) cut to half
  its bytes (a partial copy); the metadata still reads."""
  files = list((step_dir / "state").glob("ocdbt.process_*/d/*"))
  assert files
  for path in files:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _warnings(capsys) -> list[str]:
  return [l for l in capsys.readouterr().err.splitlines() if l.startswith("warning:")]


def test_damaged_latest_step_falls_back_to_the_previous_one(workdir, capsys):
  run, folder, states = workdir
  _truncate_arrays(folder / "checkpoints" / "3")
  ckpt = checkpoints.Checkpoints(folder, async_save=False)
  state, step = ckpt.restore_latest(trainer.abstract_state(run), trainer.make_train_iterator(run))
  assert step == 2
  for got, want in zip(_leaves(state), _leaves(states[2])):
    np.testing.assert_array_equal(got, want)
  line, = _warnings(capsys)
  assert "checkpoint step 3" in line and "cannot be restored" in line, line
  assert "OUT_OF_RANGE" in line or "DATA_LOSS" in line, line  # TensorStore's reason.
  assert f"moved aside to {folder / 'checkpoints' / '3.corrupt'}" in line, line
  assert "restoring step 2" in line, line
  assert not (folder / "checkpoints" / "3").exists()  # Moved, not deleted:
  assert (folder / "checkpoints" / "3.corrupt" / "state").is_dir()
  # Orbax no longer counts it: the resumed run saves step 3 again.
  assert ckpt.latest_step() == 2
  ckpt.save(3, states[3], trainer.make_train_iterator(run))
  ckpt.wait()
  ckpt.close()
  again, step = checkpoints.Checkpoints(folder, async_save=False).restore_state(
      trainer.abstract_state(run), "latest")
  assert step == 3 and np.array_equal(_leaves(again)[0], _leaves(states[3])[0])


def test_missing_metadata_and_a_second_damaged_step_fall_back_through_restore_workdir(
    workdir, tiny_data_dir, capsys):
  """``restore_workdir(..., which="latest")`` (eval, export, embed): step 3 without its
  ``_METADATA``, step 2 with garbage arrays; step 1 is restored, two warning lines; a second
  damaged copy of a step is moved aside under another name."""
  run, folder, states = workdir
  (folder / "config.json").write_text(tiny_config.get_config().to_json())
  (folder / "checkpoints" / "3" / "state" / "_METADATA").unlink()
  for path in (folder / "checkpoints" / "2" / "state").glob("ocdbt.process_*/d/*"):
    path.write_bytes(b"garbage")
  (folder / "checkpoints" / "3.corrupt").mkdir()  # From an earlier fallback.
  restored = trainer.restore_workdir(folder, str(tiny_data_dir), which="latest")
  assert restored.step == 1
  np.testing.assert_array_equal(_leaves(restored.state)[0], _leaves(states[1])[0])
  lines = _warnings(capsys)
  assert [l.split(" in ")[0] for l in lines] == ["warning: checkpoint step 3",
                                                 "warning: checkpoint step 2"], lines
  assert "no readable metadata" in lines[0] and "3.corrupt-2" in lines[0], lines
  print("\n".join(lines))  # The table of the closing note (pytest -s).
  assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
      "1", "2.corrupt", "3.corrupt", "3.corrupt-2"]


def test_no_readable_step_is_one_line_and_moves_nothing(workdir, capsys):
  run, folder, _ = workdir
  for step in (1, 2, 3):
    _truncate_arrays(folder / "checkpoints" / str(step))
  before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
  ckpt = checkpoints.Checkpoints(folder, async_save=False)
  with pytest.raises(UserError) as error:
    ckpt.restore_latest(trainer.abstract_state(run), trainer.make_train_iterator(run))
  message = str(error.value)
  assert "\n" not in message and "No checkpoint in" in message, message
  assert all(f"checkpoints/{s}: " in message for s in (3, 2, 1)), message
  assert "nothing was moved or deleted" in message
  assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
  assert not _warnings(capsys)
  print(f"error: {message}")


def test_a_state_of_another_shape_is_refused_not_moved(workdir, tiny_data_dir):
  _, folder, _ = workdir
  config = tiny_config.get_config()
  config.model.kwargs.channels = (8, 8, 8, 16, 16, 8)
  other = trainer.build_run(config, open_shards(tiny_data_dir))
  ckpt = checkpoints.Checkpoints(folder, async_save=False)
  with pytest.raises(checkpoints.CheckpointMismatch, match="stored shape"):
    ckpt.restore_latest(trainer.abstract_state(other), trainer.make_train_iterator(other))
  assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["1", "2", "3"]
