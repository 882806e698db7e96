"""SampleCNN: the m^n-DCNN of Lee, Park, Kim & Nam, "Sample-level Deep Convolutional Neural
Networks for Music Auto-tagging Using Raw Waveforms" (SMC 2017), papers.md section 2.

Input ``[batch, time, 1]`` raw waveform with ``time = first_filter * m**n`` samples. A strided
convolution (filter = stride = ``first_filter``, 'valid') turns it into ``m**n`` frames; ``n``
blocks of Conv1D(filter m, 'same') + BatchNorm + ReLU + MaxPool(m) shrink time by ``m`` each down to
length 1; a 1x1 convolution + BatchNorm + ReLU gives the embedding; dropout and a dense layer give
one logit per tag (sigmoid is applied by the loss and at evaluation, not here).

Choices (papers.md 2.3, 1.5):
  * Channels follow the official code's rule for every m^n variant: the first three convolutions
    have 128 channels, the last strided block and the 1x1 convolution 512, all others 256
    (``paper_channels``). ``channels`` overrides it (tiny widths for tests and the demo).
  * Every conv has a bias and ``he_uniform`` init; BatchNorm momentum 0.99, epsilon 1e-5 (the
    Keras-1 JSON of the trained model); dense layer ``glorot_uniform``; dropout 0.5.
  * Under ``jax.jit`` with the batch sharded over a mesh, BatchNorm statistics are computed over
    the global batch (synchronised BatchNorm), whatever the number of devices.
  * The MSD variant of paper 3 keeps 256 channels at the end and has no dropout: set
    ``channels`` and ``dropout_rate=0``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from musicrep_jax.registry import MODELS


def paper_channels(n: int) -> tuple[int, ...]:
  """Channels of conv0, blocks 1..n and the 1x1 conv (``n + 2`` entries), papers.md 2.3.

  >>> paper_channels(9)
  (128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512)
  """
  channels = []
  for layer in range(n + 2):
    if layer < 3:
      channels.append(128)
    elif layer >= n:
      channels.append(512)
    else:
      channels.append(256)
  return tuple(channels)


POOL_IMPLS = ("auto", "reshape", "window")


def max_pool_time(x: jnp.ndarray, size: int, impl: str = "reshape") -> jnp.ndarray:
  """Non-overlapping max-pool over time, 'valid' (floor): ``[batch, time, channels] ->
  [batch, time // size, channels]`` (Keras ``MaxPooling1D(size)``, papers.md 1.5).

  Formulations with identical values; they differ in the gradient's form and so in the
  memory traffic and speed of the backward pass on each backend (docs/benchmarks.md, "Memory
  floor of the train step"):

  * ``"reshape"``: reshape + max; the gradient is an elementwise mask instead of XLA's
    select-and-scatter, which dominated the CPU backward pass. At exact ties inside a window
    the gradient is shared between the tied inputs rather than given to the first.
  * ``"window"``: ``nn.max_pool`` (reduce-window; select-and-scatter backward, the gradient to
    the first maximum as in Keras). Fewest HBM bytes on TPU v5e (-20 % for the SampleCNN 3^9
    train step), slowest on CPU.
  * ``"auto"`` (the models' default): ``"window"`` when the program is lowered for TPU,
    ``"reshape"`` for any other platform, chosen by ``jax.lax.platform_dependent`` at lowering
    time, so an ahead-of-time compile for a TPU topology on a CPU host (``musicrep plan``) gets
    the TPU choice. The CPU program is the ``"reshape"`` one (the same compiled ops and bytes).
    GPUs get ``"reshape"`` until a GPU measurement says otherwise (select-and-scatter was the
    slow part on CPU; ``bench/accelerator_check.sh`` times both on a GPU).

  (A fourth, the elementwise maximum of the ``size`` strided slices, moved 10 % fewer bytes on
  CPU but its gradient under ``jax.jit`` on XLA's CPU backend differed from its eager value in
  a small SampleCNN (jax 0.10.2), so it is not offered.)

  After a ReLU the only common ties are zeros, whose gradient the ReLU zeroes whichever is used.
  """
  batch, time, channels = x.shape
  kept = (time // size) * size
  if impl == "reshape":
    return x[:, :kept].reshape(batch, time // size, size, channels).max(axis=2)
  if impl == "window":
    return nn.max_pool(x, (size,), strides=(size,), padding="VALID")
  if impl == "auto":
    return jax.lax.platform_dependent(
        x, tpu=lambda v: max_pool_time(v, size, "window"),
        default=lambda v: max_pool_time(v, size, "reshape"))
  raise ValueError(f"pool_impl must be one of {POOL_IMPLS}, got {impl!r}")


def input_length(m: int, n: int, first_filter: Optional[int] = None) -> int:
  """Samples the m^n-DCNN consumes: ``first_filter * m**n`` (59,049 for the 3^9 model)."""
  return (first_filter or m) * m**n


class ConvBNReLU(nn.Module):
  """Conv1D + BatchNorm + ReLU on ``[batch, time, channels]``."""

  features: int
  kernel_size: int
  strides: int = 1
  padding: str = "SAME"
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = nn.Conv(
        self.features,
        kernel_size=(self.kernel_size,),
        strides=(self.strides,),
        padding=self.padding,
        kernel_init=nn.initializers.he_uniform(),
        dtype=self.dtype,
    )(x)
    x = nn.BatchNorm(
        use_running_average=not train,
        momentum=self.bn_momentum,
        epsilon=self.bn_epsilon,
        dtype=self.dtype,
    )(x)
    return nn.relu(x)


@MODELS.register("sample_cnn")
class SampleCNN(nn.Module):
  """m^n-DCNN (papers.md section 2). Returns ``{"logits": [batch, num_outputs],
  "embedding": [batch, channels[-1]]}``.

  Attributes:
    num_outputs: tags (50 for MTAT/MSD).
    m: filter length and pooling size of the blocks (2..5 in the paper's sweep).
    n: number of pooled blocks; the 3^9 model has n = 9.
    first_filter: filter length = stride of the first conv; ``None`` means ``m`` (sample-level);
      larger values give the paper's frame-level variants (e.g. 729).
    channels: ``n + 2`` channel counts; ``None`` uses ``paper_channels(n)``.
    dropout_rate: before the dense layer (0.5 in paper 1).
    dtype: compute dtype of the convolutions and activations (``bfloat16`` for mixed
      precision); parameters, BatchNorm statistics and the output layer stay float32, and both
      outputs are float32 (musicrep_jax/training/precision.py).
    pool_impl: formulation of the max-pools (``max_pool_time``): ``"auto"`` (default:
      ``"window"`` on TPU, ``"reshape"`` elsewhere), ``"reshape"`` or ``"window"`` (fewest HBM
      bytes on TPU v5e, slower on CPU); same values, gradients equal but at exact ties.
  """

  num_outputs: int = 50
  m: int = 3
  n: int = 9
  first_filter: Optional[int] = None
  channels: Optional[Sequence[int]] = None
  dropout_rate: float = 0.5
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-5
  dtype: jnp.dtype = jnp.float32
  pool_impl: str = "auto"

  @property
  def input_length(self) -> int:
    return input_length(self.m, self.n, self.first_filter)

  @nn.compact
  def __call__(self, audio: jnp.ndarray, train: bool = False) -> dict:
    """audio: ``[batch, time, 1]`` float waveform with ``time == self.input_length``."""
    if audio.ndim != 3 or audio.shape[1] != self.input_length or audio.shape[2] != 1:
      raise ValueError(
          f"SampleCNN m={self.m}, n={self.n} expects audio [batch, {self.input_length}, 1], "
          f"got {audio.shape}")
    channels = tuple(self.channels or paper_channels(self.n))
    if len(channels) != self.n + 2:
      raise ValueError(f"channels needs n + 2 = {self.n + 2} entries, got {len(channels)}")
    block = lambda features, kernel, strides=1, padding="SAME": ConvBNReLU(
        features, kernel, strides, padding, self.bn_momentum, self.bn_epsilon, self.dtype)

    first = self.first_filter or self.m
    x = block(channels[0], first, strides=first, padding="VALID")(audio, train)
    for i in range(self.n):
      x = block(channels[i + 1], self.m)(x, train)
      x = max_pool_time(x, self.m, self.pool_impl)
    x = block(channels[-1], 1)(x, train)
    embedding = x.reshape((x.shape[0], -1))  # time is 1 here: [batch, channels[-1]]
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(embedding)
    # The output layer computes in float32 whatever the compute dtype: logits feed the loss.
    logits = nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform(),
                      dtype=jnp.float32)(x)
    return {"logits": logits, "embedding": embedding.astype(jnp.float32)}
