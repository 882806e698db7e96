"""Mel-spectrogram CNNs that take raw audio and compute the log-mel front end inside the model.

Both models take ``[batch, samples, 1]`` audio (the pipeline's crop of ``input_length`` samples),
run ``musicrep_jax.frontends.mel`` (papers.md 1.3: 22,050 Hz, n_fft 1024, hop 512, Hann,
magnitude, 128 Slaney mel bands, ``log10(1 + 10 S)``, standardised with 0.2262 / 0.2579) in
float32 on the device, and convolve over time with the 128 mel bins as channels (1-D "DCNN").

* ``"mel_dcnn"`` (``MelDCNN``): paper 4's 5-layer DCNN (papers.md 5.2, exact layer list).
* ``"mel_frame_cnn"`` (``MelFrameCNN``): paper 2's frame-level local CNNs at 18 / 27 / 54 frames
  (papers.md 3.1; the unknowns of 3.2 are chosen and documented on the class).
* ``"mel_cnn2d"`` (``MelCNN2D``): the 2-D CNN baseline papers 1 and 2 compare with (Choi et al.'s
  FCN, "2D CNN (Choi et al.)", MTAT 0.894, papers.md 2.6 and 3.3): 3x3 convolutions over
  time x mel with the mel bins as an image axis, not as channels. Its own front end (12 kHz,
  96 bands, dB) is set in its config.

Framing choice (all three models): ``center=False`` by default, so a crop of
``(frames - 1) * 512 + 1024`` samples gives exactly the frames the papers' whole-song
(``center=True``) spectrogram has at the same position: every frame sees real audio, no padding.
129 frames need 66,560 samples. ``center=True`` (reflect padding as librosa < 0.10) is a field;
it needs ``(frames - 1) * 512`` samples (65,536) but its first and last frames see reflected audio.
"""

from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from musicrep_jax.models.branches import MelInput
from musicrep_jax.models.sample_cnn import ConvBNReLU, max_pool_time
from musicrep_jax.registry import MODELS


def dcnn_param_count(num_outputs: int, n_mels: int = 128,
                     channels: Sequence[int] = (128, 128, 128, 128, 256),
                     kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1)) -> int:
  """Trainable Flax parameters of ``MelDCNN``: conv kernels + biases, BN scale + bias, dense.

  Paper 4 with 128 mel bins: 264,448 before the dense layer [derived]; Keras also counts the BN
  moving mean/variance (+1,536), which Flax keeps in ``batch_stats``.
  """
  count, cin = 0, n_mels
  for c, k in zip(channels, kernel_sizes):
    count += k * cin * c + c + 2 * c
    cin = c
  return count + cin * num_outputs + num_outputs


@MODELS.register("mel_dcnn")
class MelDCNN(MelInput):
  """Paper 4's "DCNN" (papers.md 5.2) on the on-device mel front end. Returns
  ``{"logits": [batch, num_outputs], "embedding": [batch, channels[-1]]}``.

  Layers on ``[batch, 129, 128]`` (time x mel-bins-as-channels), Conv1D 'same' (Flax SAME =
  Keras/TF for even kernels) + BatchNorm + ReLU + MaxPool('valid'):
  conv(128, 4) pool 4 -> 32; conv(128, 4) pool 4 -> 8; conv(128, 4) pool 4 -> 2;
  conv(128, 2) pool 2 -> 1; conv(256, 1) -> 1; global average pool -> the 256-d
  "deep artist feature" (``embedding``); ``Dense(num_outputs)`` -> ``logits`` (the basic model's
  softmax over artists is the loss's job; the Siamese model uses ``embedding``).

  Attributes:
    num_outputs: artists (500 ... 10,000 in paper 4) or tags.
    channels, kernel_sizes, pool_sizes: per conv layer (paper values by default; pool 1 = none).
    dropout_rate: before the dense layer; 0 because paper 4's Dropout(0.5) is not wired [code].
    bn_momentum, bn_epsilon: Keras-2 defaults 0.99 / 1e-3 (papers.md 1.5).
    dtype: compute dtype of the CNN; the front end, BatchNorm statistics, the global average
      pool and the output layer run in float32 (musicrep_jax/training/precision.py).
  The code's L2 weight decay 1e-5 on conv kernels belongs to the optimiser config.
  """

  num_outputs: int = 1000
  channels: Sequence[int] = (128, 128, 128, 128, 256)
  kernel_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  pool_sizes: Sequence[int] = (4, 4, 4, 2, 1)
  dropout_rate: float = 0.0
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray, train: bool = False) -> dict:
    """audio: ``[batch, input_length, 1]`` float waveform in [-1, 1)."""
    if not len(self.channels) == len(self.kernel_sizes) == len(self.pool_sizes):
      raise ValueError("channels, kernel_sizes and pool_sizes need one entry per conv layer")
    x = self.mel(audio).astype(self.dtype)
    for c, k, p in zip(self.channels, self.kernel_sizes, self.pool_sizes):
      x = ConvBNReLU(c, k, 1, "SAME", self.bn_momentum, self.bn_epsilon, self.dtype)(x, train)
      if p > 1:
        x = max_pool_time(x, p)
    # GlobalAveragePooling1D, summed and returned in float32: [batch, channels[-1]].
    embedding = jnp.mean(x, axis=1, dtype=jnp.float32)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(embedding)
    logits = nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform(),
                      dtype=jnp.float32)(x)  # float32 output layer: the logits feed the loss.
    return {"logits": logits, "embedding": embedding.astype(jnp.float32)}


def frame_cnn_num_convs(num_frames: int) -> int:
  """Conv layers of paper 2's local CNN: 3 for the 18- and 27-frame models, 4 for 54 frames
  (papers.md 3.1 [slides]); 4 for anything longer than 27 frames."""
  return 3 if num_frames <= 27 else 4


@MODELS.register("mel_frame_cnn")
class MelFrameCNN(MelInput):
  """Paper 2's frame-level local CNN (papers.md 3.1) on ``num_frames`` mel frames (18, 27, 54).
  Returns ``{"logits": [batch, num_outputs], "embedding": [batch, channels[-1]],
  "multi_level": [batch, sum(channels)]}``.

  Known [slides]: 18/27 frames: conv1 -> pool -> conv2 -> pool -> conv3 -> (pool) -> fc -> tags;
  54 frames: one more pool + conv4. Stage 2 max-pools every conv layer's output over time and
  concatenates the layers: that is ``multi_level`` here (per excerpt; the song-level average over
  excerpts and the global DNN are outside the model).

  Chosen for the unknowns (papers.md 3.2), all fields:
    * 1-D convolutions over time, mel bins as channels (the group's later code);
    * kernel 3 'same', max-pool 3 'valid' between convs (18 -> 6 -> 2, 27 -> 9 -> 3,
      54 -> 18 -> 6 -> 2: the three input sizes are exactly the multiples of 3 this needs), then
      a global max over the remaining frames (the "(pool)" of the 27-frame model reaches 1 frame);
    * 128 channels per conv (as paper 4's DCNN); ``embedding`` = global max of the last conv;
    * "fc -> tags" = one ``Dense(num_outputs)`` on the embedding (``hidden_units > 0`` inserts a
      ReLU hidden layer first), dropout 0.5 before it (paper 1's tagging models of the same year);
    * BatchNorm after every conv, momentum 0.99, epsilon 1e-3 (Keras default; papers.md 1.5).
  """

  num_frames: int = 27
  num_outputs: int = 50
  channels: Optional[Sequence[int]] = None
  kernel_size: int = 3
  pool_size: int = 3
  hidden_units: int = 0
  dropout_rate: float = 0.5
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  def layer_channels(self) -> tuple[int, ...]:
    return tuple(self.channels or (128,) * frame_cnn_num_convs(self.num_frames))

  @nn.compact
  def __call__(self, audio: jnp.ndarray, train: bool = False) -> dict:
    """audio: ``[batch, input_length, 1]`` float waveform in [-1, 1)."""
    x = self.mel(audio).astype(self.dtype)
    levels = []
    channels = self.layer_channels()
    for i, c in enumerate(channels):
      if i > 0:
        if x.shape[1] < self.pool_size:
          raise ValueError(f"{self.num_frames} frames are too few for {len(channels)} convs "
                           f"with pool {self.pool_size}")
        x = max_pool_time(x, self.pool_size)
      x = ConvBNReLU(c, self.kernel_size, 1, "SAME", self.bn_momentum, self.bn_epsilon,
                     self.dtype)(x, train)
      levels.append(jnp.max(x, axis=1))  # stage-2 feature of this layer: [batch, c]
    embedding = levels[-1]
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(embedding)
    if self.hidden_units:
      x = nn.relu(nn.Dense(self.hidden_units, kernel_init=nn.initializers.xavier_uniform(),
                           dtype=self.dtype)(x))
    logits = nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform(),
                      dtype=jnp.float32)(x)  # float32 output layer: the logits feed the loss.
    return {"logits": logits, "embedding": embedding.astype(jnp.float32),
            "multi_level": jnp.concatenate(levels, axis=-1).astype(jnp.float32)}


def max_pool_2d(x: jnp.ndarray, time: int, mel: int) -> jnp.ndarray:
  """Non-overlapping 2-D max-pool, 'valid' (floor): ``[batch, T, M, channels] ->
  [batch, T // time, M // mel, channels]``; reshape + max as ``max_pool_time`` (same values as
  ``nn.max_pool``, a mask gradient)."""
  batch, t, m, channels = x.shape
  x = x[:, :(t // time) * time, :(m // mel) * mel]
  return x.reshape(batch, t // time, time, m // mel, mel, channels).max(axis=(2, 4))


class Conv2DBNAct(nn.Module):
  """Conv2D ('same', bias, ``he_uniform``) + BatchNorm + activation on ``[batch, T, M, C]``."""

  features: int
  kernel_size: tuple[int, int] = (3, 3)
  activation: str = "elu"
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = nn.Conv(self.features, kernel_size=tuple(self.kernel_size), padding="SAME",
                kernel_init=nn.initializers.he_uniform(), dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, dtype=self.dtype)(x)
    return getattr(nn, self.activation)(x)


def cnn2d_param_count(num_outputs: int, channels: Sequence[int] = (128, 384, 768, 2048),
                      kernel: int = 3, input_batchnorm: bool = True) -> int:
  """Trainable parameters of ``MelCNN2D``: conv kernels + biases, BN scale + bias (input BN
  included), dense. Choi's FCN-4 with 50 tags: 17,365,940 [derived from the layer list]."""
  count, cin = (2 if input_batchnorm else 0), 1
  for c in channels:
    count += kernel * kernel * cin * c + c + 2 * c
    cin = c
  return count + cin * num_outputs + num_outputs


@MODELS.register("mel_cnn2d")
class MelCNN2D(MelInput):
  """2-D CNN baseline on the mel spectrogram as an image: Choi, Fazekas & Sandler, "Automatic
  Tagging Using Deep Convolutional Neural Networks" (ISMIR 2016), FCN-4, the "2D CNN (Choi et
  al.)" of papers 1 and 2's comparison tables (MTAT ROC-AUC 0.894; papers.md 2.6, 3.3). Returns
  ``{"logits": [batch, num_outputs], "embedding": [batch, channels[-1]]}``.

  Layers (defaults = FCN-4's table; input ``[batch, 1366, 96]`` time x mel, one channel):

    input BatchNorm (one statistic, as the reimplementations' ``spec_bn``)
    conv 3x3 x 128  + BN + ELU, max-pool (mel 2, time 4)  -> 341 x 48
    conv 3x3 x 384  + BN + ELU, max-pool (mel 4, time 5)  -> 68 x 12
    conv 3x3 x 768  + BN + ELU, max-pool (mel 3, time 8)  -> 8 x 4
    conv 3x3 x 2048 + BN + ELU, max-pool (mel 4, time 8)  -> 1 x 1
    global max over what is left (nothing at the paper's size) -> ``embedding`` [batch, 2048]
    Dropout -> Dense(num_outputs) -> ``logits`` (sigmoid in the loss)

  Front end (Choi's, through the shared fields): 12 kHz, n_fft 512, hop 256, 96 Slaney mel
  bands of the *power* spectrogram in dB (``power=2, log="db"``, top 80 dB), no global
  standardisation (the input BatchNorm does it). ``center=True`` as librosa did in 2016: 1366
  frames need 349,440 samples (29.12 s at 12 kHz; an MTAT clip's last 240 are zero-padded).

  Chosen where the paper is silent (fields): ``dropout_rate=0.5`` before the output layer and
  BatchNorm epsilon 1e-3 (the Keras-era reimplementations); ``pools_mel_time`` are written in
  the paper's (frequency, time) order, applied to our (time, mel) layout.
  """

  num_frames: int = 1366
  sample_rate: int = 12000
  n_fft: int = 512
  hop_length: int = 256
  n_mels: int = 96
  center: bool = True
  power: float = 2.0
  log: str = "db"
  mel_mean: Optional[float] = None
  mel_std: Optional[float] = None
  num_outputs: int = 50
  channels: Sequence[int] = (128, 384, 768, 2048)
  pools_mel_time: Sequence[Sequence[int]] = ((2, 4), (4, 5), (3, 8), (4, 8))
  kernel_size: int = 3
  activation: str = "elu"
  input_batchnorm: bool = True
  dropout_rate: float = 0.5
  bn_momentum: float = 0.99
  bn_epsilon: float = 1e-3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, audio: jnp.ndarray, train: bool = False) -> dict:
    """audio: ``[batch, input_length, 1]`` float waveform in [-1, 1)."""
    if len(self.channels) != len(self.pools_mel_time):
      raise ValueError("channels and pools_mel_time need one entry per conv layer")
    x = self.mel(audio)[..., None]  # [batch, frames, n_mels, 1]
    if self.input_batchnorm:
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, name="input_bn")(x)
    x = x.astype(self.dtype)
    for c, (pool_mel, pool_time) in zip(self.channels, self.pools_mel_time):
      x = Conv2DBNAct(c, (self.kernel_size, self.kernel_size), self.activation,
                      self.bn_momentum, self.bn_epsilon, self.dtype)(x, train)
      if x.shape[1] < pool_time or x.shape[2] < pool_mel:
        raise ValueError(f"{self.num_frames} frames x {self.n_mels} mel bands are too small for "
                         f"the pools {tuple(map(tuple, self.pools_mel_time))}")
      x = max_pool_2d(x, pool_time, pool_mel)
    embedding = jnp.max(x, axis=(1, 2))  # [batch, channels[-1]]
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(embedding)
    logits = nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform(),
                      dtype=jnp.float32)(x)  # float32 output layer: the logits feed the loss.
    return {"logits": logits, "embedding": embedding.astype(jnp.float32)}
