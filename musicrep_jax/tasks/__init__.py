"""Tasks (sampling and loss; metrics are the evaluators'). Importing this package registers them
in ``TASKS``."""

from musicrep_jax.tasks import tagging  # noqa: F401  (registers "tagging")
from musicrep_jax.tasks import classification  # noqa: F401  (registers "classification")
from musicrep_jax.tasks import metric_learning  # noqa: F401  (registers "metric_learning")
from musicrep_jax.tasks import zero_shot  # noqa: F401  (registers "zero_shot")
from musicrep_jax.tasks import dcue  # noqa: F401  (registers "dcue")
