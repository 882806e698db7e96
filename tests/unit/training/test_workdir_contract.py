"""The trainer's side of a workdir's integrity: config diffs for a resume, metrics that drop a
lost attempt's rows (and TensorBoard told to purge them), the learning rate in the logs, and a
failed checkpoint save that stops the run at once with one line."""

import errno
import json
import struct

import orbax.checkpoint as ocp
import pytest

from musicrep_jax import cli, config_loading
from musicrep_jax.training import optimizers, trainer
from musicrep_jax.training.writers import MetricWriter, read_jsonl
from tests.configs import tiny as tiny_config
from tests.helpers import TINY_CONFIG


def test_config_diff_names_changed_added_and_removed_leaves():
  old = {"a": 1, "b": {"c": [8, 16], "d": "x"}, "gone": 1}
  new = {"a": 1, "b": {"c": [8, 8], "d": "x", "e": 2}}
  assert config_loading.config_diff(old, new) == [
      ("b.c", [8, 16], [8, 8]), ("b.e", "<absent>", 2), ("gone", 1, "<absent>")]
  assert config_loading.config_diff(old, old) == []


def _events(logdir):
  """Every ``Event`` in the TensorBoard files of ``logdir`` (TFRecord framing), file by file."""
  from tensorboardX.proto import event_pb2

  events = []
  for path in sorted((logdir / "tensorboard").glob("events.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset:offset + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[offset + 12:offset + 12 + length])
      events.append(event)
      offset += 12 + length + 4
  return events


def test_resumed_writer_drops_rows_after_the_restored_step_and_purges_tensorboard(tmp_path):
  writer = MetricWriter(tmp_path)
  for step in range(1, 11):
    writer.write(step, "train", {"loss": float(step)})
  writer.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 11, "spl')  # Torn by a kill.
  resumed = MetricWriter(tmp_path, resume_step=5)
  resumed.write(6, "train", {"loss": 60.0})
  resumed.close()
  rows = read_jsonl(tmp_path / "metrics.jsonl")
  assert [(r["step"], r["loss"]) for r in rows] == [(s, float(s)) for s in range(1, 6)] + [(6, 60.)]
  starts = [e.step for e in _events(tmp_path) if e.HasField("session_log")
            and e.session_log.status == e.session_log.START]
  assert starts == [6]  # TensorBoard drops the first session's events from step 6 on.


def _os_error():
  return OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["save", "background"])
def test_failed_checkpoint_save_stops_the_run_at_that_save(tmp_path, tiny_data_dir, capsys,
                                                           monkeypatch, where):
  """The latest manager's save of step 10 fails with a full disk: in ``save`` itself, or in the
  background (reported by ``check_for_errors``, as Orbax's async saves do). The run stops at
  once (step 10; step 11 for the background error, never the next save at 15) with one line
  naming the folder and the OS error, and step 5 stays restorable."""
  failed = {}
  save, check = ocp.CheckpointManager.save, ocp.CheckpointManager.check_for_errors

  def failing_save(self, step, *args, **kwargs):
    if step == 10 and self.directory.name == "checkpoints":
      if where == "save":
        raise RuntimeError("TensorStore write failed") from _os_error()
      failed["step"] = step  # Nothing committed: the background write "fails" later.
      return True
    return save(self, step, *args, **kwargs)

  def failing_check(self):
    if failed and self.directory.name == "checkpoints":
      raise _os_error()
    return check(self)

  monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save)
  monkeypatch.setattr(ocp.CheckpointManager, "check_for_errors", failing_check)
  workdir = tmp_path / "wd"
  code = cli.main(["train", "--config", TINY_CONFIG, "--workdir", str(workdir), "--data-dir",
                   str(tiny_data_dir)])
  err = capsys.readouterr().err
  assert code == 2 and "Traceback" not in err, err
  line, = [l for l in err.splitlines() if l.startswith("error:")]
  assert "No space left on device" in line and str(workdir / "checkpoints") in line, line
  assert "latest usable checkpoint: step 5" in line, line
  rows = [r for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "train"]
  assert rows[-1]["step"] == 10
  # The learning rate of each logged step is the schedule's (the update of step s uses s - 1).
  schedule = optimizers.make_schedule(tiny_config.get_config().optimizer, 20)
  assert [r["learning_rate"] for r in rows] == pytest.approx(
      [float(schedule(r["step"] - 1)) for r in rows])
  monkeypatch.undo()
  assert trainer.evaluate_workdir(workdir, "test", which="latest")["step"] == 5
  assert json.loads((workdir / "run_info.json").read_text())["data_dir"] == str(tiny_data_dir)
