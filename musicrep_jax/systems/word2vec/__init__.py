"""Musical word embedding (paper 12, papers.md 13): skip-gram with negative sampling in JAX.

``text`` builds the general and music texts, ``vocab`` the vocabulary and sampling tables,
``sgns`` trains, ``evaluate`` finds neighbours and scores listening-context associations;
``musicrep_jax.data.word_vectors`` reads and writes the standard file formats.
"""
