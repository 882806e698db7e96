"""Plateau stages in a real run (issue 18, training/plateau.py): the tiny config at a learning rate
too high for it (SGD 1.0) overshoots, so its validation loss stops improving; the stage then
restarts from the best checkpoint with a fresh optimizer at x0.2, improves, plateaus again and
the run ends early. A run SIGKILLed in the middle of its last stage resumes into the same curve.

Nothing here is scripted: where the plateaus fall comes from the run's own validation losses
(``_expected``, the Keras rule applied to the logged rows), and the tests fail if the run has
no plateau to show."""

import contextlib
import io
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from musicrep_jax.training.checkpoints import load_state_as_numpy
from musicrep_jax.training.writers import read_jsonl
from tests.helpers import REPO, TINY_CONFIG

pytestmark = pytest.mark.slow

LR, FACTOR, PATIENCE, STAGES, STEPS, EVAL_EVERY = 1.0, 0.2, 2, 2, 40, 2
DECAY = 1e-6  # sgd_nesterov's Keras decay (the tiny config's optimizer).


def _args(workdir, data_dir):
  return ["train", "--config", TINY_CONFIG, "--workdir", str(workdir), "--data-dir",
          str(data_dir), f"--config.num_train_steps={STEPS}", f"--config.eval_every={EVAL_EVERY}",
          "--config.checkpoint_every=100", "--config.checkpoint.keep=100",
          "--config.optimizer.schedule=keras_decay", f"--config.optimizer.learning_rate={LR}",
          f"--config.plateau.num_stages={STAGES}", f"--config.plateau.patience={PATIENCE}",
          f"--config.plateau.factor={FACTOR}"]


def _train_here(capsys, args) -> str:
  from musicrep_jax import cli

  code = cli.main(args)
  out, err = capsys.readouterr()
  assert code == 0 and "Traceback" not in err, err[-3000:]
  return out


@pytest.fixture(scope="module")
def reference(tiny_data_dir, tmp_path_factory):
  """The uninterrupted run, in this process -> (workdir, its stdout)."""
  from musicrep_jax import cli

  workdir = tmp_path_factory.mktemp("plateau") / "wd"
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    code = cli.main(_args(workdir, tiny_data_dir))
  assert code == 0, out.getvalue()[-3000:]
  return workdir, out.getvalue()


def _rows(workdir, split):
  return [r for r in read_jsonl(workdir / "metrics.jsonl") if r["split"] == split]


def _expected(losses: dict) -> tuple[list, int]:
  """Keras' re-training rule on the evaluations ``{step: loss}``: -> ([(change step, best step
  of the run before it)], the step the last stage's plateau ends the run at)."""
  changes, stage, stage_best, wait, run_best = [], 0, None, 0, None
  for step in sorted(losses):
    value = losses[step]
    if run_best is None or value < losses[run_best]:
      run_best = step
    if stage_best is None or value < stage_best:
      stage_best, wait = value, 0
    else:
      wait += 1
    if wait == PATIENCE:
      if stage + 1 == STAGES:
        return changes, step
      changes.append((step, run_best))
      stage, stage_best, wait = stage + 1, None, 0
  return changes, None


def _state(workdir, step):
  return load_state_as_numpy(workdir / "checkpoints" / str(step) / "state")


def test_stages_reload_the_best_lower_the_rate_and_end_the_run(reference):
  workdir, out = reference
  losses = {r["step"]: r["loss"] for r in _rows(workdir, "validation")}
  changes, stop = _expected(losses)
  assert changes and stop is not None and stop < STEPS, (losses, changes, stop)
  (change, best_before), = changes  # STAGES = 2: one change, then the last stage's plateau.
  print(f"validation loss: {losses}; stage 2 from step {change} (best {best_before}); "
        f"end at step {stop}")

  # One line per stage change and one for the end, at the steps the rule gives.
  lines = [l for l in out.splitlines() if "plateau:" in l]
  assert len(lines) == 2, out[-3000:]
  assert lines[0].startswith(f"step {change}: plateau:") and "stage 2 of 2" in lines[0]
  assert f"from the best checkpoint (step {best_before})" in lines[0]
  assert lines[1].startswith(f"step {stop}: plateau:") and "training ends" in lines[1]

  # The run ends there: no step trained after it; the final test uses the best checkpoint.
  train = _rows(workdir, "train")
  assert [r["step"] for r in train] == list(range(1, stop + 1))
  test, = _rows(workdir, "test")
  assert test["step"] == min(losses, key=losses.get)
  result = json.loads(out.strip().splitlines()[-1])
  assert (result["step"], result["best_step"]) == (stop, test["step"])
  assert result["compilations"] == 1  # One train step for every stage.
  # The rate: the Keras decay from step 1, then x0.2 with the decay counter restarted.
  expected = [LR / (1 + DECAY * (s - 1)) if s <= change else
              FACTOR * LR / (1 + DECAY * (s - 1 - change)) for s in range(1, stop + 1)]
  np.testing.assert_allclose([r["learning_rate"] for r in train], expected, rtol=1e-6)

  # The new stage starts from the best checkpoint's weights and statistics (bit for bit), not
  # from where training was, with a fresh optimizer state at the stage's scale.
  restarted, best, before = (_state(workdir, s) for s in (change, best_before, change - 2))
  for part in ("params", "batch_stats"):
    jax.tree.map(np.testing.assert_array_equal, restarted[part], best[part])
  assert not np.array_equal(restarted["params"]["Dense_0"]["kernel"],
                            before["params"]["Dense_0"]["kernel"])
  (trace, schedule), scale = restarted["opt_state"]
  assert all(not np.any(x) for x in jax.tree.leaves(trace)) and int(schedule["count"]) == 0
  assert float(scale["scale"]) == pytest.approx(FACTOR)
  assert int(restarted["step"]) == change


_KILL_MID_STAGE = """
import os, pathlib, signal, sys, time
from musicrep_jax.training import writers

write = writers.MetricWriter.write
kill_at = int(sys.argv[1])

def killing_write(self, step, split, scalars):  # SIGKILL once step kill_at's row is written,
  write(self, step, split, scalars)              # after the checkpoint of the step before.
  if step == kill_at and split == "train":
    committed = pathlib.Path(self.logdir) / "checkpoints" / str(kill_at - 1)
    for _ in range(3000):
      if committed.is_dir():
        break
      time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)

writers.MetricWriter.write = killing_write
from musicrep_jax import cli
sys.exit(cli.main(sys.argv[2:]))
"""


def test_sigkill_mid_stage_resumes_into_the_same_curve(reference, tiny_data_dir, tmp_path,
                                                       capsys):
  """Killed one step after the evaluation before the end (stage 2, one evaluation without
  improvement, the best checkpoint from this stage): the rerun resumes there and ends as the
  uninterrupted run did: the same step, every metrics row, the same parameters bit for bit."""
  ref, _ = reference
  losses = {r["step"]: r["loss"] for r in _rows(ref, "validation")}
  [(change, _)], stop = _expected(losses)
  kill_at = stop - EVAL_EVERY + 1
  assert kill_at > change + EVAL_EVERY  # Mid-stage: the stage has had evaluations.
  workdir = tmp_path / "wd"
  killed = subprocess.run([sys.executable, "-c", _KILL_MID_STAGE, str(kill_at),
                           *_args(workdir, tiny_data_dir)], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"))
  assert killed.returncode == -9, killed.stderr[-3000:]
  assert not (workdir / "checkpoints" / str(stop)).exists()

  out = _train_here(capsys, _args(workdir, tiny_data_dir))
  assert f"(step {kill_at - 1})" in out
  assert "Plateau stage 2, 1 evaluation(s) without improvement." in out
  lines = [l for l in out.splitlines() if "plateau:" in l]
  assert len(lines) == 1 and lines[0].startswith(f"step {stop}:"), out[-3000:]

  def rows(folder):
    out = [(r["step"], r["split"], {k: v for k, v in r.items() if k not in _TIMES})
           for r in read_jsonl(folder / "metrics.jsonl")]
    assert len({(s, split) for s, split, _ in out}) == len(out)  # The lost rows were dropped.
    return sorted(out, key=lambda r: (r[0], r[1]))

  assert rows(workdir) == rows(ref)
  jax.tree.map(np.testing.assert_array_equal, _state(workdir, stop), _state(ref, stop))
  assert sorted(p.name for p in (workdir / "best").iterdir()) == \
      sorted(p.name for p in (ref / "best").iterdir())


_TIMES = ("steps_per_s", "samples_per_s", "time", "wall_time")
