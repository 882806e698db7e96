"""The HEAR 2021 common API for any trained musicrep model (docs/python_api.md, "HEAR").

HEAR (Turian et al., "HEAR: Holistic Evaluation of Audio Representations", NeurIPS 2021
competition; ``hear-validator`` checks a module against it) evaluates an embedding through
three functions of a module::

  from musicrep_jax import hear
  model = hear.load_model("workdirs/demo")                 # a training workdir or model folder
  scene = hear.get_scene_embeddings(audio, model)           # [n_sounds, scene_embedding_size]
  emb, ts = hear.get_timestamp_embeddings(audio, model)     # [n_sounds, T, size], [n_sounds, T]

The rules, as the validator checks them:

* ``load_model(path)`` returns a ``torch.nn.Module`` (when PyTorch is installed; the validator
  accepts only torch or TensorFlow modules; the computation is JAX's) with the attributes
  ``sample_rate`` (one of 16,000, 22,050, 44,100, 48,000 Hz: the model's own rate when it is
  one of them, else the next higher one, resampled explicitly to the model's rate inside),
  ``scene_embedding_size`` and ``timestamp_embedding_size`` (ints).
* ``audio``: float32 ``[n_sounds, n_samples]`` at ``model.sample_rate``, a torch tensor (any
  device) or a numpy array; the outputs are float32 of the same kind (torch on the input's
  device).
* Scene embeddings ``[n_sounds, size]``: ``Model.embed`` of each sound, i.e. exactly what
  ``musicrep embed`` gives for it: the mean over non-overlapping ``input_length`` segments from
  the start plus an end-aligned tail (papers.md 1.4).
* Timestamp embeddings ``[n_sounds, T, size]`` with timestamps ``[n_sounds, T]`` in
  milliseconds, the same for every sound and increasing by a constant hop: window ``k`` is
  ``input_length`` samples centred on ``k * hop`` (the sound zero-padded by half a window at
  both ends), ``T = n_samples // hop + 1`` windows covering ``0 .. duration``, each window's
  embedding the model's segment embedding. The hop is ``hop_ms = 50`` ms by default: HEAR asks
  for at most 50 ms (its onset tolerance for music transcription) and every window is one full
  forward pass, so a smaller hop costs proportionally more for the same timing resolution the
  task scores; at 22,050 Hz 50 ms rounds to 1,102 samples (49.98 ms), the timestamps say so.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from musicrep_jax.errors import UserError

HEAR_SAMPLE_RATES = (16000, 22050, 44100, 48000)
DEFAULT_HOP_MS = 50.0


def _module_base() -> type:
  """``torch.nn.Module`` if PyTorch is installed (the HEAR validator requires a torch or
  TensorFlow module), else ``object``."""
  try:
    import torch
  except ImportError:
    return object
  return torch.nn.Module


class HearModel(_module_base()):
  """A ``musicrep_jax.serving.api.Model`` with the HEAR attributes (module doc).

  Attributes:
    model: the wrapped ``Model``.
    layer: the layer embedded (``None``: the model's embedding; see ``Model.layers``).
    sample_rate: HEAR's input rate (Hz).
    scene_embedding_size, timestamp_embedding_size: the layer's width.
    hop: samples between timestamp windows, at the model's rate.
  """

  def __init__(self, model, hop_ms: float = DEFAULT_HOP_MS, layer=None):
    super().__init__()
    if hop_ms <= 0:
      raise UserError(f"hop_ms must be positive, got {hop_ms}.")
    self.model, self.layer = model, layer
    rate = int(model.sample_rate)
    self.sample_rate = rate if rate in HEAR_SAMPLE_RATES else min(
        [r for r in HEAR_SAMPLE_RATES if r >= rate] or [max(HEAR_SAMPLE_RATES)])
    self.scene_embedding_size = self.timestamp_embedding_size = int(model.width(layer))
    self.hop = max(1, round(hop_ms * rate / 1000))


def load_model(model_file_path: str = "", hop_ms: float = DEFAULT_HOP_MS, layer=None,
               batch_size: int = 32, data_dir: Optional[str] = None) -> HearModel:
  """A training workdir or model folder (``musicrep_jax.load``; ``data_dir``: a workdir's
  training shards, as there) as a HEAR model with timestamps every ``hop_ms`` and the
  embeddings of ``layer`` (``Model.layers``; default the model's embedding)."""
  import musicrep_jax

  if not model_file_path:
    raise UserError("load_model needs the path of a training workdir or a model folder.")
  model = musicrep_jax.load(model_file_path, data_dir=data_dir, batch_size=batch_size)
  return HearModel(model, hop_ms, layer)


def _as_numpy(audio, model: HearModel) -> tuple[np.ndarray, Optional[object]]:
  """``audio`` -> (float32 ``[n_sounds, n_samples]``, the torch device if it was a tensor)."""
  device = None
  if hasattr(audio, "detach"):
    device = audio.device
    audio = audio.detach().cpu().numpy()
  audio = np.asarray(audio)
  if audio.ndim != 2 or not np.issubdtype(audio.dtype, np.floating):
    raise UserError(f"HEAR audio is float [n_sounds, n_samples] at {model.sample_rate} Hz; got "
                    f"{audio.dtype} {audio.shape}.")
  return audio.astype(np.float32, copy=False), device


def _like_input(array: np.ndarray, device):
  if device is None:
    return array
  import torch

  return torch.from_numpy(np.ascontiguousarray(array)).to(device)


def get_scene_embeddings(audio, model: HearModel):
  """float32 ``[n_sounds, n_samples]`` -> float32 ``[n_sounds, scene_embedding_size]``: each
  sound's clip embedding as ``musicrep embed`` computes it."""
  array, device = _as_numpy(audio, model)
  out = model.model.run(array, sample_rate=model.sample_rate, layer=model.layer)
  return _like_input(out.embeddings, device)


def get_timestamp_embeddings(audio, model: HearModel):
  """float32 ``[n_sounds, n_samples]`` -> (float32 ``[n_sounds, T, timestamp_embedding_size]``,
  float32 timestamps ``[n_sounds, T]`` in ms): one window of ``input_length`` samples centred
  on every ``hop`` (module doc)."""
  from musicrep_jax.data.audio_io import resample

  array, device = _as_numpy(audio, model)
  inner = model.model
  rate, length, hop = inner.sample_rate, inner.input_length, model.hop
  if model.sample_rate != rate:  # Explicitly, with the resampler of `musicrep prepare`.
    array = np.stack([resample(row, model.sample_rate, rate) for row in array])
  n_sounds, n_samples = array.shape
  count = n_samples // hop + 1
  total = (count - 1) * hop + length  # Windows at 0, hop, ..., (count - 1) * hop: no tail.
  padded = np.zeros((n_sounds, total), np.float32)
  kept = min(n_samples, total - length // 2)
  padded[:, length // 2:length // 2 + kept] = array[:, :kept]
  out = inner.run(padded, sample_rate=rate, layer=model.layer, hop=hop, per_segment=True)
  assert all(len(s) == count for s in out.segment_starts), (count, out.segment_starts)
  embeddings = np.stack(out.segment_embeddings).astype(np.float32)
  # Window k spans [k * hop - length // 2, ... + length): its centre is k * hop + (length % 2) / 2.
  centres_ms = (np.arange(count) * hop + (length % 2) / 2) * 1000.0 / rate
  timestamps = np.tile(centres_ms.astype(np.float32), (n_sounds, 1))
  return _like_input(embeddings, device), _like_input(timestamps, device)
