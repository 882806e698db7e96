"""Every packaged config: it loads with each variant it documents, names a registered runner,
imports no JAX or Flax, and ``musicrep train --config NAME:runlocal`` runs it (shrunk to seconds
by overrides per runner)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from musicrep_jax import cli, config_loading
from musicrep_jax.errors import UserError
from tests.helpers import REPO

NAMES = config_loading.packaged_config_names()
# Files of configs/ that are shared builders, not configs.
BUILDERS = {"__init__", "common", "metric_learning"}

# Overrides that shrink a `:runlocal` config of each runner to seconds. A new runner needs an
# entry here (test_every_runner_can_be_shrunk fails until it has one).
SHRINK = {
    "trainer": ["--config.num_train_steps=2", "--config.eval_every=2",
                "--config.checkpoint_every=2"],
    "word2vec": ["--config.skipgram.epochs=1", "--config.music.repeats=1",
                 "--config.general_text=none"],
    "multiscale": ["--config.sweep=false", "--config.classifier.max_epochs=2",
                   "--config.classifier.trials=1",
                   *(f"--config.extractors.frames{n}.{key}=2" for n in (18, 27, 54)
                     for key in ("num_train_steps", "eval_every", "checkpoint_every"))],
    "mfcc_vq": ["--config.codebook.size=8", "--config.codebook.frames=2000",
                "--config.codebook.iterations=2", "--config.task.eval_triplets=100"],
    "ivector": ["--config.ubm.num_components=8", "--config.ubm.num_iterations=2",
                "--config.ubm.iterations_per_split=1", "--config.tv.ivector_dim=8",
                "--config.tv.num_iterations=2", "--config.num_train_steps=2",
                "--config.eval_every=2", "--config.checkpoint_every=2", "--config.batch_size=8"],
    "paper14": ["--config.size=tiny", "--config.steps=2", "--config.evals=1",
                "--config.cells=classification:plain"],
}
# Keys of a trainer run's JSON line that are not metrics of the test split.
RUN_KEYS = ("step", "best_step", "compilations", "split", "workdir")


def _module(name: str):
  return config_loading.load_config_module(config_loading.packaged_configs_dir() / f"{name}.py")


def _runs():
  """``(name, arg)`` of every run the slow test makes: each config's ``runlocal``, and every
  other documented variant whose runner differs from its ``runlocal``'s (paper14:grid)."""
  runs = []
  for name in NAMES:
    module = _module(name)
    runlocal = config_loading.runner_of(module.get_config("runlocal"))
    runs.append((name, "runlocal"))
    runs += [(name, arg) for arg in module.VARIANTS if "runlocal" not in arg.split(",")
             and config_loading.runner_of(module.get_config(arg)) != runlocal]
  return runs


def test_the_packaged_configs_are_every_config_file_of_the_checkout():
  assert config_loading.packaged_configs_dir() == REPO / "configs"
  assert NAMES == sorted(p.stem for p in (REPO / "configs").glob("*.py")
                         if p.stem not in BUILDERS)
  assert len(NAMES) >= 18


@pytest.mark.parametrize("name", NAMES)
def test_every_config_and_variant_loads_with_a_registered_runner(name):
  import musicrep_jax.systems  # noqa: F401  (registers the runners)
  from musicrep_jax.registry import RUNNERS

  module = _module(name)
  summary = module.__doc__.split("\n")[0]
  assert summary.endswith(".") and len(summary) <= 96, summary  # `musicrep configs` shows it.
  assert "runlocal" in module.VARIANTS and len(set(module.VARIANTS)) == len(module.VARIANTS)
  configs = {arg: config_loading.load_config(f"{name}:{arg}" if arg else name)
             for arg in ("",) + module.VARIANTS}
  for arg, config in configs.items():
    assert "command" not in config, "config.command is replaced by config.runner"
    assert config.runner in RUNNERS.names(), (arg, config.runner)
  full, local = configs[""], configs["runlocal"]
  if local.runner == "trainer":
    assert local.data.name == "synthetic"
    assert local.num_train_steps <= full.num_train_steps
  with pytest.raises((ValueError, UserError)):
    config_loading.load_config(f"{name}:nonsense")


def test_config_modules_and_musicrep_configs_import_no_jax_or_flax():
  """In a fresh process: import every config module, build every variant and run `musicrep
  configs`; neither JAX nor Flax gets imported."""
  script = (
      "import importlib, sys\n"
      "from musicrep_jax import cli, config_loading\n"
      "for name in config_loading.packaged_config_names():\n"
      "  module = importlib.import_module('musicrep_jax.configs.' + name)\n"
      "  for arg in (None,) + module.VARIANTS:\n"
      "    module.get_config(arg)\n"
      "assert cli.main(['configs']) == 0\n"
      "print(sorted(m for m in ('jax', 'flax', 'optax') if m in sys.modules))\n")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-2000:]


def test_numbers_the_configs_share_with_models_agree():
  """Configs import no model module, so the numbers they need are written in the config; here
  they are compared with the models' own."""
  from musicrep_jax.configs import multiscale_mtat, samplecnn_speech_commands as speech
  from musicrep_jax.models import mel_cnn, sample_level_fixed_input as fixed

  for frames, convs in multiscale_mtat.FRAME_CNN_CONVS.items():
    assert mel_cnn.frame_cnn_num_convs(frames) == convs, frames
  assert speech.PAPER6_MODELS == fixed.PAPER6_MODELS
  for variant in speech.PAPER6_MODELS:
    assert speech.paper6_model_kwargs(variant) == fixed.paper6_model_kwargs(variant)


def test_every_runner_can_be_shrunk():
  runners = {config_loading.runner_of(config_loading.load_config(
      f"{name}:{arg}" if arg else name)) for name, arg in _runs()}
  assert runners <= set(SHRINK), f"add overrides for {sorted(runners - set(SHRINK))} to SHRINK"


def test_musicrep_configs_lists_every_config_with_its_runner(capsys):
  assert cli.main(["configs"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert json.loads(lines[-1])["configs"] == len(NAMES)
  rows = {line.split()[0]: line.split()[1] for line in lines[:-1]}
  assert list(rows) == NAMES
  assert rows["demo"] == "trainer" and rows["word2vec"] == "word2vec"
  assert rows["paper14"] == "trainer/paper14" and rows["ivector_hybrid"] == "ivector"


def test_print_config_shows_the_overridden_config_and_leaves_the_workdir_alone(tmp_path, capsys):
  workdir = tmp_path / "untouched"
  assert cli.main(["train", "--config", "demo:runlocal", "--workdir", str(workdir),
                   "--print-config", "--config.batch_size=7"]) == 0
  out = capsys.readouterr().out.strip()
  printed, last = out[:out.rindex("\n")], json.loads(out.splitlines()[-1])
  assert json.loads(printed)["batch_size"] == 7
  assert last["runner"] == "trainer" and last["arg"] == "runlocal"
  assert not workdir.exists()
  assert cli.main(["train", "--config", "word2vec:runlocal", "--print-config"]) == 0
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runner"] == "word2vec"


def test_train_without_workdir_an_unknown_name_and_a_foreign_runner_are_user_errors(capsys):
  assert cli.main(["train", "--config", "demo"]) == 2
  assert "--workdir" in capsys.readouterr().err
  assert cli.main(["train", "--config", "no_such_config:runlocal", "--print-config"]) == 2
  assert "no_such_config does not exist; `musicrep configs`" in capsys.readouterr().err
  assert cli.main(["word2vec", "--config", "demo", "--out", "unused"]) == 2
  assert "'trainer' runner" in capsys.readouterr().err


def _numbers(result: dict) -> dict:
  return {k: v for k, v in result.items()
          if k not in RUN_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}


@pytest.mark.slow
@pytest.mark.parametrize("name,arg", _runs(), ids=lambda v: v)
def test_musicrep_train_runs_every_config(name, arg, tmp_path, capsys):
  """`musicrep train --config NAME:ARG`, shrunk by its runner's overrides; the JSON line's
  numbers (test metrics, or the system's summary) exist and are finite."""
  config = config_loading.load_config(f"{name}:{arg}")
  args = ["train", "--config", f"{name}:{arg}", "--workdir", str(tmp_path / "w"),
          *SHRINK[config.runner]]
  if "progress_bar" in config:
    args.append("--config.progress_bar=false")
  assert cli.main(args) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  if config.runner == "trainer":
    assert result["step"] == 2 and result["split"] == "test"
  numbers = _numbers(result)
  assert numbers, result
  assert all(np.isfinite(v) for v in numbers.values()), numbers
