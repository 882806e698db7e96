"""A workdir with a checkpoint, made without training (for export and embedding tests).

``make_workdir(path, data_dir, **model_kwargs)``: tests/tiny_config.py with the model fields
overridden, ``config.json`` written as the trainer does, and the initial state saved as the best
checkpoint through ``Checkpoints.save_best``; BatchNorm statistics are randomised so that
inference-mode BatchNorm is not the identity.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import checkpointing, config_loading, trainer
from musicrep_jax.shards import open_shards
from tests import tiny_config


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
  path.mkdir(parents=True, exist_ok=True)
  (path / "config.json").write_text(config_loading.to_json(config))
  run = trainer.build_run(config, open_shards(data_dir))
  state = run.create_state(jax.random.key(0))
  state = state.replace(batch_stats=random_batch_stats(state.batch_stats, seed=1))
  checkpoints = checkpointing.Checkpoints(path, async_save=False)
  checkpoints.save_best(1, state, {"loss": 1.0})
  checkpoints.wait()
  checkpoints.close()
  return path
