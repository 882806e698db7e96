"""musicrep-jax: sample-level CNNs and the music representation work built on them, in JAX/Flax."""

__version__ = "0.1.0"
