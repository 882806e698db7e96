"""Benchmarks: the jitted JAX train step against a PyTorch eager reference (issue 8).

Not part of the installed package; run from the repository root, e.g.
``musicrep bench train-step --help``. PyTorch is the optional ``bench`` extra.
"""
