"""A run's workdir survives bad input: every refused start leaves a finished workdir as it was
(one `error:` line, exit 2, no traceback); the workdir records its data, so `eval` needs no
--data-dir; a second `train` into a live workdir is refused naming the holder, a stale lock is
taken over; a resume drops the lost attempt's metrics rows."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from musicrep_jax.training.writers import read_jsonl
from tests.helpers import REPO, TINY_CONFIG, run_cli

pytestmark = pytest.mark.slow


def _train_args(workdir, data_dir, *extra):
  return ["train", "--config", TINY_CONFIG, "--workdir", str(workdir), "--data-dir",
          str(data_dir), *extra]


@pytest.fixture(scope="module")
def finished(tiny_data_dir, tmp_path_factory):
  """One finished tiny run (20 steps) on the prepared shards, shared by the whole module."""
  workdir = tmp_path_factory.mktemp("finished") / "wd"
  run_cli(_train_args(workdir, tiny_data_dir))
  return workdir


def _snapshot(workdir: pathlib.Path) -> tuple:
  files = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
  return (files, (workdir / "config.json").read_bytes(),
          (workdir / "metrics.jsonl").read_bytes())


def _read_only_dir(tmp_path) -> pathlib.Path:
  """A folder nobody may write into: chmod 555, or for root (who ignores modes) one in sysfs."""
  if os.geteuid() == 0:
    return pathlib.Path("/sys/musicrep_workdir")
  folder = tmp_path / "read_only"
  folder.mkdir()
  folder.chmod(0o555)
  return folder


# (name, arguments given the finished workdir W and the data D, words the error line must hold).
CASES = [
    ("unknown model on a finished workdir",
     lambda w, d, t: _train_args(w, d, "--config.model.name=nonexistent_model"),
     ["Unknown model 'nonexistent_model'"]),
    ("changed architecture on resume",
     lambda w, d, t: _train_args(w, d, "--config.model.kwargs.channels=(8,8,8,16,16,8)"),
     ["resuming is refused", "model.kwargs.channels", "-> [8, 8, 8, 16, 16, 8]"]),
    ("changed batch size on resume",
     lambda w, d, t: _train_args(w, d, "--config.batch_size=8"),
     ["resuming is refused", "batch_size: 16 -> 8", "--allow-config-change batch_size"]),
    ("changed learning rate on resume",
     lambda w, d, t: _train_args(w, d, "--config.optimizer.learning_rate=0.5"),
     ["resuming is refused", "optimizer.learning_rate"]),
    ("allowed architecture change that the checkpoint cannot hold",
     lambda w, d, t: _train_args(w, d, "--config.model.kwargs.channels=(8,8,8,16,16,8)",
                                 "--allow-config-change", "model.kwargs.channels"),
     ["does not fit the model", "stored shape"]),
    ("typo after the colon",
     lambda w, d, t: ["train", "--config", "demo:runloacl", "--workdir", str(w)],
     ["'runloacl'", "runlocal"]),
    ("channels of the wrong length",
     lambda w, d, t: _train_args(t / "new", d, "--config.model.kwargs.channels=(8,8)"),
     ["config.model.kwargs do not fit model 'sample_cnn'", "channels"]),
    ("read-only workdir",
     lambda w, d, t: _train_args(_read_only_dir(t) / "wd", d),
     ["Cannot write into the workdir"]),
    ("workdir that is a regular file",
     lambda w, d, t: _train_args(_touch(t / "a_file"), d),
     ["is a file, not a folder"]),
]


def _touch(path: pathlib.Path) -> pathlib.Path:
  path.write_text("not a workdir\n")
  return path


@pytest.mark.parametrize("name,make_args,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(finished, tiny_data_dir, tmp_path, name,
                                                   make_args, words):
  before = _snapshot(finished)
  proc = run_cli(make_args(finished, tiny_data_dir, tmp_path), check=False)
  assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1, proc.stderr[-3000:]
  for word in words:
    assert word in lines[0], lines[0]
  assert _snapshot(finished) == before
  assert not (tmp_path / "new").exists()  # A failed fresh start creates no workdir either.
  print(f"{name}: {lines[0]}")  # The table of the closing note (pytest -s).


def test_eval_needs_no_data_dir(finished, tiny_data_dir):
  info = json.loads((finished / "run_info.json").read_text())
  assert info["data_dir"] == str(tiny_data_dir) and info["sample_rate"] == 16000
  assert info["model"] == "sample_cnn" and info["tag_names"]
  proc = run_cli(["eval", "--workdir", str(finished)])
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["step"] == 20 and 0.0 <= result["roc_auc"] <= 1.0


def _hold_lock(workdir: pathlib.Path) -> subprocess.Popen:
  """A process holding the workdir's train lock (as a live run does) until killed."""
  holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
      import time
      from musicrep_jax import locks
      from musicrep_jax.training import trainer
      with locks.folder_lock({str(workdir)!r}, trainer.LOCK_NAME, ""):
        print("locked", flush=True)
        time.sleep(600)
  """)], stdout=subprocess.PIPE, text=True, cwd=REPO)
  assert holder.stdout.readline().strip() == "locked"
  return holder


def test_live_lock_refuses_stale_lock_is_taken_and_resume_drops_lost_rows(
    finished, tiny_data_dir, tmp_path):
  """A copy of the finished run rolled back to its step-10 checkpoint (as after a SIGKILL at
  step 20 before the later saves): a live holder of its lock makes `train` fail at once naming
  its pid; once the holder is dead, `train` resumes from step 10, and metrics.jsonl holds each
  step once, with the uninterrupted run's losses."""
  workdir = tmp_path / "wd"
  shutil.copytree(finished, workdir)
  for step in (15, 20):
    shutil.rmtree(workdir / "checkpoints" / str(step))
  shutil.rmtree(workdir / "best")
  holder = _hold_lock(workdir)
  try:
    proc = run_cli(_train_args(workdir, tiny_data_dir), check=False)
  finally:
    holder.kill()
    holder.wait()
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  line, = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert f"pid {holder.pid}" in line and "Another `musicrep train`" in line
  print(f"second train into a live workdir: {line}")

  resumed = run_cli(_train_args(workdir, tiny_data_dir))  # The dead holder's lock is stale.
  assert "(step 10)" in resumed.stdout
  rows = [r for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == "train"]
  assert [r["step"] for r in rows] == list(range(1, 21))
  reference = {r["step"]: r["loss"] for r in read_jsonl(finished / "metrics.jsonl")
               if r["split"] == "train"}
  np.testing.assert_allclose([r["loss"] for r in rows], [reference[s] for s in range(1, 21)],
                             rtol=1e-6)
  assert all(r["learning_rate"] > 0 for r in rows)


# --- Faults during a run (issue 17: "a fault-injection suite") ---------------------------------
_METRICS = ("loss", "grad_norm", "learning_rate", "roc_auc", "pr_auc")


def _final_params(workdir: pathlib.Path) -> dict:
  from musicrep_jax.training.checkpoints import load_state_as_numpy

  return load_state_as_numpy(workdir / "checkpoints" / "20" / "state")["params"]


def _assert_same_run(workdir: pathlib.Path, reference: pathlib.Path) -> None:
  """``workdir`` ended where the uninterrupted ``reference`` did: the same step-20 parameters
  (bit for bit), and each step's training and validation rows and the test row hold the same
  values (one row per step and split: the lost attempt's rows were dropped)."""
  import jax

  jax.tree.map(np.testing.assert_array_equal, _final_params(workdir), _final_params(reference))

  def rows(folder):
    out = [(r["step"], r["split"], {k: r[k] for k in _METRICS if k in r})
           for r in read_jsonl(folder / "metrics.jsonl")]
    assert len({(s, split) for s, split, _ in out}) == len(out)
    return sorted(out, key=lambda r: (r[0], r[1]))

  assert rows(workdir) == rows(reference)


def _train_here(capsys, workdir, data_dir) -> tuple[str, str]:
  """`musicrep train` in this process (no interpreter start): -> (stdout, stderr); exit 0."""
  from musicrep_jax import cli

  code = cli.main(_train_args(workdir, data_dir))
  out, err = capsys.readouterr()
  assert code == 0, err[-3000:]
  return out, err


def test_damaged_latest_checkpoint_falls_back_and_resumes_onto_the_same_run(
    finished, tiny_data_dir, tmp_path, capsys):
  """The newest step (20) of a finished run's copy has its array files cut in half (a disk
  fault, a partial copy): `train` warns once naming step 20 and the reason, moves it aside to
  `20.corrupt` (kept), resumes from step 15 and ends with the uninterrupted run's step-20
  parameters and metrics (its `best/20` from before is replaced by the same state)."""
  workdir = tmp_path / "wd"
  shutil.copytree(finished, workdir)
  damaged = list((workdir / "checkpoints" / "20" / "state").glob("ocdbt.process_*/d/*"))
  for path in damaged:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  out, err = _train_here(capsys, workdir, tiny_data_dir)
  line, = [l for l in err.splitlines() if l.startswith("warning:")]
  assert "checkpoint step 20" in line and "restoring step 15" in line, line
  assert "Traceback" not in err and "Event loop is closed" not in err
  assert "(step 15)" in out
  assert (workdir / "checkpoints" / "20.corrupt" / "state").is_dir()
  _assert_same_run(workdir, finished)
  print(f"damaged latest checkpoint: {line}")


_KILL_DURING_SAVE = """
import asyncio, os, pathlib, signal, sys
from orbax.checkpoint._src.path import atomicity

finalize = atomicity.AtomicRenameTemporaryPath.finalize

async def killing_finalize(self):  # SIGKILL as step 20's latest checkpoint is about to commit.
  final = pathlib.Path(str(self.get_final()))
  if final.parent.name == "checkpoints" and final.name == "20":
    for _ in range(3000):  # Until the best checkpoint of the same step has committed.
      if (final.parent.parent / "best" / "20").exists():
        break
      await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)
  return await finalize(self)

atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
from musicrep_jax import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigkill_during_an_asynchronous_save_resumes_onto_the_same_run(
    finished, tiny_data_dir, tmp_path, capsys):
  """A copy of the finished run rolled back to step 15 resumes and is SIGKILLed while its
  step-20 saves are in flight: `best/20` committed, `checkpoints/20` still Orbax's temporary
  folder (the kill is injected in Orbax's commit of that step). The rerun resumes from 15 and
  ends with the uninterrupted run's parameters and metrics (it replaces `best/20` instead of
  failing on "Checkpoint for step 20 already exists")."""
  workdir = tmp_path / "wd"
  shutil.copytree(finished, workdir)
  shutil.rmtree(workdir / "checkpoints" / "20")
  shutil.rmtree(workdir / "best")
  killed = subprocess.run([sys.executable, "-c", _KILL_DURING_SAVE,
                           *_train_args(workdir, tiny_data_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
  assert killed.returncode == -9, killed.stderr[-3000:]
  assert (workdir / "best" / "20").is_dir() and not (workdir / "checkpoints" / "20").exists()
  assert list((workdir / "checkpoints").glob("20.orbax-checkpoint-tmp*"))
  out, err = _train_here(capsys, workdir, tiny_data_dir)
  assert "(step 15)" in out and "Traceback" not in err
  _assert_same_run(workdir, finished)
  assert not list((workdir / "checkpoints").glob("*tmp*"))
