"""Load an ``ml_collections`` config file and apply ``--config.a.b=value`` overrides.

``configs/X.py`` defines ``get_config(arg: str | None) -> ConfigDict``; ``configs/X.py:runlocal``
passes ``"runlocal"`` (every config shrinks itself to a minute or two on the embedded corpus
with it). The configs of ``configs/`` ship inside the package (``musicrep_jax.configs``) and load
by bare name after any install (``demo``, ``samplecnn_mtat:runlocal``); a path loads a user's own
file. Every config names the runner that ``musicrep train`` hands it to (``config.runner``,
``musicrep_jax.registry.RUNNERS``); only ``"trainer"`` configs are checked by ``validate``.
Overrides are parsed to the type of the value they replace; an unknown key or a value of the
wrong type is a ``UserError`` naming the key.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pathlib
from typing import Iterable

import ml_collections

from musicrep_jax.errors import UserError

# The runner of a config without a ``runner`` key (a user's own trainer config).
DEFAULT_RUNNER = "trainer"


def packaged_configs_dir() -> pathlib.Path:
  """The folder of the configs shipped with the package (the repository's ``configs/``,
  installed as ``musicrep_jax.configs`` by every install, editable or wheel)."""
  spec = importlib.util.find_spec("musicrep_jax.configs")
  return pathlib.Path(next(iter(spec.submodule_search_locations)))


def resolve_config_spec(spec: str) -> str:
  """``configs/demo.py[:arg]`` as given, or a bare name (``demo``) from the packaged configs."""
  path, sep, arg = spec.partition(":")
  if not pathlib.Path(path).is_file():
    configs_dir = packaged_configs_dir()
    candidate = configs_dir / (path if path.endswith(".py") else f"{path}.py")
    if not candidate.is_file():
      candidate = configs_dir / pathlib.Path(path).name
    if candidate.is_file():
      return str(candidate) + sep + arg
  return spec


def packaged_config_names() -> list[str]:
  """Names of the packaged configs (files with a ``get_config``; shared builders such as
  ``common.py`` have none), found without importing them."""
  return sorted(p.stem for p in packaged_configs_dir().glob("*.py")
                if "\ndef get_config(" in p.read_text())


def runner_of(config: ml_collections.ConfigDict) -> str:
  """``config.runner``, ``"trainer"`` when the config does not name one."""
  return config.get("runner", DEFAULT_RUNNER)


def constructor_kwargs(values) -> dict:
  """A ``ConfigDict`` or dict -> keyword arguments, lists turned into tuples.

  JSON round trips (``config.json``, dataset metadata) turn tuples into lists; frozen
  dataclasses and Flax modules need hashable fields.
  """
  values = values.to_dict() if hasattr(values, "to_dict") else dict(values)
  return {k: _as_tuples(v) for k, v in values.items()}


def _as_tuples(value):
  """Lists, nested ones too (``pools_mel_time``), back to tuples."""
  return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def build_from_config(factory, values, what: str):
  """``factory(**constructor_kwargs(values))``; keys that do not fit are a ``UserError``
  ``"{what}: {the TypeError}"`` (``what`` names the config section and the target)."""
  try:
    return factory(**constructor_kwargs(values))
  except TypeError as e:
    raise UserError(f"{what}: {e}") from None


def load_config_module(path: str | pathlib.Path):
  """The module of a config file (executed under a private name), checked for ``get_config``."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise UserError(f"Config file {path} does not exist; `musicrep configs` lists the "
                    f"packaged ones, which load by name.")
  module_spec = importlib.util.spec_from_file_location(f"_musicrep_config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise UserError(f"Config file {path} has no get_config(arg) function.")
  return module


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """``"path/to/config.py[:arg]"`` -> the config its ``get_config(arg)`` returns."""
  path, _, arg = spec.partition(":")
  file = pathlib.Path(path)
  module = load_config_module(file)
  try:
    config = module.get_config(arg or None)
  except ValueError as error:  # The configs refuse an unknown argument (a typo after the colon).
    raise UserError(f"Bad config argument {arg!r}: {error}.") from None
  config.config_file = str(file)
  config.config_arg = arg
  return config


def _parse_value(key: str, text: str, current):
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise UserError(f"--config.{key} expects true or false, got {text!r}.")
  if isinstance(current, str):
    return text
  if current is None:  # An unset field: a Python literal ("(2, 3)", "8", "None"), else text.
    try:
      return ast.literal_eval(text)
    except (ValueError, SyntaxError):
      return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    raise UserError(f"--config.{key}={text} is not a valid {type(current).__name__}.") from None
  if isinstance(current, float) and isinstance(value, int):
    value = float(value)
  if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
    return type(current)(value)
  if not isinstance(value, type(current)):
    raise UserError(f"--config.{key}={text} is a {type(value).__name__}, but the config holds a "
                    f"{type(current).__name__} there ({current!r}).")
  return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str]) -> None:
  """Applies ``["--config.a.b=1", ...]`` (the ``--config.`` prefix is optional) in place."""
  for item in overrides:
    text = item[2:] if item.startswith("--") else item
    if text.startswith("config."):
      text = text[len("config."):]
    key, sep, raw = text.partition("=")
    if not sep:
      raise UserError(f"Override {item!r} needs the form --config.key=value.")
    node = config
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise UserError(f"Unknown config key {'.'.join(parts[:depth + 1])!r} in --config.{key}.")
      node = node[part]
    leaf = parts[-1]
    if leaf not in node:
      known = ", ".join(sorted(node.keys()))
      raise UserError(f"Unknown config key {key!r}; keys at that level: {known}.")
    node[leaf] = _parse_value(key, raw, node[leaf])


def load_config(spec: str, overrides: Iterable[str] = (),
                runner: str | None = None) -> ml_collections.ConfigDict:
  """``spec`` (a path or a packaged name, ``[:arg]``) loaded, overridden and, for a trainer
  config, validated; other runners check their own sections. ``runner``: the runner a command
  serves (``musicrep word2vec``, ``plan``, ...); a config of another runner is a ``UserError``
  that says how to run it."""
  config = load_config_file(resolve_config_spec(spec))
  apply_overrides(config, overrides)
  if runner is not None and runner_of(config) != runner:
    raise UserError(f"{spec} is a config of the {runner_of(config)!r} runner, not the {runner!r} "
                    f"one (config.runner); run it with `musicrep train --config {spec}` "
                    f"(`musicrep configs` lists each config's runner).")
  if runner_of(config) == DEFAULT_RUNNER:
    validate(config)
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the values every trainer config must have sensible, naming the key on failure
  (systems that train with a config's trainer keys call it before training)."""
  positive = ["batch_size", "num_train_steps", "log_every", "eval_every", "checkpoint_every",
              "data.sample_rate", "data.segments_per_clip"]
  if config.data.get("cache_in_memory", False):
    positive.append("data.cache_max_mb")
  for key in positive:
    node = config
    for part in key.split("."):
      if part not in node:
        raise UserError(f"Config {config.get('config_file', '')} lacks the key {key!r}.")
      node = node[part]
    if not isinstance(node, (int, float)) or node <= 0:
      raise UserError(f"config.{key} must be a positive number, got {node!r}.")
  if config.optimizer.learning_rate <= 0:
    raise UserError(f"config.optimizer.learning_rate must be > 0, got "
                    f"{config.optimizer.learning_rate!r}.")
  # training/precision.py resolves "auto" from the run's devices (bf16 on TPU/GPU, f32 on CPU).
  if config.compute_dtype not in ("auto", "float32", "bfloat16"):
    raise UserError(f"config.compute_dtype must be auto, float32 or bfloat16, got "
                    f"{config.compute_dtype!r}.")
  if config.checkpoint.best_mode not in ("min", "max"):
    raise UserError(f"config.checkpoint.best_mode must be min or max, got "
                    f"{config.checkpoint.best_mode!r}.")


_ABSENT = "<absent>"


def config_diff(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
  """``(dotted key, old value, new value)`` for every leaf that differs between two plain
  (JSON) config dicts, sorted by key; a key only one side has shows ``"<absent>"`` on the
  other."""
  diffs = []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
    if isinstance(a, dict) and isinstance(b, dict):
      diffs.extend(config_diff(a, b, f"{prefix}{key}."))
    elif a != b:
      diffs.append((f"{prefix}{key}", a, b))
  return diffs


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads(text))
