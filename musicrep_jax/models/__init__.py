"""Model zoo. Importing this package registers every model in ``musicrep_jax.registry.MODELS``."""

from musicrep_jax.models import mel_cnn  # noqa: F401  (registers "mel_dcnn", "mel_frame_cnn")
from musicrep_jax.models import inception  # noqa: F401  (registers "inception")
from musicrep_jax.models import resemul  # noqa: F401  (registers "resemul")
from musicrep_jax.models import sample_cnn  # noqa: F401  (registers "sample_cnn")
from musicrep_jax.models import sample_level_fixed_input  # noqa: F401  (registers it)
from musicrep_jax.models import embedding  # noqa: F401  (registers "embedding_net")
from musicrep_jax.models import zero_shot  # noqa: F401  (registers "zero_shot")
from musicrep_jax.models import dcue  # noqa: F401  (registers "dcue")
