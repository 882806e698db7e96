"""Fixed-shape batches of frames from variable-length clips, so every kernel compiles once.

Each clip's valid frames ``[T_i, D]`` are cut into pieces of at most ``piece_frames`` frames;
pieces are zero-padded to ``piece_frames`` with a mask and grouped ``pieces_per_batch`` at a time
(the last batch padded with empty pieces). Sufficient statistics are sums over frames, so a
clip's statistics are the sums of its pieces' (``owner`` maps a piece to its clip) and the
GMM's are the sums of all. Memory on the device is bounded by one batch whatever the hours of
audio.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class FramePieces:
  """Clips cut into fixed-size pieces.

  Attributes:
    frames: float32 ``[num_pieces, piece_frames, dim]`` (zeros where ``mask`` is False).
    mask: bool ``[num_pieces, piece_frames]``.
    owner: int64 ``[num_pieces]``, the clip each piece comes from.
    num_clips: number of clips.
  """

  frames: np.ndarray
  mask: np.ndarray
  owner: np.ndarray
  num_clips: int

  @property
  def num_frames(self) -> int:
    return int(self.mask.sum())

  def batches(self, pieces_per_batch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(frames [B, P, D], mask [B, P], owner [B])`` with a fixed ``B``; padded pieces have an
    all-False mask and owner ``-1``."""
    n = len(self.owner)
    for start in range(0, n, pieces_per_batch):
      stop = min(start + pieces_per_batch, n)
      pad = pieces_per_batch - (stop - start)
      frames, mask, owner = self.frames[start:stop], self.mask[start:stop], self.owner[start:stop]
      if pad:
        frames = np.concatenate([frames, np.zeros((pad,) + frames.shape[1:], frames.dtype)])
        mask = np.concatenate([mask, np.zeros((pad,) + mask.shape[1:], bool)])
        owner = np.concatenate([owner, np.full(pad, -1, owner.dtype)])
      yield frames, mask, owner


def cut_into_pieces(clips: Sequence[np.ndarray], piece_frames: int) -> FramePieces:
  """Clips ``[T_i, D]`` -> ``FramePieces`` (a clip with no frames owns no piece)."""
  if not clips:
    raise ValueError("no clips to cut into pieces")
  dim = clips[0].shape[1]
  counts = [-(-len(c) // piece_frames) for c in clips]
  total = sum(counts)
  frames = np.zeros((total, piece_frames, dim), np.float32)
  mask = np.zeros((total, piece_frames), bool)
  owner = np.repeat(np.arange(len(clips)), counts)
  row = 0
  for clip in clips:
    for start in range(0, len(clip), piece_frames):
      piece = clip[start:start + piece_frames]
      frames[row, :len(piece)] = piece
      mask[row, :len(piece)] = True
      row += 1
  return FramePieces(frames=frames, mask=mask, owner=owner, num_clips=len(clips))
