"""Zero-shot joint audio-label embedding (papers 10 and 11; papers.md 11.3 and 12).

* ``MelConvBranch``: the audio branch of papers 7 and 10 on the on-device mel front end
  (papers.md 1.3): Conv1D + ReLU + MaxPool blocks over time with the mel bins as channels, no
  BatchNorm, a last 1x1 conv, global average pooling. Paper 10: channels (128, 128, 128, 128,
  100), kernels (4, 4, 4, 2, 1), pools (4, 4, 4, 2, 1), last conv linear, ``he_uniform``.
* ``ZeroShotEmbedding`` (``"zero_shot"``): the audio branch -> ``[batch, dim]`` and a single
  linear ``Dense(dim)`` label branch on the side-information vectors (word vectors of the tag
  words, or attribute vectors) -> ``[labels, dim]``; the score of (clip, label) is the cosine
  of the two (the task's job).
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from musicrep_jax.models.mel_cnn import _MelInput
from musicrep_jax.models.sample_cnn import max_pool_time
from musicrep_jax.registry import MODELS


class MelConvBranch(nn.Module):
  """Conv1D stack on ``[batch, frames, mels]`` -> ``(embedding [batch, channels[-1]], pre-
  activation GAPs of every conv layer [list of [batch, c]])``; ``last_relu`` applies the ReLU
  after the last conv too (paper 7) or not (paper 10); ``batch_norm`` adds BatchNorm after every
  conv (neither paper has it; ``train`` selects batch statistics)."""

  channels: Sequence[int] = (128, 128, 128, 128, 100)
  kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  pool_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  last_relu: bool = False
  batch_norm: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> tuple:
    if not len(self.channels) == len(self.kernel_sizes) == len(self.pool_sizes):
      raise ValueError("channels, kernel_sizes and pool_sizes need one entry per conv layer")
    pre_gaps = []
    last = len(self.channels) - 1
    for i, (c, k, p) in enumerate(zip(self.channels, self.kernel_sizes, self.pool_sizes)):
      x = nn.Conv(c, (k,), padding="SAME", kernel_init=nn.initializers.he_uniform(),
                  dtype=self.dtype)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype)(x)
      pre_gaps.append(jnp.mean(x, axis=1).astype(jnp.float32))
      if i < last or self.last_relu:
        x = nn.relu(x)
      if p > 1:
        x = max_pool_time(x, p)
    return jnp.mean(x, axis=1).astype(jnp.float32), pre_gaps


@MODELS.register("zero_shot")
class ZeroShotEmbedding(_MelInput):
  """Paper 10's ``model_siamese_a2w_1fc`` (papers.md 11.3).

  ``__call__(audio [batch, input_length, 1], label_vectors [labels, side_dim] or None)`` ->
  ``{"embedding": [batch, dim], "label_embedding": [labels, dim]}`` (the second only with
  label vectors). ``dim = channels[-1]`` (100 in the paper). The front-end fields are
  ``_MelInput``'s (paper: 130 frames at 22,050 Hz).
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
