"""Zero-shot joint audio-label embedding (papers 10 and 11; papers.md 11.3 and 12).

* the audio branch: ``models.branches.MelConvBranch`` (paper 10's settings by default).
* ``ZeroShotEmbedding`` (``"zero_shot"``): the audio branch -> ``[batch, dim]`` and a single
  linear ``Dense(dim)`` label branch on the side-information vectors (word vectors of the tag
  words, or attribute vectors) -> ``[labels, dim]``; the score of (clip, label) is the cosine
  of the two (the task's job).
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from musicrep_jax.models.branches import MelConvBranch, MelInput
from musicrep_jax.registry import MODELS


@MODELS.register("zero_shot")
class ZeroShotEmbedding(MelInput):
  """Paper 10's ``model_siamese_a2w_1fc`` (papers.md 11.3).

  ``__call__(audio [batch, input_length, 1], label_vectors [labels, side_dim] or None)`` ->
  ``{"embedding": [batch, dim], "label_embedding": [labels, dim]}`` (the second only with
  label vectors). ``dim = channels[-1]`` (100 in the paper). The front-end fields are
  ``MelInput``'s (paper: 130 frames at 22,050 Hz).
  """

  num_frames: int = 130
  channels: Sequence[int] = (128, 128, 128, 128, 100)
  kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  pool_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray, label_vectors: Optional[jnp.ndarray] = None,
               train: bool = False) -> dict:
    del train  # No dropout or BatchNorm in this model.
    mel = self.mel(audio).astype(self.dtype)
    embedding, _ = MelConvBranch(self.channels, self.kernel_sizes, self.pool_sizes,
                                 last_relu=False, dtype=self.dtype, name="audio")(mel)
    out = {"embedding": embedding}
    if label_vectors is not None:
      out["label_embedding"] = nn.Dense(self.channels[-1], name="label_projection")(
          jnp.asarray(label_vectors, jnp.float32))
    return out
