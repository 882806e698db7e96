"""A trained workdir back as a model: ``serving.inference.load_trained`` on the one restore path
(``training.trainer.restore_workdir``), its errors, and that no other module restores a
checkpoint on its own."""

import ast
import json
import pathlib

import jax
import numpy as np
import pytest

import musicrep_jax
from musicrep_jax.errors import UserError
from musicrep_jax.serving.inference import load_trained
from musicrep_jax.training import checkpoints, trainer
from tests.helpers import make_workdir

PACKAGE = pathlib.Path(musicrep_jax.__file__).parent


def _callers(attribute: str) -> set:
  """``(module path, enclosing function)`` of every call of ``<attribute>`` or
  ``x.<attribute>`` in the package."""
  found = set()
  for path in sorted(PACKAGE.rglob("*.py")):
    tree = ast.parse(path.read_text(), str(path))
    for function in ast.walk(tree):
      if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      for node in ast.walk(function):
        if isinstance(node, ast.Call) and attribute in (getattr(node.func, "attr", None),
                                                        getattr(node.func, "id", None)):
          found.add((path.relative_to(PACKAGE).as_posix(), function.name))
  return found


def test_restore_workdir_is_the_one_restore_path():
  """A finished workdir is restored only by ``restore_workdir``; the trainer's final test
  (``_train_in``, the body of ``train``) restores the best state of the run it is finishing
  (its own managers, no rebuild), as does a plateau stage that restarts from the run's best
  weights (``_next_stage``). Nothing else reads a checkpoint into a model, e.g. through
  ``load_state_as_numpy`` (the old copy in feature extraction)."""
  assert _callers("restore_state") == {("training/trainer.py", "restore_workdir"),
                                       ("training/trainer.py", "_train_in"),
                                       ("training/trainer.py", "_next_stage")}
  assert _callers("load_state_as_numpy") == set()
  assert _callers("restore_workdir") >= {
      ("serving/inference.py", "load_trained"), ("training/trainer.py", "evaluate_workdir"),
      ("systems/multiscale/features.py", "load_extractor"),
      ("systems/ivector/hybrid.py", "dcnn_clip_outputs")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_data_dir):
  return make_workdir(tmp_path_factory.mktemp("inference") / "wd", tiny_data_dir)


def test_load_trained_holds_the_saved_state(workdir, tiny_data_dir):
  trained = load_trained(workdir, str(tiny_data_dir))
  saved = checkpoints.load_state_as_numpy(workdir / "best" / "1" / "state")
  jax.tree.map(np.testing.assert_array_equal, trained.variables,
               {"params": saved["params"], "batch_stats": saved["batch_stats"]})
  assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(trained.variables))
  assert (trained.step, trained.workdir, trained.sample_rate) == (1, workdir, 16000)
  assert trained.input_length == 243 and len(trained.tag_names) == 24
  restored = trainer.restore_workdir(workdir, str(tiny_data_dir))
  assert restored.run.model == trained.model and restored.step == 1
  assert restored.config.to_dict() == trained.config.to_dict()


def test_restore_errors_name_the_problem(workdir, tiny_data_dir, tmp_path):
  with pytest.raises(UserError, match="is not a training workdir"):
    load_trained(tmp_path)
  (tmp_path / "config.json").write_text((workdir / "config.json").read_text())
  with pytest.raises(UserError, match="No checkpoint in"):
    load_trained(tmp_path, str(tiny_data_dir))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # Nothing created.
  with pytest.raises(UserError, match="No checkpoint in"):  # Only a best checkpoint.
    load_trained(workdir, str(tiny_data_dir), "latest")


def test_a_checkpoint_that_does_not_fit_the_model_is_a_user_error(workdir, tiny_data_dir,
                                                                  tmp_path):
  other = tmp_path / "wd"
  other.mkdir()
  for sub in ("best", "checkpoints"):
    (other / sub).symlink_to(workdir / sub)
  config = json.loads((workdir / "config.json").read_text())
  config["model"]["kwargs"]["channels"] = [c + 1 for c in config["model"]["kwargs"]["channels"]]
  (other / "config.json").write_text(json.dumps(config))
  with pytest.raises(UserError, match="does not fit the model its config.json builds on"):
    trainer.restore_workdir(other, str(tiny_data_dir))
