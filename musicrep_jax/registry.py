"""Name -> constructor registries, so configs pick models, tasks, evaluators and runners by name.

There is exactly one registry of each kind::

    @MODELS.register("sample_cnn")
    class SampleCNN(nn.Module): ...

    model = MODELS.get(config.model.name)(**config.model.kwargs)

- ``MODELS``: Flax modules (``musicrep_jax.models``), built from ``config.model``.
- ``TASKS``: sampling + loss (``musicrep_jax.tasks``), built from ``config.task``.
- ``EVALUATORS``: split metrics from gathered segment outputs (``musicrep_jax.evaluators``),
  picked by ``config.evals``.
- ``RUNNERS``: what ``musicrep train --config X`` runs for a config (``config.runner``):
  ``"trainer"`` (SGD on a registered model and task) or a paper's system
  (``musicrep_jax.systems``: ``"multiscale"``, ``"word2vec"``, ``"ivector"``, ``"paper14"``).
  A runner is ``run(config, *, workdir: str, data_dir: str | None) -> dict`` (the dict's scalar
  entries become the command's JSON line).
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from musicrep_jax.errors import UserError


class Registry:
  """A dictionary of named factories with a clear error for unknown names."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: Dict[str, Any] = {}

  def register(self, name: str) -> Callable[[Any], Any]:
    def decorator(obj: Any) -> Any:
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._entries[name] = obj
      return obj

    return decorator

  def get(self, name: str) -> Any:
    if name not in self._entries:
      known = ", ".join(sorted(self._entries)) or "(none)"
      raise UserError(f"Unknown {self.kind} {name!r}; known {self.kind}s: {known}.")
    return self._entries[name]

  def names(self) -> list[str]:
    return sorted(self._entries)


MODELS = Registry("model")
TASKS = Registry("task")
EVALUATORS = Registry("evaluator")
RUNNERS = Registry("runner")
