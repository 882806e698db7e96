"""Decoding audio files to mono float32 at a target sample rate (soundfile + scipy, no
TensorFlow)."""

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
    AudioDecodeError: the file is missing, empty (0 bytes or 0 frames), or not decodable.
  """
  import soundfile as sf

  path = os.fspath(path)
  probe_audio(path)
  try:
    audio, source_rate = sf.read(path, dtype="float32", always_2d=True)
  except (RuntimeError, TypeError, ValueError) as error:  # LibsndfileError is a RuntimeError.
    raise AudioDecodeError(path, f"corrupt or unsupported audio ({_first_line(error)})") from error
  if audio.shape[0] == 0:
    raise AudioDecodeError(path, "empty file (no audio frames)")
  return resample(downmix(audio), source_rate, target_sample_rate)


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
