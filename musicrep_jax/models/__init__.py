"""Model zoo. Importing this package registers every model in ``musicrep_jax.registry.MODELS``."""

from musicrep_jax.models import sample_cnn  # noqa: F401  (registers "sample_cnn")
