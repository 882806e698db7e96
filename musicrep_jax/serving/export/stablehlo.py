"""StableHLO through ``jax.export``: the eval-mode forward with the weights baked in.

``serialize`` lowers ``model.apply(variables, audio, train=False)`` for ``audio`` float32
``[batch, input_length, 1]`` with a *symbolic* ``batch`` (any batch size runs, one artifact), to
the platforms asked for (CPU, CUDA and TPU by default: no platform-specific custom calls are
involved, the mel front end's FFT included), and returns ``jax.export``'s serialized bytes.
``deserialize(blob).call(audio)`` returns ``{"logits", "embedding", ...}`` like the model; it
needs jax (and jaxlib) only, no Flax or musicrep code. The weights are constants of the program
(file size ~= 4 bytes per parameter).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.serving.export import eval_apply

DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")


def export(model, variables: dict, input_length: int,
           platforms: Sequence[str] = DEFAULT_PLATFORMS) -> jax.export.Exported:
  """``jax.export.Exported`` of the eval forward with a symbolic batch dimension."""
  variables = jax.tree.map(jnp.asarray, variables)

  def forward(audio):
    return eval_apply(model, variables, audio)

  batch = jax.export.symbolic_shape("batch")[0]
  spec = jax.ShapeDtypeStruct((batch, input_length, 1), jnp.float32)
  return jax.export.export(jax.jit(forward), platforms=tuple(platforms))(spec)


def serialize(model, variables: dict, input_length: int,
              platforms: Sequence[str] = DEFAULT_PLATFORMS) -> bytes:
  """The serialized artifact (write it to ``model.stablehlo``)."""
  return bytes(export(model, variables, input_length, platforms).serialize())


def deserialize(blob: bytes) -> jax.export.Exported:
  return jax.export.deserialize(bytearray(blob))


def run(blob: bytes, audio: np.ndarray) -> dict[str, np.ndarray]:
  """Deserializes ``blob`` and runs it on float32 ``[batch, input_length, 1]`` -> numpy dict."""
  out = deserialize(blob).call(jnp.asarray(audio, jnp.float32))
  return {k: np.asarray(v) for k, v in out.items()}
