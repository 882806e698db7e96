"""Decoding audio files to mono float32 at a target sample rate (soundfile + scipy, no
TensorFlow).

A file holding less audio than its header declares (a download or copy cut short) is refused
with ``TruncatedAudioError``, not decoded as if whole: a WAV whose ``data`` chunk is longer than
the bytes present (libsndfile silently reports the frames present), a FLAC whose decoding fails
before the frames of its STREAMINFO, an MP3 whose Xing/Info header counts more frames than
decode (up to ``TRUNCATION_SLACK_FRAMES`` may be missing: encoder delay and padding). Formats
without a length in the header (Ogg, an MP3 without a Xing header) cannot be checked."""

from __future__ import annotations

import collections
import concurrent.futures
import math
import os
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


class AudioDecodeError(Exception):
  """An audio file could not be turned into samples (unreadable, corrupt or empty).

  Attributes:
    path: the file that failed.
    reason: a short, lower-case reason fit for a report ("empty file", "corrupt or unsupported
      audio: ...").
  """

  def __init__(self, path: str | os.PathLike, reason: str):
    self.path = str(path)
    self.reason = reason
    super().__init__(f"{self.path}: {reason}")


# Decoded frames may fall short of the header's count by this much (two MPEG frames of encoder
# delay / padding) before a file counts as truncated.
TRUNCATION_SLACK_FRAMES = 2304
TRUNCATED = "truncated"  # First word of a truncated file's reason.
_BLOCK_FRAMES = 1 << 16  # Frames decoded at a time: how much of a cut file is counted.


class TruncatedAudioError(AudioDecodeError):
  """The file holds less audio than its header declares; ``reason`` starts with "truncated:"
  and gives both durations."""


def truncation_reason(decoded: int, declared: int, sample_rate: int, then: str = "") -> str:
  """"truncated: decoded 1.20 s of the 3.00 s its header declares[, then <then>]"."""
  reason = (f"{TRUNCATED}: decoded {decoded / sample_rate:.2f} s of the "
            f"{declared / sample_rate:.2f} s its header declares")
  return f"{reason}, then {then}" if then else reason


def declared_frames(path: str | os.PathLike, info) -> int:
  """The frames ``path``'s header declares: for a WAV the ``data`` chunk's size over the frame
  size (libsndfile's ``info.frames`` counts only the bytes present), else ``info.frames``."""
  if info.format != "WAV":
    return int(info.frames)
  import struct

  with open(path, "rb") as f:
    if f.read(4) != b"RIFF" or (f.read(4) and f.read(4) != b"WAVE"):
      return int(info.frames)
    block_align = None
    while True:
      header = f.read(8)
      if len(header) < 8:
        return int(info.frames)
      chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
      if chunk == b"fmt ":
        fmt = f.read(size)
        block_align = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
        f.seek(size % 2, os.SEEK_CUR)
      elif chunk == b"data":  # 0 or 0xFFFFFFFF: written by a stream that did not know it.
        if not block_align or size in (0, 0xFFFFFFFF):
          return int(info.frames)
        return max(int(info.frames), size // block_align)
      else:
        f.seek(size + size % 2, os.SEEK_CUR)


def header_truncation(path: str | os.PathLike, info) -> str | None:
  """The truncation reason when the header alone shows it (a WAV's ``data`` chunk longer than
  the bytes present), else None: what a probe can tell before decoding."""
  declared = declared_frames(path, info)
  if info.frames + TRUNCATION_SLACK_FRAMES < declared:
    return truncation_reason(int(info.frames), declared, info.samplerate)
  return None


def downmix(audio: np.ndarray) -> np.ndarray:
  """[samples] or [samples, channels] -> float32 [samples], the mean over channels."""
  audio = np.asarray(audio, np.float32)
  if audio.ndim == 2:
    audio = audio.mean(axis=1, dtype=np.float32)
  return audio


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
  """float32 [samples] at ``source_rate`` -> float32 [ceil(samples * target / source)].

  Polyphase resampling by the reduced ratio ``up/down = target/source`` (scipy's default Kaiser
  anti-aliasing filter). A no-op when the rates are equal.
  """
  source_rate, target_rate = int(source_rate), int(target_rate)
  if source_rate == target_rate:
    return np.asarray(audio, np.float32)
  divisor = math.gcd(source_rate, target_rate)
  from scipy import signal  # Lazy: scipy.signal is only needed when rates differ.

  out = signal.resample_poly(np.asarray(audio, np.float32), target_rate // divisor,
                             source_rate // divisor)
  return out.astype(np.float32, copy=False)


def probe_audio(path: str | os.PathLike):
  """The file's ``soundfile.info`` from its header alone (frames, sample rate, channels).

  Raises:
    AudioDecodeError: the file is missing, empty (0 bytes or 0 frames), or its header is not
      readable. Data that is corrupt past the header only shows when decoding (``load_audio``).
  """
  import soundfile as sf

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise AudioDecodeError(path, "missing file")
  if os.path.getsize(path) == 0:
    raise AudioDecodeError(path, "empty file (0 bytes)")
  try:
    info = sf.info(path)
  except (RuntimeError, TypeError, ValueError) as error:  # LibsndfileError is a RuntimeError.
    raise AudioDecodeError(path, f"corrupt or unsupported audio ({_first_line(error)})") from error
  if info.frames <= 0:
    raise AudioDecodeError(path, "empty file (no audio frames)")
  return info


def load_audio(path: str | os.PathLike, target_sample_rate: int) -> np.ndarray:
  """Decodes ``path`` (any format libsndfile reads: wav, flac, ogg, mp3...) -> float32 [samples].

  The result is mono (mean of the channels) at ``target_sample_rate``, in [-1, 1].

  Raises:
    AudioDecodeError: the file is missing, empty (0 bytes or 0 frames), or not decodable;
      ``TruncatedAudioError`` when it holds less audio than its header declares (module doc).
  """
  import soundfile as sf

  path = os.fspath(path)
  info = probe_audio(path)
  declared = declared_frames(path, info)
  blocks, decoded = [], 0

  def cut_short() -> bool:
    return decoded + TRUNCATION_SLACK_FRAMES < declared

  try:
    with sf.SoundFile(path) as f:
      source_rate = f.samplerate
      while True:
        block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if not len(block):
          break
        blocks.append(downmix(block))
        decoded += len(block)
  except (RuntimeError, TypeError, ValueError) as error:  # LibsndfileError is a RuntimeError.
    reason = f"corrupt or unsupported audio ({_first_line(error)})"
    decoded = _frames_before_error(path, decoded)
    if decoded and cut_short():  # A cut FLAC fails in the block holding the cut.
      raise TruncatedAudioError(path, truncation_reason(decoded, declared, info.samplerate,
                                                        reason)) from error
    raise AudioDecodeError(path, reason) from error
  if decoded == 0:
    raise AudioDecodeError(path, "empty file (no audio frames)")
  if cut_short():  # A cut WAV or MP3 ends early without an error.
    raise TruncatedAudioError(path, truncation_reason(decoded, declared, info.samplerate))
  return resample(np.concatenate(blocks), source_rate, target_sample_rate)


def _frames_before_error(path: str, at_least: int) -> int:
  """The frames that decode before ``path``'s data fail, counted in small blocks (a failed
  block of ``load_audio`` loses the frames it held before the fault)."""
  import soundfile as sf

  decoded = 0
  try:
    with sf.SoundFile(path) as f:
      while len(block := f.read(1024, dtype="float32")):
        decoded += len(block)
  except (RuntimeError, TypeError, ValueError):
    pass
  return max(decoded, at_least)


def _first_line(error: Exception) -> str:
  text = str(error).strip().splitlines()
  return text[0] if text else type(error).__name__


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int,
                   window: int | None = None) -> Iterator[R]:
  """``map(fn, items)`` on ``workers`` threads, results in input order.

  At most ``window`` (default ``2 * workers``) calls are in flight, so memory stays bounded
  however long ``items`` is. Decoding (libsndfile via cffi) and numpy/scipy release the GIL, so
  threads give real parallelism without the spawn/``__main__`` issues of processes. An exception
  raised by ``fn`` is raised here, at its item.
  """
  if workers <= 1:
    yield from map(fn, items)
    return
  window = window or 2 * workers
  pending: collections.deque = collections.deque()
  with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= window:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def default_workers() -> int:
  """Threads for decoding: the cores this process may use, at most 8."""
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    cores = os.cpu_count() or 1
  return max(1, min(8, cores))
