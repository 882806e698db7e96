"""The 2-D Inception backbone of papers 13 and 14 (ICASSP 2020 §3.2, ISMIR 2020): papers.md 14.2.

``"inception"`` (``InceptionNet``) takes ``[batch, input_length, 1]`` audio, computes the log-mel
input in the model (``models.branches.MelInput``, papers.md 1.3 / 14.1: 22,050 Hz, n_fft 1024,
hop 512, 128 Slaney bands, ``log10(1 + 10 S)``, z-scored) and treats it as a one-channel image
``[batch, time, mel, 1]`` (paper 13's "129 x 128": 129 frames x 128 mel bands; ``center=False``:
129 frames are 66,560 samples). Shapes below are ``[batch, time, mel, channels]`` for the paper's
input; every conv is 'same' (XLA/TF SAME: for stride 2 the extra zero goes right), bias on,
``he_uniform``, followed by BatchNorm and ReLU unless said otherwise:

  ====================================================================  ======================
  stage                                                                 output
  ====================================================================  ======================
  log-mel                                                               [B, 129, 128, 1]
  [input BatchNorm: ``input_batchnorm``, off: the paper z-scores]
  stem: conv 5x5 x 64, max-pool 2x2 'valid'                             [B, 64, 64, 64]
  block i = 1..6, stride module (channels C -> 48 + 96 + C):            halves time and mel
      concat[ conv 1x1 x 48 stride 2;
              conv 1x1 x 64 -> conv 3x3 x 96 -> conv 3x3 x 96 stride 2;
              max-pool 3x3 stride 2 'same' (passes the C input channels) ]
  block i, normal module (-> 64 + 64 + 96 + 32 = 256):                  same time and mel
      concat[ conv 1x1 x 64;
              conv 1x1 x 48 -> conv 5x5 x 64;
              conv 1x1 x 64 -> conv 3x3 x 96 -> conv 3x3 x 96;
              avg-pool 3x3 stride 1 'same' (padding not counted) -> conv 1x1 x 32 ]
  after block 6                                                         [B, 1, 1, 256]
  embed: conv 1x1 x 256 + ReLU (no BatchNorm), global average pool      [B, 256]
  L2 normalisation (``normalize``) -> ``embedding``                     [B, 256]
  ``Dense(num_outputs)`` -> ``logits`` (sigmoid in the loss)            [B, num_outputs]
  ====================================================================  ======================

Channels: 64 -> 208 -> 256 (block 1), then 400 -> 256 (blocks 2-6). Branch widths, kernels,
the stride-2 position and the pools are those of the released code (``adobe-research/DeepAFx``
``inception_model.py``, 2-D, ``num_features=6``, ``num_blocks=7``, ``repeatblock=2``); the paper
gives the outline ("64 5x5 filters, 2x2 max-pooling, six Inception blocks each a naive inception
module with stride 2 then another inception module, output 256"). A time or mel axis of length 1
stays 1 (SAME stride 2 on one position = stride 1), which is the code's per-``num_frames`` rule
for short inputs; inputs shorter than 2 ** (num_blocks + 1) frames just end with more blocks at
1 x 1.

Parameters (Flax ``params``; BatchNorm statistics are ``batch_stats``), with a conv + BN unit of
kernel k, C_in -> C_out costing ``k*k*C_in*C_out + C_out`` (kernel, bias) ``+ 2*C_out`` (BN scale,
bias) [derived, ``inception_param_count``]:

* stem: 25*1*64 + 3*64 = 1,792;
* stride module on C channels, widths (a, r, d) = (48, 64, 96):
  ``(a + r)*C + 3a + 3r + 9*r*d + 3d + 9*d*d + 3d`` = 112 C + 139,152;
* normal module on C channels, widths (p, r5, f, r3, d, q) = (64, 48, 64, 64, 96, 32):
  ``(p + r5 + r3 + q)*C + 3(p + r5 + r3 + q) + 25*r5*f + 3f + 9*r3*d + 9*d*d + 6d``
  = 208 C + 216,432;
* block 1: 112*64 + 139,152 + 208*208 + 216,432 = 146,320 + 259,696 = 406,016;
  blocks 2-6: 112*256 + 139,152 + 208*400 + 216,432 = 167,824 + 299,632 = 467,456 each;
* embed: 256*256 + 256 = 65,792;
* backbone total: 1,792 + 406,016 + 5 * 467,456 + 65,792 = **2,810,880**; the head adds
  ``257 * num_outputs`` (50 tags: 12,850, total 2,823,730); ``input_batchnorm`` adds 2.

Choices where papers 13/14 and the code are silent or disagree (all fields):
  * ``input_batchnorm=False``: the paper z-scores the input with mean 0.2 / std 0.25 (§3.1), the
    code normalises with a BatchNorm; the mel defaults are the paper's 0.2 / 0.25 (the group's
    other code uses 0.2262 / 0.2579, papers.md 1.3).
  * BatchNorm momentum 0.99, epsilon 1e-3 (Keras 2 defaults, the code's).
  * ``normalize=True``: the embedding is L2-normalised (paper 13 before every distance; the code
    normalises before its classifier); the head sees the normalised vector (the code's
    ``Dense(num_classes)`` = paper 14's classification model (c)). ``normalize=False`` is paper
    14's "classification without L2 norm".
  * Widths are fields (``stem_features``, ``stride_branches``, ``normal_branches``,
    ``embed_features``), ``num_blocks`` too, so tests and the embedded corpus run narrow copies;
    kernel sizes (5 stem, 1 / 3 / 5 in the modules) are fixed.
As an ``embedding_net`` backbone (papers 13, 14; ``configs/metric_learning.py``) its
``embedding`` is the net's ``features`` and its head (``num_outputs=1``) is unused.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from musicrep_jax.models.branches import MelInput
from musicrep_jax.models.mel_cnn import max_pool_2d
from musicrep_jax.ops.losses import l2_normalize
from musicrep_jax.registry import MODELS

# Paper 13 §3.1's z-score of the log-mel input (papers.md 14.1).
PAPER13_MEL_MEAN = 0.2
PAPER13_MEL_STD = 0.25
# (1x1 stride-2 branch, 3x3 branch reduce, 3x3 branch) of a stride module, and (1x1 branch,
# 5x5 reduce, 5x5, 3x3 reduce, 3x3, pool projection) of a normal module (papers.md 14.2).
PAPER_STRIDE_BRANCHES = (48, 64, 96)
PAPER_NORMAL_BRANCHES = (64, 48, 64, 64, 96, 32)


def stride_module_params(cin: int, widths: Sequence[int] = PAPER_STRIDE_BRANCHES) -> int:
  """Parameters of one stride module on ``cin`` channels (module doc): 112 C + 139,152."""
  a, r, d = widths
  return (a + r) * cin + 3 * (a + r) + 9 * r * d + 3 * d + 9 * d * d + 3 * d


def normal_module_params(cin: int, widths: Sequence[int] = PAPER_NORMAL_BRANCHES) -> int:
  """Parameters of one normal module on ``cin`` channels (module doc): 208 C + 216,432."""
  p, r5, f, r3, d, q = widths
  return ((p + r5 + r3 + q) * cin + 3 * (p + r5 + r3 + q) + 25 * r5 * f + 3 * f
          + 9 * r3 * d + 9 * d * d + 6 * d)


def stride_module_channels(cin: int, widths: Sequence[int]) -> int:
  """Output channels of a stride module: its two conv branches plus the pooled input."""
  return widths[0] + widths[2] + cin


def normal_module_channels(widths: Sequence[int]) -> int:
  """Output channels of a normal module: 1x1 + 5x5 + double 3x3 + pool projection."""
  return widths[0] + widths[2] + widths[4] + widths[5]


def inception_param_count(num_outputs: int, stem_features: int = 64, num_blocks: int = 6,
                          stride_branches: Sequence[int] = PAPER_STRIDE_BRANCHES,
                          normal_branches: Sequence[int] = PAPER_NORMAL_BRANCHES,
                          embed_features: int = 256, input_batchnorm: bool = False) -> int:
  """Trainable Flax parameters of ``InceptionNet`` (module doc): 2,810,880 + 257 * num_outputs
  with the paper's widths [derived]."""
  count = (2 if input_batchnorm else 0) + 25 * stem_features + 3 * stem_features
  cin = stem_features
  for _ in range(num_blocks):
    count += stride_module_params(cin, stride_branches)
    cin = stride_module_channels(cin, stride_branches)
    count += normal_module_params(cin, normal_branches)
    cin = normal_module_channels(normal_branches)
  count += cin * embed_features + embed_features
  return count + embed_features * num_outputs + num_outputs


def he_uniform(key, shape, dtype=jnp.float32):
  """``flax.linen.initializers.he_uniform()`` (U(+-sqrt(6 / fan_in)), fan_in = all but the last
  axis) drawn as one flat vector then reshaped: the same distribution, but XLA:CPU compiles the
  4-D draw of a 2-D conv kernel in ~4 s and the flat one in well under a second (measured;
  ~70 kernels here)."""
  limit = jnp.sqrt(6.0 / math.prod(shape[:-1]))
  return jax.random.uniform(key, (math.prod(shape),), dtype, -limit, limit).reshape(shape)


class ConvBN2D(nn.Module):
  """Conv2D ('same', ``strides``, bias, ``he_uniform``) + BatchNorm + ReLU on
  ``[batch, time, mel, channels]`` (``mel_cnn.Conv2DBNAct`` with a stride)."""

  features: int
  kernel_size: int
  strides: int = 1
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = nn.Conv(self.features, (self.kernel_size,) * 2, strides=(self.strides,) * 2,
                padding="SAME", kernel_init=he_uniform, dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, dtype=self.dtype)(x)
    return nn.relu(x)


class StrideModule(nn.Module):
  """``[B, T, M, C] -> [B, ceil(T/2), ceil(M/2), a + d + C]``: 1x1 stride-2 conv, 1x1 -> 3x3 ->
  3x3 stride-2 convs, 3x3 stride-2 max-pool of the input (papers.md 14.2)."""

  widths: Sequence[int] = PAPER_STRIDE_BRANCHES
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    a, r, d = self.widths
    unit = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    b1 = ConvBN2D(a, 1, 2, name="b1x1", **unit)(x, train)
    b3 = ConvBN2D(r, 1, name="dbl_1", **unit)(x, train)
    b3 = ConvBN2D(d, 3, name="dbl_2", **unit)(b3, train)
    b3 = ConvBN2D(d, 3, 2, name="dbl_3", **unit)(b3, train)
    pool = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    return jnp.concatenate([b1, b3, pool], axis=-1)


class NormalModule(nn.Module):
  """``[B, T, M, C] -> [B, T, M, p + f + d + q]``: 1x1; 1x1 -> 5x5; 1x1 -> 3x3 -> 3x3; 3x3
  average pool (stride 1, padding not counted, as Keras' 'same') -> 1x1 (papers.md 14.2)."""

  widths: Sequence[int] = PAPER_NORMAL_BRANCHES
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    p, r5, f, r3, d, q = self.widths
    unit = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    b1 = ConvBN2D(p, 1, name="b1x1", **unit)(x, train)
    b5 = ConvBN2D(r5, 1, name="b5x5_1", **unit)(x, train)
    b5 = ConvBN2D(f, 5, name="b5x5_2", **unit)(b5, train)
    b3 = ConvBN2D(r3, 1, name="dbl_1", **unit)(x, train)
    b3 = ConvBN2D(d, 3, name="dbl_2", **unit)(b3, train)
    b3 = ConvBN2D(d, 3, name="dbl_3", **unit)(b3, train)
    pool = nn.avg_pool(x, (3, 3), strides=(1, 1), padding="SAME", count_include_pad=False)
    pool = ConvBN2D(q, 1, name="pool_proj", **unit)(pool, train)
    return jnp.concatenate([b1, b5, b3, pool], axis=-1)


@MODELS.register("inception")
class InceptionNet(MelInput):
  """Papers 13/14's 2-D Inception network on the on-device log-mel (module docstring). Returns
  ``{"logits": [batch, num_outputs], "embedding": [batch, embed_features]}``.

  Attributes:
    num_outputs: head outputs (MSD's 50 tags by default; 1 and unused as a backbone).
    stem_features: channels of the 5x5 stem conv (64).
    num_blocks: stride + normal module pairs (6).
    stride_branches: ``(1x1 stride-2, 3x3 reduce, 3x3)`` widths (48, 64, 96).
    normal_branches: ``(1x1, 5x5 reduce, 5x5, 3x3 reduce, 3x3, pool projection)`` widths
      (64, 48, 64, 64, 96, 32); their output is ``64 + 64 + 96 + 32 = 256``.
    embed_features: width of the final 1x1 conv = the embedding (256).
    input_batchnorm: the code's BatchNorm on the input (off: the paper z-scores).
    normalize: L2-normalise the embedding (and so the head's input).
    bn_momentum, bn_epsilon: Keras 2 defaults 0.99 / 1e-3.
    dtype: compute dtype of the CNN; the front end, BatchNorm statistics, the global average
      pool and the head run in float32 (musicrep_jax/training/precision.py).
  """

  mel_mean: Optional[float] = PAPER13_MEL_MEAN
  mel_std: Optional[float] = PAPER13_MEL_STD
  num_outputs: int = 50
  stem_features: int = 64
  num_blocks: int = 6
  stride_branches: Sequence[int] = PAPER_STRIDE_BRANCHES
  normal_branches: Sequence[int] = PAPER_NORMAL_BRANCHES
  embed_features: int = 256
  input_batchnorm: bool = False
  normalize: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray, train: bool = False) -> dict:
    """audio: ``[batch, input_length, 1]`` float waveform in [-1, 1)."""
    if len(self.stride_branches) != 3 or len(self.normal_branches) != 6:
      raise ValueError(f"stride_branches needs 3 widths and normal_branches 6, got "
                       f"{tuple(self.stride_branches)} and {tuple(self.normal_branches)}")
    x = self.mel(audio)[..., None]  # [batch, frames, n_mels, 1]
    if x.shape[1] < 2 or x.shape[2] < 2:
      raise ValueError(f"the Inception stem pools 2x2: {self.num_frames} frames x "
                       f"{self.n_mels} mel bands is too small")
    if self.input_batchnorm:
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, name="input_bn")(x)
    x = x.astype(self.dtype)
    unit = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    x = max_pool_2d(ConvBN2D(self.stem_features, 5, name="stem", **unit)(x, train), 2, 2)
    for i in range(self.num_blocks):
      x = StrideModule(tuple(self.stride_branches), name=f"stride_{i}", **unit)(x, train)
      x = NormalModule(tuple(self.normal_branches), name=f"normal_{i}", **unit)(x, train)
    x = nn.Conv(self.embed_features, (1, 1), kernel_init=he_uniform,
                dtype=self.dtype, name="embed")(x)
    # GlobalAveragePooling2D, summed and returned in float32: [batch, embed_features].
    embedding = jnp.mean(nn.relu(x), axis=(1, 2), dtype=jnp.float32)
    if self.normalize:
      embedding = l2_normalize(embedding)
    logits = nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform(),
                      dtype=jnp.float32, name="head")(embedding)
    return {"logits": logits, "embedding": embedding}
