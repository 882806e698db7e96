"""The compute dtype of a run: ``config.compute_dtype`` = ``"auto"``, ``"float32"`` or
``"bfloat16"``, resolved once from the devices the run's mesh holds.

``"auto"`` (the default, ``configs/common.py``) is bfloat16 where every device is an accelerator
(TPU, GPU) and float32 otherwise: XLA's CPU backend has no fast bfloat16 (it widens bfloat16
convolutions to float32 and converts back, ~0.7x the float32 speed here; docs/benchmarks.md),
so the paper configs train in float32 on CPU exactly as before. ``musicrep plan`` resolves it
with the TPU topology's devices (bfloat16).

Mixed precision, as every model in ``musicrep_jax/models`` implements it (their ``dtype`` field
is the compute dtype; tests/unit/models/test_mixed_precision.py checks each one):

* parameters are created and updated in float32 (``param_dtype``); each layer casts its kernel
  to bfloat16 for the convolution or matmul, so the gradient reaching the optimizer is float32;
* activations between layers and convolution/matmul operands are bfloat16;
* BatchNorm computes its batch mean and variance in float32 (Flax's
  ``force_float32_reductions``), normalises in float32, keeps its running statistics in float32,
  and returns bfloat16;
* the mel front end runs in float32 and is cast afterwards;
* every model's outputs (logits, embeddings, heads) are cast to float32 before any loss, metric
  or evaluator sees them, so log-sigmoid / log-softmax cross-entropies, distances and the metric
  accumulators (``training.step.LogAccumulator``) are float32;
* the gradient's cross-device reduction is float32 on CPU meshes (checked on 2 fake devices).
  On GPU/TPU a bfloat16 convolution's weight gradient leaves the convolution in bfloat16 (XLA
  accumulates it in float32 inside), so XLA may sum the per-device partial gradients in
  bfloat16 before the float32 cast: one bfloat16 rounding of each device's share, the same
  precision as the activation gradients themselves.
"""

from __future__ import annotations

from typing import Iterable

import jax.numpy as jnp

COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
# Platforms whose matrix units run bfloat16 at (at least) twice the float32 rate.
BF16_PLATFORMS = ("tpu", "gpu", "cuda", "rocm")


def resolve_compute_dtype(value: str, devices: Iterable) -> str:
  """``"float32"`` or ``"bfloat16"``: ``value`` itself, or for ``"auto"`` bfloat16 when every
  device in ``devices`` (JAX devices, or a TPU topology's) is a TPU or GPU, else float32.

  >>> class Device: platform = "tpu"
  >>> resolve_compute_dtype("auto", [Device()]), resolve_compute_dtype("float32", [Device()])
  ('bfloat16', 'float32')
  """
  if value not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {value!r}")
  if value != "auto":
    return value
  platforms = {getattr(d, "platform", "cpu") for d in devices}
  return "bfloat16" if platforms and platforms <= set(BF16_PLATFORMS) else "float32"


def model_dtype(compute_dtype: str):
  """The ``dtype`` field for the models: ``jnp.bfloat16`` or ``jnp.float32`` (resolved names)."""
  return jnp.bfloat16 if compute_dtype == "bfloat16" else jnp.float32
