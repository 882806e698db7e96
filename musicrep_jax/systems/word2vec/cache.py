"""Word vectors trained once into ``$MUSICREP_CACHE`` (the zero-shot ``:runlocal`` default).

``cached_vectors("word2vec:runlocal")`` loads that ``word2vec`` config, and unless the cache
already holds its vectors trains them (the ``word2vec`` runner, ``pipeline.run``) into
``$MUSICREP_CACHE/word2vec-<hash of the config's settings>/``, under a file lock so concurrent
processes of one machine train once, as ``musicrep_jax.training.run_data.ensure_synthetic``
renders the embedded corpus once. ``summary.json`` is written last and marks a finished training.
The ``trainer`` runner (``musicrep_jax.systems.supervised``) calls it for
``task.kwargs.word_vectors_config``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import pathlib

from musicrep_jax import config_loading
from musicrep_jax.training.run_data import cache_root

# Where a config came from, not what it trains: left out of the hash.
_LOCATION_KEYS = ("config_file", "config_arg")


def settings_digest(config) -> str:
  settings = {k: v for k, v in json.loads(config_loading.to_json(config)).items()
              if k not in _LOCATION_KEYS}
  return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def cached_vectors(spec: str) -> pathlib.Path:
  """The ``vectors.txt`` of the ``word2vec`` config ``spec``, trained if missing."""
  from musicrep_jax.systems.word2vec import pipeline  # pylint: disable=g-import-not-at-top

  config = config_loading.load_config_file(config_loading.resolve_config_spec(spec))
  out = cache_root() / f"word2vec-{settings_digest(config)}"
  out.parent.mkdir(parents=True, exist_ok=True)
  with open(str(out) + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (out / pipeline.SUMMARY_FILE).exists():
      print(f"Training the word vectors of {spec} into {out} (once) ...", flush=True)
      pipeline.run(config, workdir=out)
  return out / pipeline.VECTORS_FILE
