"""The ``"trainer"`` runner: SGD on a registered model and task, then the held-out evaluation.

What ``musicrep train --config X`` runs for every trainer config (``config.runner ==
"trainer"``, the default): ``musicrep_jax.training.trainer.train`` into the workdir (resuming
from its last checkpoint), which ends with the test split's metrics on the best checkpoint.

Before training, a config that asks for word vectors by config
(``task.kwargs.word_vectors_config``, a ``word2vec`` config spec such as ``"word2vec:runlocal"``)
with ``task.kwargs.word_vectors`` empty gets ``word_vectors`` set to those vectors, trained once
into ``$MUSICREP_CACHE`` (``musicrep_jax.systems.word2vec.cache``); the workdir's ``config.json``
records the file used.
"""

from __future__ import annotations

from typing import Optional

import ml_collections

from musicrep_jax import config_loading
from musicrep_jax.registry import RUNNERS


def resolve_word_vectors(config: ml_collections.ConfigDict) -> None:
  """Sets ``task.kwargs.word_vectors`` from ``task.kwargs.word_vectors_config`` (in place) when
  the first is empty and the second names a word2vec config."""
  kwargs = config.task.get("kwargs", {})
  if kwargs.get("word_vectors_config") and not kwargs.get("word_vectors"):
    from musicrep_jax.systems.word2vec import cache  # pylint: disable=g-import-not-at-top

    kwargs.word_vectors = str(cache.cached_vectors(kwargs.word_vectors_config))


@RUNNERS.register("trainer")
def run(config: ml_collections.ConfigDict, *, workdir: str, data_dir: Optional[str] = None,
        allow_config_change: tuple = ()) -> dict:
  """Trains (or resumes) ``config`` in ``workdir`` (a resume may change ``RESUMABLE_KEYS`` of
  ``musicrep_jax.training.trainer`` and the keys in ``allow_config_change``).

  Returns:
    ``step``, ``best_step``, ``compilations``, the test metrics, ``split`` (the test split's
    name) and ``workdir``; or ``stopped_by`` and ``step`` when a signal stopped the run (rerun
    to resume). ``report``: what the command prints (lines, and ``(title, metrics)`` pairs).
  """
  from musicrep_jax.training import trainer, writers  # pylint: disable=g-import-not-at-top

  config_loading.validate(config)
  resolve_word_vectors(config)
  summary = trainer.train(config, workdir, data_dir, allow_config_change)
  workdir = summary["workdir"]
  if "stopped_by" in summary:
    return dict(summary, report=[
        f"Stopped by {summary['stopped_by']} at step {summary['step']}; checkpoint saved in "
        f"{workdir}/checkpoints. Rerun the same command to resume."])
  test, split = summary["test"], config.data.test_split
  report = [(f"Held-out {split} split (best checkpoint, step {summary['best_step']}):", test)
            if test else f"Trained {summary['step']} steps; no {split!r} split to evaluate.",
            f"Logs: {workdir}/metrics.jsonl, curves: {workdir}/curves.png; TensorBoard: "
            f"{writers.tensorboard_hint(f'{workdir}/tensorboard')}",
            f"Checkpoints: {workdir}/checkpoints (latest), {workdir}/best (best by validation "
            f"{config.checkpoint.best_metric})"]
  return ({k: summary[k] for k in ("step", "best_step", "compilations")} | dict(test)
          | {"split": split, "workdir": workdir, "report": report})
