"""Paper systems and the runners of ``musicrep train`` (``musicrep_jax.registry.RUNNERS``).

Importing this package registers every runner: ``"trainer"`` (``supervised``: SGD on a
registered model and task), ``"word2vec"`` (``word2vec.pipeline``), ``"ivector"``
(``ivector.pipeline``), ``"multiscale"`` (``multiscale.pipeline``), ``"paper14"``
(``paper14.grid``) and ``"mfcc_vq"`` (``mfcc_vq.pipeline``: paper 13's MFCC-VQ baseline). Each system's folder holds its method; a runner is
``run(config, *, workdir, data_dir) -> dict``.
"""

from musicrep_jax.systems import supervised  # noqa: F401  (registers "trainer")
from musicrep_jax.systems.ivector import pipeline as _ivector  # noqa: F401  ("ivector")
from musicrep_jax.systems.mfcc_vq import pipeline as _mfcc_vq  # noqa: F401  ("mfcc_vq")
from musicrep_jax.systems.multiscale import pipeline as _multiscale  # noqa: F401  ("multiscale")
from musicrep_jax.systems.paper14 import grid as _paper14  # noqa: F401  ("paper14")
from musicrep_jax.systems.word2vec import pipeline as _word2vec  # noqa: F401  ("word2vec")
