"""Helpers shared by the tests (fixtures live in conftest.py and call these).

- ``REPO``, ``TINY_CONFIG``: the checkout and the tiny end-to-end config (tests/configs/tiny.py).
- ``run_cli(args)``: ``musicrep ARGS`` in a fresh Python process.
- ``synthetic_shards(...)``: the embedded corpus prepared into a temporary folder.
- ``make_workdir(path, data_dir, **model_kwargs)``: a workdir with a checkpoint, made without
  training (for export and embedding tests): tests/configs/tiny.py with the model fields
  overridden (``make_config_workdir``: any packaged config, e.g. ``dcue:runlocal``),
  ``config.json`` written as the trainer does, and the initial state saved as the best
  checkpoint through ``Checkpoints.save_best``; BatchNorm statistics are randomised so that
  inference-mode BatchNorm is not the identity.
"""

import os
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import config_loading
from musicrep_jax.data.shards import open_shards
from musicrep_jax.training import checkpoints, trainer
from tests.configs import tiny as tiny_config

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY_CONFIG = str(REPO / "tests" / "configs" / "tiny.py")
MULTISCALE_TINY_CONFIG = str(REPO / "tests" / "configs" / "multiscale_tiny.py")


def synthetic_shards(tmp_path_factory, name: str, *, num_clips: int, clip_seconds: float,
                     seed: int = 0) -> pathlib.Path:
  """The embedded corpus at 16 kHz prepared into a fresh temporary folder ``name``."""
  from musicrep_jax.data_pipelines.prepare import prepare_synthetic

  out = tmp_path_factory.mktemp(name)
  prepare_synthetic(out, num_clips=num_clips, seed=seed, sample_rate=16000,
                    clip_seconds=clip_seconds, progress=False)
  return out


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300,
             poll: float = 0.05) -> None:
  """Waits until ``predicate()`` holds while ``proc`` runs; fails if it ends first or on timeout."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    if proc.poll() is not None:
      raise AssertionError(f"run ended early with {proc.returncode}: {proc.stderr.read()[-3000:]}")
    time.sleep(poll)
  raise AssertionError("timed out")


def run_cli(args, *, env_extra=None, timeout=600, check=True) -> subprocess.CompletedProcess:
  """Runs ``musicrep ARGS`` in a fresh Python process (own XLA flags, real process semantics)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
  proc = subprocess.run([sys.executable, "-m", "musicrep_jax.cli", *args], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"musicrep {' '.join(args)} exited {proc.returncode}\n"
                         f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
  return proc


def random_batch_stats(stats, seed: int):
  """Running means ~ N(0, 0.5) and variances in [0.5, 1.5] with ``stats``' shapes."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key == "var":
      return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
    return jnp.asarray(rng.normal(0.0, 0.5, leaf.shape), jnp.float32)

  return jax.tree.map_with_path(draw, stats)


def make_workdir(path: pathlib.Path, data_dir: pathlib.Path, **model_kwargs) -> pathlib.Path:
  config = tiny_config.get_config()
  for key, value in model_kwargs.items():
    config.model.kwargs[key] = value
  return save_untrained_workdir(path, config, data_dir)


def make_config_workdir(path: pathlib.Path, data_dir: pathlib.Path, spec: str,
                        **model_kwargs) -> pathlib.Path:
  """``make_workdir`` for any packaged config (``"dcue:runlocal"``) on ``data_dir``: the model
  fields overridden (e.g. a small ``backbone_kwargs``), nothing trained."""
  config = config_loading.load_config_file(config_loading.resolve_config_spec(spec))
  config.model.kwargs.update(model_kwargs)
  config.data.sample_rate = open_shards(data_dir).sample_rate
  return save_untrained_workdir(path, config, data_dir)


def save_untrained_workdir(path: pathlib.Path, config, data_dir: pathlib.Path) -> pathlib.Path:
  """``config.json`` and the initial state (BatchNorm statistics randomised) as the best
  checkpoint of ``path``."""
  path.mkdir(parents=True, exist_ok=True)
  (path / "config.json").write_text(config_loading.to_json(config))
  run = trainer.build_run(config, open_shards(data_dir))
  state = run.create_state(jax.random.key(0))
  state = state.replace(batch_stats=random_batch_stats(state.batch_stats, seed=1))
  saver = checkpoints.Checkpoints(path, best_metric=config.checkpoint.best_metric,
                                  best_mode=config.checkpoint.best_mode, async_save=False)
  saver.save_best(1, state, {config.checkpoint.best_metric: 1.0})
  saver.wait()
  saver.close()
  return path


def lazy_workdirs(tmp_path_factory, make):
  """``get(name) -> workdir`` for a module fixture: ``make(name, path)`` writes the workdir of
  ``name`` into a fresh ``path`` the first time it is asked for, later calls reuse it."""
  made = {}

  def get(name):
    if name not in made:
      made[name] = make(name, tmp_path_factory.mktemp(name) / "wd")
    return made[name]

  return get
