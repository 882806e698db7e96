"""Sample-level CNN building blocks (Basic, SE, Res-1/2, ReSE-1/2) with multi-level aggregation:
Kim, Lee & Nam, "Sample-level CNN Architectures for Music Auto-tagging Using Raw Waveforms"
(ICASSP 2018), papers.md section 6. Follows the official code ``tae-jun/resemul/model.py``
(papers.md 6.2); the Res-1/ReSE-1 blocks, absent there, follow the journal code
``tae-jun/sampleaudio/lib/model.py`` (papers.md 6.6).

Layer list of ``SampleCNNBlocks`` (m = 3, n = 9, input ``[batch, 59049, 1]``):

  conv0:   Conv1D(128, 3, stride 3, 'valid') + BN + ReLU                  -> [batch, 19683, 128]
  block_i: one block of ``BLOCKS[block]`` (i = 0..8) ending in MaxPool(3)  -> time / 3 each,
           channels 128, 128, 256, 256, 256, 256, 256, 256, 512            -> [batch, 1, 512]
  pool:    global max over time of the last block (512-d), or with ``multi_level`` of each of
           the last 3 blocks (9x256, 3x256, 1x512), concatenated           -> [batch, 1024]
  head:    Dense(d) + BN + ReLU (= "embedding", [batch, d]) -> Dropout(0.5) -> Dense(num_outputs)

Blocks (all convs kernel ``m``, 'same', bias, ``he_uniform``; papers.md 6.2):

  basic: Conv -> BN -> ReLU -> MaxPool(m).
  se:    basic, then squeeze-excitation *after* the max-pool: GAP over time -> Dense(alpha*C, ReLU)
         -> Dense(C, sigmoid) -> channel-wise scale; alpha = 16 amplifies (``glorot_uniform``).
  res1:  shortcut (identity, or Conv1D(C, 1, ``glorot_uniform``) + BN where channels change);
         residual Conv -> BN; Add -> ReLU -> MaxPool(m).
  res2:  as res1 with residual Conv -> BN -> ReLU -> Dropout(0.2) -> Conv -> BN.
  rese1, rese2: res1, res2 with the SE excitation scaling the residual path before the Add.

Trainable parameters, 50 outputs, m = 3, n = 9, alpha = 16 (no multi / multi):
  basic 1,869,874 / 2,683,442; se 23,929,138 / 24,742,706; res2 4,107,314 / 4,920,882;
  rese2 26,166,578 / 26,980,146 (papers.md 6.2, [derived from the code]); res1 2,036,018 /
  2,849,586 and rese1 24,095,282 / 24,908,850 ([derived] here: basic + the two shortcuts
  33,536 + 132,608; + SE 32*C^2 + 17*C per block = 22,059,264; multi adds 813,568 to the head).

Choices where the paper is silent or the sources differ (each is a field):
  * ``bn_epsilon=1e-3``, ``bn_momentum=0.99``: Keras 2 defaults used by resemul (papers.md 1.5).
  * ``amplifying_ratio=16`` (resemul ``--alpha 16``); sampleaudio's 0.125 is a reduction, set it
    explicitly. SE width is ``max(1, round(alpha * C))``.
  * ``first_padding='VALID'`` (resemul); sampleaudio uses 'SAME' with variable-length input:
    set ``first_padding='SAME', check_length=False`` (e.g. its 8-block 22,050-sample models).
  * Channels follow the code's rule for any n (``resemul_channels``): ``init_features`` for conv0,
    doubled at block index 2 and at the last block; ``channels`` overrides it (n + 1 entries).
  * ``m`` is the kernel, the pool and the first stride (the paper uses m = 3 only).
  * The "embedding" is the ReLU output of the first head Dense (before dropout), the analogue of
    SampleCNN's 1x1-conv embedding; "logits" are pre-sigmoid (the code's final sigmoid/softmax is
    applied by the task's loss).
  * L2 weight decay (0 in the paper's runs) belongs to the optimizer, not here.
  * Block defaults ``block='se', multi_level=True`` are the code's ``resemul()`` defaults.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from musicrep_jax.models.sample_cnn import ConvBNReLU, input_length, max_pool_time
from musicrep_jax.registry import MODELS, Registry

BLOCKS = Registry("block")


def resemul_channels(n: int, init_features: int = 128) -> tuple[int, ...]:
  """Channels of conv0 and blocks 0..n-1 (``n + 1`` entries), the code rule of papers.md 6.2.

  >>> resemul_channels(9)
  (128, 128, 128, 256, 256, 256, 256, 256, 256, 512)
  """
  channels = [init_features]
  features = init_features
  for i in range(n):
    if i == 2 or i == n - 1:
      features *= 2
    channels.append(features)
  return tuple(channels)


class ConvBN(nn.Module):
  """Conv1D + BatchNorm (no activation) on ``[batch, time, channels]``."""

  features: int
  kernel_size: int
  kernel_init: nn.initializers.Initializer = nn.initializers.he_uniform()
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = nn.Conv(self.features, kernel_size=(self.kernel_size,), padding="SAME",
                kernel_init=self.kernel_init, dtype=self.dtype)(x)
    return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                        epsilon=self.bn_epsilon, dtype=self.dtype)(x)


class SqueezeExcitation(nn.Module):
  """SE of papers.md 6.2: ``[batch, time, C] -> [batch, time, C]`` scaled per channel by
  sigmoid(Dense(C)(ReLU(Dense(alpha * C)(mean over time)))); alpha amplifies (16 in resemul)."""

  amplifying_ratio: float = 16.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    channels = x.shape[-1]
    hidden = max(1, int(round(self.amplifying_ratio * channels)))
    dense = lambda features: nn.Dense(features, kernel_init=nn.initializers.xavier_uniform(),
                                      dtype=self.dtype)
    s = jnp.mean(x, axis=1, keepdims=True)  # [batch, 1, C]
    s = nn.relu(dense(hidden)(s))
    s = nn.sigmoid(dense(channels)(s))
    return x * s


class _BlockBase(nn.Module):
  """Shared fields of every block: ``[batch, time, C_in] -> [batch, time // m, features]``."""

  features: int
  m: int = 3
  amplifying_ratio: float = 16.0
  dropout_rate: float = 0.2  # between the two convs of res2/rese2 only
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32
  pool_impl: str = "auto"  # max_pool_time's formulation


@BLOCKS.register("basic")
class BasicBlock(_BlockBase):
  """Conv -> BN -> ReLU -> MaxPool(m) (papers.md 6.2 "Basic")."""

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = ConvBNReLU(self.features, self.m, bn_momentum=self.bn_momentum,
                   bn_epsilon=self.bn_epsilon, dtype=self.dtype)(x, train)
    return max_pool_time(x, self.m, self.pool_impl)


@BLOCKS.register("se")
class SEBlock(_BlockBase):
  """Basic block, then squeeze-excitation after the max-pool (papers.md 6.2 "SE")."""

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = ConvBNReLU(self.features, self.m, bn_momentum=self.bn_momentum,
                   bn_epsilon=self.bn_epsilon, dtype=self.dtype)(x, train)
    x = max_pool_time(x, self.m, self.pool_impl)
    return SqueezeExcitation(self.amplifying_ratio, self.dtype, name="se")(x)


class ResidualBlock(_BlockBase):
  """Res-n / ReSE-n (papers.md 6.2): residual path of ``num_convs`` Conv+BN (ReLU + Dropout
  between them), optional SE on that path, Add with the shortcut -> ReLU -> MaxPool(m).
  Sub-modules: ``shortcut`` (only where channels change), ``conv0``, ``conv1``, ``se``."""

  num_convs: int = 2
  use_se: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    conv_bn = lambda kernel, init, name: ConvBN(
        self.features, kernel, init, self.bn_momentum, self.bn_epsilon, self.dtype, name=name)
    if x.shape[-1] != self.features:
      shortcut = conv_bn(1, nn.initializers.xavier_uniform(), "shortcut")(x, train)
    else:
      shortcut = x
    for i in range(self.num_convs):
      if i > 0:
        x = nn.relu(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      x = conv_bn(self.m, nn.initializers.he_uniform(), f"conv{i}")(x, train)
    if self.use_se:
      x = SqueezeExcitation(self.amplifying_ratio, self.dtype, name="se")(x)
    x = nn.relu(shortcut + x)
    return max_pool_time(x, self.m, self.pool_impl)


@BLOCKS.register("res1")
class Res1Block(ResidualBlock):
  """Res-1: residual path Conv -> BN (papers.md 6.2, sampleaudio ``num_convs=1``)."""

  num_convs: int = 1
  use_se: bool = False


@BLOCKS.register("res2")
class Res2Block(ResidualBlock):
  """Res-2: residual path Conv -> BN -> ReLU -> Dropout(0.2) -> Conv -> BN (papers.md 6.2)."""

  num_convs: int = 2
  use_se: bool = False


@BLOCKS.register("rese1")
class ReSE1Block(ResidualBlock):
  """ReSE-1: Res-1 with SE scaling the residual path before the Add (papers.md 6.2)."""

  num_convs: int = 1
  use_se: bool = True


@BLOCKS.register("rese2")
class ReSE2Block(ResidualBlock):
  """ReSE-2: Res-2 with SE scaling the residual path before the Add (papers.md 6.2)."""

  num_convs: int = 2
  use_se: bool = True


@MODELS.register("resemul")
class SampleCNNBlocks(nn.Module):
  """SampleCNN with paper 5's blocks and multi-level aggregation (papers.md 6.2). Returns
  ``{"logits": [batch, num_outputs], "embedding": [batch, d]}``, ``d`` = head width (512, or
  1024 with ``multi_level`` at the paper's size).

  Attributes:
    num_outputs: tags (50 for MTAT/MSD).
    block: a ``BLOCKS`` name: basic, se, res1, res2, rese1, rese2.
    m: kernel of every conv, pool size of every block, filter = stride of conv0 (3 in the paper).
    n: number of blocks (9 in the paper; 8 in sampleaudio's 1-s speech/DCASE models).
    init_features: channels of conv0 for the default channel rule.
    channels: ``n + 1`` channel counts (conv0, blocks); ``None`` uses ``resemul_channels``.
    amplifying_ratio: SE alpha (16; used by se, rese1, rese2 only).
    block_dropout_rate: dropout between the two convs of res2/rese2 (0.2).
    multi_level: concatenate global max-pools of the last ``multi_level_blocks`` block outputs.
    multi_level_blocks: K = 3 in the paper/code.
    head_width: width of the first head Dense; ``None`` is its input width (code rule).
    dropout_rate: before the output Dense (0.5).
    first_padding: 'VALID' (resemul) or 'SAME' (sampleaudio) for conv0.
    check_length: require ``time == input_length``; turn off for variable-length input.
    dtype: compute dtype of the convolutions, the SE and head Dense layers and the activations;
      parameters, BatchNorm statistics and the output layer stay float32, both outputs are
      float32 (musicrep_jax/training/precision.py).
    pool_impl: formulation of the blocks' max-pools (``sample_cnn.max_pool_time``):
      ``"auto"`` (default: ``"window"`` on TPU, ``"reshape"`` elsewhere), ``"reshape"`` or
      ``"window"`` (fewest HBM bytes on TPU v5e).
  """

  num_outputs: int = 50
  block: str = "se"
  m: int = 3
  n: int = 9
  init_features: int = 128
  channels: Optional[Sequence[int]] = None
  amplifying_ratio: float = 16.0
  block_dropout_rate: float = 0.2
  multi_level: bool = True
  multi_level_blocks: int = 3
  head_width: Optional[int] = None
  dropout_rate: float = 0.5
  first_padding: str = "VALID"
  check_length: bool = True
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32
  pool_impl: str = "auto"

  @property
  def input_length(self) -> int:
    return input_length(self.m, self.n)

  def _validate(self, audio: jnp.ndarray) -> tuple[int, ...]:
    if audio.ndim != 3 or audio.shape[2] != 1 or (
        self.check_length and audio.shape[1] != self.input_length):
      raise ValueError(
          f"resemul m={self.m}, n={self.n} expects audio [batch, {self.input_length}, 1], "
          f"got {audio.shape}")
    channels = tuple(self.channels or resemul_channels(self.n, self.init_features))
    if len(channels) != self.n + 1:
      raise ValueError(f"channels needs n + 1 = {self.n + 1} entries, got {len(channels)}")
    if self.multi_level and not 1 <= self.multi_level_blocks <= self.n:
      raise ValueError(f"multi_level_blocks must be in 1..{self.n}, got {self.multi_level_blocks}")
    return channels

  @nn.compact
  def __call__(self, audio: jnp.ndarray, train: bool = False) -> dict:
    """audio: ``[batch, time, 1]`` float waveform (``time == self.input_length`` by default)."""
    channels = self._validate(audio)
    block_cls = BLOCKS.get(self.block)
    x = ConvBNReLU(channels[0], self.m, strides=self.m, padding=self.first_padding,
                   bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype,
                   name="conv0")(audio, train)
    outputs = []
    for i in range(self.n):
      x = block_cls(features=channels[i + 1], m=self.m, amplifying_ratio=self.amplifying_ratio,
                    dropout_rate=self.block_dropout_rate, bn_momentum=self.bn_momentum,
                    bn_epsilon=self.bn_epsilon, dtype=self.dtype, pool_impl=self.pool_impl,
                    name=f"block{i}")(x, train)
      if x.shape[1] < 1:
        raise ValueError(f"input of {audio.shape[1]} samples is too short: block {i} has no frames")
      outputs.append(x)
    levels = outputs[-self.multi_level_blocks:] if self.multi_level else outputs[-1:]
    x = jnp.concatenate([jnp.max(level, axis=1) for level in levels], axis=-1)  # [batch, d]

    x = nn.Dense(self.head_width or x.shape[-1], kernel_init=nn.initializers.xavier_uniform(),
                 dtype=self.dtype, name="head_dense")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, dtype=self.dtype, name="head_bn")(x)
    embedding = nn.relu(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(embedding)
    # The output layer computes in float32 whatever the compute dtype: logits feed the loss.
    logits = nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform(),
                      dtype=jnp.float32, name="logits")(x)
    return {"logits": logits, "embedding": embedding.astype(jnp.float32)}
