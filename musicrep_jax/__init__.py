"""musicrep-jax: sample-level CNNs and the music representation work built on them, in JAX/Flax.

A trained model in three lines (docs/python_api.md)::

  import musicrep_jax
  model = musicrep_jax.load("workdirs/demo")   # a training workdir or a model folder
  model.tags("song.wav", top_k=5)               # {"guitar": 0.91, ...}

Importing the package is light: ``load`` and ``Model`` import JAX when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(path, *, data_dir: str | None = None, checkpoint: str = "best", batch_size: int = 32,
         block_seconds: float = 10.0):
  """A trained model for inference: ``musicrep_jax.serving.api.Model``.

  Args:
    path: a model folder (holds ``musicrep.json``; read by
      ``serving.export.pretrained.read_model_folder``, without the workdir or its data) or a
      training workdir (``config.json`` and checkpoints); local or ``gs://...``.
    data_dir: a workdir's training shards, for its tag names and output count (default: the
      data its run recorded); not used for a model folder.
    checkpoint: a workdir's ``"best"`` or ``"latest"`` checkpoint.
    batch_size: segments per forward pass (``musicrep embed --batch-size``: equal values give
      equal numbers).
    block_seconds: seconds of audio decoded at a time.
  """
  from musicrep_jax import storage
  from musicrep_jax.serving.api import Model
  # Here, not in serving/api.py: serving.export imports serving (inference), so serving
  # importing serving.export would close a folder cycle (tests/contracts/test_import_layers.py).
  from musicrep_jax.serving.export import pretrained

  options = dict(batch_size=batch_size, block_seconds=block_seconds)
  if (storage.as_path(path) / pretrained.INFO).exists():
    config, variables, info = pretrained.read_model_folder(path)
    return Model.from_folder(path, pretrained.flax_model(info), config, variables, info,
                             **options)
  return Model.from_workdir(path, data_dir=data_dir, checkpoint=checkpoint, **options)


def __getattr__(name: str):
  """``musicrep_jax.Model`` imported on first use (JAX stays unimported until then)."""
  if name == "Model":
    from musicrep_jax.serving.api import Model

    return Model
  raise AttributeError(f"module 'musicrep_jax' has no attribute {name!r}")
