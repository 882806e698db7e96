"""A trained workdir as a model ready for inference: ``musicrep export`` and ``musicrep embed``.

``load_trained`` rebuilds the run exactly as the trainer does (``trainer.build_run`` on the
config saved in ``<workdir>/config.json``) and restores the best (or latest) checkpoint into it
(``Checkpoints.restore_state``). The dataset is opened only for what the model's shape and the
outputs' names come from (the number and names of tags): ``--data-dir`` as for ``musicrep
eval``, or the embedded corpus' cache for ``synthetic`` configs.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Optional

import jax

from musicrep_jax.errors import UserError


@dataclasses.dataclass
class Trained:
  """A restored model: Flax module, host variables, and the facts an export or embedding needs."""

  model: Any
  task: Any
  variables: dict  # {"params", "batch_stats"} as host numpy
  config: Any
  sample_rate: int
  input_length: int
  tag_names: tuple[str, ...]
  step: int
  workdir: pathlib.Path


def load_trained(workdir: str | pathlib.Path, data_dir: Optional[str] = None,
                 which: str = "best") -> Trained:
  """Restores ``workdir``'s ``which`` ("best" or "latest") checkpoint; ``UserError`` if none."""
  from musicrep_jax.training import checkpoints as checkpointing, trainer
  from musicrep_jax import config_loading
  from musicrep_jax.training.run_data import resolve_shards

  workdir = pathlib.Path(workdir).absolute()
  config_file = workdir / "config.json"
  if not config_file.exists():
    raise UserError(f"{workdir} is not a training workdir (no config.json); "
                    f"train first with `musicrep train --workdir {workdir}`.")
  if not any((workdir / d).is_dir() for d in ("checkpoints", "best")):
    raise UserError(f"No checkpoint in {workdir}; train first.")
  config = config_loading.from_json(config_file.read_text())
  shards = resolve_shards(config, data_dir)
  run = trainer.build_run(config, shards)
  ckpt = checkpointing.Checkpoints(workdir, keep=config.checkpoint.keep,
                                   best_metric=config.checkpoint.best_metric,
                                   best_mode=config.checkpoint.best_mode, async_save=False)
  try:
    state, step = ckpt.restore_state(trainer.abstract_state(run), which)
  except FileNotFoundError:
    raise UserError(f"No checkpoint in {workdir}; train first.") from None
  finally:
    ckpt.close()
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  return Trained(model=run.model, task=run.task, variables=variables, config=config,
                 sample_rate=int(config.data.sample_rate), input_length=int(run.input_length),
                 tag_names=tuple(shards.tag_names), step=int(step), workdir=workdir)
