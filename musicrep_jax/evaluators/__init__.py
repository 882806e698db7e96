"""Evaluators: a split's gathered segment outputs -> metrics, apart from the tasks' objectives
(as big_vision's ``evaluators/``). Importing this package registers them in ``EVALUATORS``;
``common`` holds the segment-to-clip aggregation and ``run_evaluators`` (``config.evals``)."""

from musicrep_jax.evaluators import tagging  # noqa: F401  (registers "tagging", "tagging_f1")
from musicrep_jax.evaluators import classification  # noqa: F401  (registers "classification")
from musicrep_jax.evaluators import retrieval  # noqa: F401  (registers "retrieval")
from musicrep_jax.evaluators import recommendation  # noqa: F401  (registers "recommendation")
from musicrep_jax.evaluators import zero_shot  # noqa: F401  (registers "zero_shot")
