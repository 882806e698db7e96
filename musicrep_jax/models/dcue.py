"""Deep content-user embedding, DCUE (paper 7, DLRS 2018; papers.md 8.3).

Two branches into one space, scored by cosine similarity (the task's job):

* **user branch**: ``Embed(num_users, user_hidden)`` -> ReLU -> ``Dense(user_hidden)`` -> ReLU ->
  ``Dense(d)`` (linear); paper: 300 hidden, d = 256;
* **item (audio) branch**: the mel front end (papers.md 1.3; paper: 130 frames at 22,050 Hz) ->
  ``models.branches.MelConvBranch`` with ``last_relu=True`` (Conv1D + ReLU + MaxPool blocks, no
  BatchNorm, channels (128, 256, 256, 256, 256), kernels (4, 4, 4, 2, 1), pools (4, 4, 4, 2, 1))
  -> GAP -> ``Dense(dim)`` (linear).

``last_relu=False`` leaves conv5 linear (paper 10's branch) [option, not in paper 7].
``batch_norm=True`` puts BatchNorm after every conv (before the ReLU and the pre-activation
GAPs) [option, not in paper 7]: without it the random-initialised branch gives all tracks nearly
the same vector (mean cosine 0.96), which the small runs here do not escape (``configs/dcue.py``).
``multi=True`` is paper 7's multi model: five heads matched pairwise, the final Dense output and
the GAPs of the pre-activation outputs of conv5, conv4, conv3, conv2 on the item side, five
user heads (shared Embed, separate Dense-ReLU-Dense, each sized to its item head) on the user
side; the five hinge losses are summed. The basic model has one head.

Every conv uses ``'same'`` padding, as the official code does on all five (papers.md 8.3 names it
for the first). Difference from the Keras code, [choice]: initialisers are ``he_uniform`` for
convs and Flax's defaults elsewhere.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from musicrep_jax.models.branches import MelConvBranch, MelInput
from musicrep_jax.registry import MODELS

# Paper 7's multi model: the final head, then the pre-activation GAPs of conv5 .. conv2.
MULTI_LAYERS = (4, 3, 2, 1)


class UserHead(nn.Module):
  """``[users, user_hidden]`` embedded users -> ReLU -> Dense(hidden) -> ReLU -> Dense(dim)."""

  hidden: int
  dim: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = nn.Dense(self.hidden)(nn.relu(x))
    return nn.Dense(self.dim)(nn.relu(x))


@MODELS.register("dcue")
class DCUE(MelInput):
  """Paper 7's basic (or ``multi``) DCUE model (module docstring).

  ``__call__(audio [batch, input_length, 1], users int [n] or None, train)`` -> ``{"item_heads":
  tuple of [batch, d_h], "embedding": [batch, dim] (the first item head), "user_heads": tuple
  of [n, d_h] (only with users)}``. ``embed_items`` / ``embed_users`` compute one side.
  """

  num_users: int = 1
  num_frames: int = 130
  channels: Sequence[int] = (128, 256, 256, 256, 256)
  kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  pool_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  dim: int = 256
  user_hidden: int = 300
  multi: bool = False
  last_relu: bool = True
  batch_norm: bool = False
  dtype: jnp.dtype = jnp.float32

  @property
  def head_dims(self) -> tuple:
    """Width of each head: ``dim``, then (multi) the channels of conv5 .. conv2."""
    return (self.dim,) + (tuple(self.channels[i] for i in MULTI_LAYERS) if self.multi else ())

  def setup(self):
    if self.multi and len(self.channels) <= max(MULTI_LAYERS):
      raise ValueError(f"multi needs {max(MULTI_LAYERS) + 1} conv layers, got {self.channels}")
    self.audio = MelConvBranch(self.channels, self.kernel_sizes, self.pool_sizes,
                               last_relu=self.last_relu, batch_norm=self.batch_norm,
                               dtype=self.dtype)
    self.item_projection = nn.Dense(self.dim)
    self.user_table = nn.Embed(self.num_users, self.user_hidden)
    self.user_heads = [UserHead(self.user_hidden, d, name=f"user_head_{h}")
                       for h, d in enumerate(self.head_dims)]

  def embed_items(self, audio: jnp.ndarray, train: bool = False) -> tuple:
    """``[batch, input_length, 1]`` -> tuple of ``[batch, d_h]`` item heads (float32)."""
    gap, pre_gaps = self.audio(self.mel(audio).astype(self.dtype), train=train)
    heads = (self.item_projection(gap).astype(jnp.float32),)
    if self.multi:
      heads += tuple(pre_gaps[i] for i in MULTI_LAYERS)
    return heads

  def embed_users(self, users: jnp.ndarray) -> tuple:
    """int ``[n]`` user ids -> tuple of ``[n, d_h]`` user heads."""
    x = self.user_table(jnp.asarray(users, jnp.int32))
    return tuple(head(x) for head in self.user_heads)

  def __call__(self, audio: jnp.ndarray, users: Optional[jnp.ndarray] = None,
               train: bool = False) -> dict:
    heads = self.embed_items(audio, train=train)
    out = {"item_heads": heads, "embedding": heads[0]}
    if users is not None:
      out["user_heads"] = self.embed_users(users)
    return out
