"""Clip-level MFCC features of a shard split (host loop over fixed-shape batches of clips)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.systems.ivector import mfcc as mfcc_lib


def _padded_batches(source, clips_per_batch: int, pad_multiple: int, label_field: str):
  """``(audio [B, S] float32, num_samples [B], labels [B], valid [B])``; ``S`` is the batch's
  longest clip rounded up to ``pad_multiple`` samples (one shape for fixed-length clips)."""
  n = len(source)
  for start in range(0, n, clips_per_batch):
    records = [source[i] for i in range(start, min(start + clips_per_batch, n))]
    audio = [np.asarray(r["audio"]) for r in records]
    if any(a.ndim != 1 for a in audio):
      raise UserError("record audio must be 1-D int16 [samples].")
    longest = max(len(a) for a in audio)
    width = -(-longest // pad_multiple) * pad_multiple
    batch = np.zeros((clips_per_batch, width), np.float32)
    lengths = np.zeros(clips_per_batch, np.int32)
    labels = np.full(clips_per_batch, -1, np.int64)
    for row, (a, r) in enumerate(zip(audio, records)):
      batch[row, :len(a)] = a.astype(np.float32) / 32768.0
      lengths[row] = len(a)
      labels[row] = int(np.asarray(r[label_field]))
    yield batch, lengths, labels, np.arange(clips_per_batch) < len(records)


def split_features(source, config: mfcc_lib.MfccConfig, sample_rate: int, *,
                   label_field: str = "artist", clips_per_batch: int = 16,
                   pad_multiple: int | None = None) -> tuple[list, np.ndarray]:
  """MFCC(+deltas) of every clip of a split -> (list of ``[frames_i, dim]`` float32 arrays,
  labels int64 ``[clips]``)."""
  from tqdm.auto import tqdm

  pad_multiple = pad_multiple or sample_rate
  clips, labels = [], []
  with tqdm(total=len(source), desc=f"MFCC {getattr(source, 'split', '')}", unit="clip",
            dynamic_ncols=True) as progress:
    for batch, lengths, batch_labels, valid in _padded_batches(source, clips_per_batch,
                                                              pad_multiple, label_field):
      feats, mask = mfcc_lib.mfcc_features(jnp.asarray(batch), jnp.asarray(lengths),
                                           config=config, sample_rate=sample_rate)
      feats, mask = np.asarray(feats), np.asarray(mask)
      for row in np.flatnonzero(valid):
        clips.append(feats[row][mask[row]])
        labels.append(batch_labels[row])
      progress.update(int(valid.sum()))
  return clips, np.asarray(labels, np.int64)

