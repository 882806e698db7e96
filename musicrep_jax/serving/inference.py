"""A trained workdir as a model ready for inference: ``musicrep export`` and ``musicrep embed``.

``load_trained`` restores the workdir through the one restore path,
``musicrep_jax.training.trainer.restore_workdir`` (the run rebuilt by ``build_run`` from
``<workdir>/config.json``, the best or latest checkpoint restored into it), and keeps what an
export or an embedding needs, with the variables on the host. The dataset is opened only for
what the model's shape and the outputs' names come from (the number and names of tags):
``--data-dir`` as for ``musicrep eval``, or the embedded corpus' cache for ``synthetic`` configs.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Optional

import jax


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
  """Restores ``workdir``'s ``which`` ("best" or "latest") checkpoint (``restore_workdir``);
  ``UserError`` if it is not a training workdir or holds no checkpoint."""
  from musicrep_jax.training.trainer import restore_workdir

  restored = restore_workdir(workdir, data_dir, which)
  run = restored.run
  return Trained(model=run.model, task=run.task, variables=jax.device_get(restored.variables),
                 config=restored.config, sample_rate=int(restored.config.data.sample_rate),
                 input_length=int(run.input_length), tag_names=tuple(run.shards.tag_names),
                 step=restored.step, workdir=restored.workdir)
