"""Embeddings and tag scores for audio files, streamed in bounded memory (``musicrep embed``).

For each file (a folder is searched recursively for audio files), or each in-memory array
(``ArraySource``: the Python API, ``serving/api.py``, cut into the same blocks as a file):

  1. **Decode in blocks** (``soundfile``, ``block_seconds`` at a time), mono = channel mean.
  2. **Resample explicitly** to the model's rate, block by block (``resample_stream``: the same
     polyphase filter as ``musicrep_jax.data.audio_io.resample``, with enough context at block
     edges that the result equals resampling the whole file). The file's own rate is recorded
     in the index; with ``allow_resample=False`` a file at another rate is refused with that
     reason instead. Audio never reaches the model at the wrong rate.
  3. **Tile** into model inputs (``segment_stream``): segments of ``input_length`` samples every
     ``hop`` samples (default ``hop = input_length``, non-overlapping, from the start as in the
     papers' evaluation); if the last segment stops before the end, one more segment ending
     exactly at the end covers the tail; a file shorter than one segment gives one zero-padded
     segment (``padded`` in the index). Only ``input_length + block`` samples are held per file.
  4. **Batch across files**: segments of consecutive files fill fixed-size batches (one
     compilation; the last batch is padded), run by a jitted forward while the next batch is
     being filled.
  5. **Average per file**: ``embedding`` (clip mean of the segment embeddings) and the clip mean
     of the segment tag scores (sigmoid of the logits; papers.md 1.4: clip score = mean over
     segments) for tagging models, else of the logits.

Which output is the embedding and which scores a model has: ``serving.inference.output_spec``
(one table, ``EMBEDDING_OUTPUTS``, for every family; docs/export.md).

Steps 1-4 are ``stream_inputs`` and step 5 ``clip_outputs``: ``embed_files`` writes their results
(below), the Python API (``serving/api.py``) returns them, so a file gets the same numbers
either way.

Outputs in ``out_dir``: ``embeddings.npy`` ``[files_ok, d]``, the scores ``<scores>.npy``
``[files_ok, outputs]`` where the model has some (``tag_scores``, ``class_scores``,
``label_scores`` or ``logits``; none for DCUE), ``masks.npy`` for CSN models, ``index.csv`` and
``index.jsonl`` (one row per input file, status ``ok``, ``skipped`` (unsupported format such as
``.m4a``, truncated audio) or ``error`` (missing, corrupt, refused rate) with the reason; ``row``
is the file's row in the arrays, -1 otherwise), ``embed_info.json``; with ``per_segment`` also
``segment_embeddings.npy``, ``segment_<scores>.npy`` and ``segments.csv`` (``file_row``,
``start_s``).

Truncated audio: a file that decodes to fewer frames than its header declares (beyond
``TRUNCATION_SLACK_FRAMES``), ending early or failing, is skipped with the reason "truncated:
decoded X s of the Y s its header declares" (plus the decoder's error, if any): a clip embedding
of part of a track would pass for the track's. This catches MP3 (Xing/LAME header) and FLAC
(STREAMINFO) cut short; a cut WAV's header is corrected by libsndfile from the file size, and a
cut OGG reads as empty (an error), so neither can be told from a complete file by this test.

Memory: independent of track length: one decoded block, its resampled copy, at most
``input_length`` carried samples, two batches of ``[batch, input_length]`` float32, and per-file
sums (tests/test_embed.py measures a 10-minute file).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from musicrep_jax import storage
from musicrep_jax.data.audio_io import (TRUNCATION_SLACK_FRAMES, AudioDecodeError, downmix,
                                        probe_audio, resample, truncation_reason)
from musicrep_jax.errors import UserError

# Suffix -> libsndfile major format: decodable where ``soundfile.available_formats()`` has it.
SUFFIX_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
                  ".mp3": "MP3", ".aif": "AIFF", ".aiff": "AIFF", ".aifc": "AIFF", ".au": "AU",
                  ".snd": "AU", ".w64": "W64", ".caf": "CAF", ".rf64": "RF64"}
AUDIO_SUFFIXES = frozenset(SUFFIX_FORMATS)
# Audio formats libsndfile never decodes: found in folders and reported as skipped.
UNSUPPORTED_SUFFIXES = frozenset({".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".ape",
                                  ".amr", ".ac3", ".webm", ".mka", ".dsf", ".wv"})
INDEX_FIELDS = ("path", "status", "reason", "row", "duration_s", "source_sample_rate",
                "sample_rate", "resampled", "channels", "segments", "padded")
STATUSES = ("ok", "skipped", "error")


class SkippedFile(AudioDecodeError):
  """A file not embedded on purpose (status ``skipped``): unsupported format, truncated."""


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """In-memory audio as an input: mono float32 ``audio [samples]`` at ``sample_rate`` Hz, named
  ``name`` in the records. Streamed like a file: cut into ``block_seconds`` blocks, resampled
  by ``resample_stream`` and tiled, so an array equals the file it was decoded from."""

  audio: np.ndarray
  sample_rate: int
  name: str = "<array>"


# --- Finding files -----------------------------------------------------------------------------


def list_audio_files(inputs: Sequence[str | os.PathLike]) -> list[pathlib.Path]:
  """Files as given (kept even if missing, to be reported) and the audio files under folders
  (recursive, sorted, by suffix; files of ``UNSUPPORTED_SUFFIXES`` too, to be reported as
  skipped). ``UserError`` when nothing is found."""
  files: list[pathlib.Path] = []
  for item in map(pathlib.Path, inputs):
    if item.is_dir():
      files += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in
                      AUDIO_SUFFIXES | UNSUPPORTED_SUFFIXES)
    else:
      files.append(item)
  if not files:
    raise UserError(f"No audio files in {', '.join(map(str, inputs))} (looked for "
                    f"{', '.join(sorted(AUDIO_SUFFIXES))}).")
  return files


def unsupported_reason(path: str | os.PathLike) -> Optional[str]:
  """Why ``path`` will not be decoded here, judged by its suffix (None: try it): a format
  libsndfile never reads, or one this libsndfile was built without (MP3 before 1.1)."""
  import soundfile as sf

  suffix = pathlib.Path(path).suffix.lower()
  if suffix in UNSUPPORTED_SUFFIXES:
    return (f"unsupported format {suffix} (libsndfile cannot decode it; convert it to WAV, FLAC, "
            f"OGG or MP3)")
  major = SUFFIX_FORMATS.get(suffix)
  if major and major not in sf.available_formats():
    return (f"unsupported format {suffix} (this libsndfile {sf.__libsndfile_version__} lacks "
            f"{major})")
  return None


# --- Streaming: decode, resample, tile ---------------------------------------------------------


def decode_blocks(path: str | os.PathLike, block_frames: int) -> Iterator[np.ndarray]:
  """Mono float32 blocks of at most ``block_frames`` samples at the file's own rate.

  Raises ``AudioDecodeError`` (possibly after some blocks) when the data are corrupt.
  """
  import soundfile as sf

  try:
    with sf.SoundFile(os.fspath(path)) as f:
      while True:
        block = f.read(block_frames, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
          return
        yield downmix(block)
  except (RuntimeError, TypeError, ValueError) as error:  # LibsndfileError is a RuntimeError.
    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    raise AudioDecodeError(path, f"corrupt or unsupported audio ({first_line})") from error


def resample_context(source_rate: int, target_rate: int) -> int:
  """Input samples of context each side of a block for ``audio_io.resample``'s polyphase filter
  (half-length ``10 * max(up, down)`` taps at the upsampled rate), a multiple of ``down``."""
  divisor = math.gcd(source_rate, target_rate)
  up, down = target_rate // divisor, source_rate // divisor
  half_width = math.ceil(10 * max(up, down) / up) + 2
  return down * math.ceil(half_width / down)


def resample_stream(blocks: Iterable[np.ndarray], source_rate: int,
                    target_rate: int) -> Iterator[np.ndarray]:
  """Blocks at ``source_rate`` -> blocks at ``target_rate`` whose concatenation equals
  ``audio_io.resample`` of the whole signal (to float rounding).

  Each step resamples the samples ``[done - context, done + ready + context)`` with ``done``
  and ``ready`` multiples of ``down`` (so output samples fall on the same grid as for the whole
  signal) and keeps the outputs of ``[done, done + ready)``, whose filter taps all lie inside.
  """
  source_rate, target_rate = int(source_rate), int(target_rate)
  if source_rate == target_rate:
    yield from blocks
    return
  divisor = math.gcd(source_rate, target_rate)
  up, down = target_rate // divisor, source_rate // divisor
  context = resample_context(source_rate, target_rate)
  buffer, buffer_start, done = np.zeros(0, np.float32), 0, 0  # buffer[0] is sample buffer_start

  def resampled_from(lo: int, hi: int) -> np.ndarray:
    """Outputs of input samples ``[done, ...)`` from resampling ``buffer`` ``[lo, hi)``."""
    out = resample(buffer[lo - buffer_start:hi - buffer_start], source_rate, target_rate)
    return out[(done - lo) * up // down:]

  for block in blocks:
    buffer = np.concatenate([buffer, block])
    end = buffer_start + len(buffer)
    ready = (end - context - done) // down * down
    if ready <= 0:
      continue
    yield resampled_from(max(done - context, 0), done + ready + context)[:ready * up // down]
    done += ready
    keep_from = max(done - context, buffer_start)
    buffer, buffer_start = buffer[keep_from - buffer_start:], keep_from
  end = buffer_start + len(buffer)
  if end > done:
    yield resampled_from(max(done - context, 0), end)


@dataclasses.dataclass
class Segment:
  """One model input of a file: ``audio`` float32 ``[length]`` starting at sample ``start``."""

  start: int
  audio: np.ndarray
  padded: bool = False


def segment_stream(blocks: Iterable[np.ndarray], length: int,
                   hop: Optional[int] = None) -> Iterator[Segment]:
  """Tiles a stream of sample blocks into ``length``-sample segments every ``hop`` samples, plus
  one end-aligned tail segment if the grid stops short of the end, or one zero-padded segment
  for a stream shorter than ``length``. Holds at most ``length + block`` samples."""
  hop = hop or length
  buffer, buffer_start, next_start, total, last = np.zeros(0, np.float32), 0, 0, 0, None
  for block in blocks:
    buffer = np.concatenate([buffer, block])
    total += len(block)
    while next_start + length <= total:
      offset = next_start - buffer_start
      yield Segment(next_start, buffer[offset:offset + length].copy())
      last, next_start = next_start, next_start + hop
    keep_from = max(min(next_start, total - length), buffer_start)
    buffer, buffer_start = buffer[keep_from - buffer_start:], keep_from
  if total == 0:
    return
  if total < length:
    yield Segment(0, np.pad(buffer, (0, length - total)), padded=True)
  elif last is None or last + length < total:
    yield Segment(total - length, buffer[len(buffer) - length:].copy())


# --- Per-file bookkeeping ----------------------------------------------------------------------


@dataclasses.dataclass
class FileRecord:
  """One input file's row of the index, and its running sums."""

  path: str
  status: str = "pending"  # "ok", "skipped" (unsupported, truncated) or "error"
  reason: str = ""
  row: int = -1
  duration_s: float = 0.0
  source_sample_rate: int = 0
  sample_rate: int = 0
  resampled: bool = False
  channels: int = 0
  segments: int = 0
  padded: bool = False
  embedding_sum: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)
  scores_sum: Optional[np.ndarray] = dataclasses.field(default=None, repr=False)
  results: int = 0

  def index_row(self) -> dict:
    return {k: getattr(self, k) for k in INDEX_FIELDS}

  def add(self, embedding: np.ndarray, scores: np.ndarray) -> None:
    if self.embedding_sum is None:
      self.embedding_sum = np.zeros(embedding.shape, np.float64)
      self.scores_sum = np.zeros(scores.shape, np.float64)
    self.embedding_sum += embedding
    self.scores_sum += scores
    self.results += 1


class _Batcher:
  """Fills fixed-size batches with segments of any file and keeps one batch in flight.

  Two input buffers alternate: one is being filled while the other's batch runs; a buffer is
  refilled only after its batch's outputs have been fetched (so it is no longer read).
  """

  def __init__(self, forward: Callable, batch_size: int, length: int, records: list,
               per_segment: bool):
    self.forward, self.records, self.per_segment = forward, records, per_segment
    self.buffers = [np.zeros((batch_size, length, 1), np.float32) for _ in range(2)]
    self.audio, self.owners = self.buffers[0], []
    self.in_flight = None
    self.segment_rows: list[tuple[int, int]] = []  # (file index, start sample)
    self.segment_outputs: list[tuple[np.ndarray, np.ndarray]] = []
    self.constants: dict[str, np.ndarray] = {}  # batch-independent outputs (CSN masks)

  def add(self, file_index: int, segment: Segment) -> None:
    self.audio[len(self.owners), :, 0] = segment.audio
    self.owners.append((file_index, segment.start))
    if len(self.owners) == len(self.audio):
      self.flush()

  def flush(self) -> None:
    """Dispatches the current batch, then collects the previous one (overlap host and device).
    Rows past ``owners`` in a last, partial batch hold stale segments whose outputs are
    ignored (eval-mode models treat rows independently)."""
    if not self.owners:
      return
    dispatched = (self.forward(self.audio), self.owners)
    self._collect()
    self.in_flight = dispatched
    self.audio = self.buffers[1] if self.audio is self.buffers[0] else self.buffers[0]
    self.owners = []

  def finish(self) -> None:
    self.flush()
    self._collect()

  def _collect(self) -> None:
    if self.in_flight is None:
      return
    (embeddings, scores, constants), owners = self.in_flight
    self.in_flight = None
    embeddings, scores = np.asarray(embeddings), np.asarray(scores)
    if not self.constants:
      self.constants = {k: np.asarray(v) for k, v in constants.items()}
    for i, (file_index, start) in enumerate(owners):
      self.records[file_index].add(embeddings[i], scores[i])
      if self.per_segment:
        self.segment_rows.append((file_index, start))
        self.segment_outputs.append((embeddings[i], scores[i]))


# --- The whole job -----------------------------------------------------------------------------


def stream_inputs(inputs: Sequence, forward: Callable, *, sample_rate: int, input_length: int,
                  batch_size: int = 32, hop: Optional[int] = None, allow_resample: bool = True,
                  per_segment: bool = False, block_seconds: float = 10.0,
                  progress: bool = True) -> tuple[list[FileRecord], _Batcher]:
  """Steps 1-4 of the module doc for every input (a path or an ``ArraySource``): returns one
  ``FileRecord`` per input (status ``ok`` with the sums of its segments' outputs, or
  ``skipped`` / ``error`` with the reason) and the batcher (per-segment outputs, constants).

  Args:
    forward: ``audio float32 [batch_size, input_length, 1] -> (embedding [batch, d], scores
      [batch, k], {name: constant array})``, possibly asynchronous (jax arrays); the array
      passed in is refilled once the outputs have been read.
    sample_rate: the model's rate; every input is brought to it (or refused).
    hop: samples between segment starts (default ``input_length``).
  """
  from tqdm.auto import tqdm

  records = [FileRecord(path=item.name if isinstance(item, ArraySource) else str(item),
                        sample_rate=sample_rate) for item in inputs]
  batcher = _Batcher(forward, batch_size, input_length, records, per_segment)
  bar = tqdm(total=len(records), unit="file", desc="embed", disable=not progress,
             dynamic_ncols=True)
  for index, (item, record) in enumerate(zip(inputs, records)):
    try:
      _stream_input(index, item, record, batcher, sample_rate, input_length, hop,
                    allow_resample, block_seconds)
    except AudioDecodeError as error:
      record.status = "skipped" if isinstance(error, SkippedFile) else "error"
      record.reason = error.reason
    bar.update(1)
    bar.set_postfix(segments=sum(r.segments for r in records), refresh=False)
  batcher.finish()
  bar.close()
  return records, batcher


def clip_outputs(records: Sequence[FileRecord]) -> tuple[np.ndarray, np.ndarray]:
  """Step 5: the clip means of the ``ok`` records, in order (each gets its ``row``) ->
  ``(embeddings float32 [ok, d], scores float32 [ok, k])`` (``[0, 0]`` when none is ok)."""
  ok = [r for r in records if r.status == "ok"]
  for row, record in enumerate(ok):
    record.row = row
    assert record.results == record.segments, (record.path, record.results, record.segments)
  if not ok:
    return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
  embeddings = np.stack([r.embedding_sum / r.segments for r in ok]).astype(np.float32)
  scores = np.stack([r.scores_sum / r.segments for r in ok]).astype(np.float32)
  return embeddings, scores


def embed_files(paths: Sequence[str | os.PathLike], forward: Callable, *, sample_rate: int,
                input_length: int, out_dir: str | os.PathLike, batch_size: int = 32,
                hop: Optional[int] = None, allow_resample: bool = True,
                per_segment: bool = False, block_seconds: float = 10.0,
                scores_name: str = "tag_scores", output_names: Sequence[str] = (),
                info: Optional[dict] = None, progress: bool = True) -> dict:
  """Embeds ``paths`` (``stream_inputs``, ``clip_outputs``) and writes the outputs (module
  doc); returns the summary.

  Args:
    forward, sample_rate, hop: as ``stream_inputs``.
    scores_name: file stem of the scores (``tag_scores``, ``logits``, ...; "" writes none).
    output_names: names of the score columns (tag names), for ``index.jsonl``'s top tags.
    info: extra entries for ``embed_info.json`` (model, checkpoint).
    out_dir: a local folder or a remote one (``gs://...``: written in a local folder and copied
      up at the end, ``storage.local_dir``); the inputs are local files.
  """
  started = time.perf_counter()
  records, batcher = stream_inputs(
      paths, forward, sample_rate=sample_rate, input_length=input_length,
      batch_size=batch_size, hop=hop, allow_resample=allow_resample, per_segment=per_segment,
      block_seconds=block_seconds, progress=progress)
  with storage.local_dir(out_dir) as local:
    out = str(out_dir) if storage.is_remote(out_dir) else str(local)
    summary = _write_outputs(local, records, batcher, scores_name, output_names, info or {}, out)
  wall = time.perf_counter() - started
  audio_s = sum(r.duration_s for r in records if r.status == "ok")
  summary.update(wall_s=wall, audio_s=audio_s, realtime_x=audio_s / wall if wall > 0 else 0.0)
  return summary


def _stream_input(index: int, item, record: FileRecord, batcher: _Batcher, sample_rate: int,
                  input_length: int, hop: Optional[int], allow_resample: bool,
                  block_seconds: float) -> None:
  """Decodes (or cuts) ``item`` into blocks, resamples and tiles them into ``batcher``."""
  if isinstance(item, ArraySource):
    audio = np.asarray(item.audio, np.float32)
    frames, rate, channels = len(audio), int(item.sample_rate), 1
    open_blocks = lambda n: (audio[i:i + n] for i in range(0, len(audio), n))
  else:
    unsupported = unsupported_reason(record.path)
    if unsupported and os.path.isfile(record.path):
      raise SkippedFile(record.path, unsupported)
    info = probe_audio(record.path)
    frames, rate, channels = int(info.frames), int(info.samplerate), int(info.channels)
    open_blocks = lambda n: decode_blocks(record.path, n)
  record.source_sample_rate, record.channels = rate, channels
  if rate != sample_rate and not allow_resample:
    raise AudioDecodeError(record.path, f"sample rate {rate} Hz differs from the model's "
                                        f"{sample_rate} Hz and resampling is disabled")
  record.resampled = rate != sample_rate
  decoded = 0

  def counted(blocks):
    nonlocal decoded
    for block in blocks:
      decoded += len(block)
      yield block

  block_frames = max(1, int(block_seconds * rate))
  blocks = resample_stream(counted(open_blocks(block_frames)), rate, sample_rate)

  def cut_short() -> bool:  # The header declares more audio than was decoded.
    return decoded + TRUNCATION_SLACK_FRAMES < frames

  def truncated(then: str = "") -> SkippedFile:
    return SkippedFile(record.path, truncation_reason(decoded, frames, rate, then))

  try:
    for segment in segment_stream(blocks, input_length, hop):
      batcher.add(index, segment)
      record.segments += 1
      record.padded |= segment.padded
  except AudioDecodeError as error:
    if cut_short():  # A cut FLAC fails in the block holding the cut.
      raise truncated(error.reason) from None
    raise
  if decoded == 0:
    raise AudioDecodeError(record.path, "empty file (no audio frames)")
  record.duration_s = decoded / rate
  if cut_short():  # A cut MP3 ends early without an error.
    raise truncated()
  record.status = "ok"


def _write_outputs(out_dir: pathlib.Path, records: list[FileRecord], batcher: _Batcher,
                   scores_name: str, output_names: Sequence[str], info: dict, out: str) -> dict:
  embeddings, scores = clip_outputs(records)
  ok = [r for r in records if r.status == "ok"]
  np.save(out_dir / "embeddings.npy", embeddings)
  if scores_name:
    np.save(out_dir / f"{scores_name}.npy", scores)
  for name, array in batcher.constants.items():
    np.save(out_dir / f"{name}.npy", array)
  with open(out_dir / "index.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=INDEX_FIELDS)
    writer.writeheader()
    writer.writerows(r.index_row() for r in records)
  with open(out_dir / "index.jsonl", "w") as f:
    for record in records:
      row = record.index_row()
      if record.status == "ok" and output_names:
        top = np.argsort(-scores[record.row])[:5]
        row["top"] = {output_names[i]: round(float(scores[record.row, i]), 4) for i in top}
      f.write(json.dumps(row) + "\n")
  segments = sum(r.segments for r in ok)
  if batcher.per_segment:
    keep = [i for i, (file_index, _) in enumerate(batcher.segment_rows)
            if records[file_index].status == "ok"]
    outputs = [batcher.segment_outputs[i] for i in keep]
    np.save(out_dir / "segment_embeddings.npy",
            np.stack([e for e, _ in outputs]) if outputs else np.zeros((0, 0), np.float32))
    if scores_name:
      np.save(out_dir / f"segment_{scores_name}.npy",
              np.stack([s for _, s in outputs]) if outputs else np.zeros((0, 0), np.float32))
    with open(out_dir / "segments.csv", "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["file_row", "start_s"])
      for i in keep:
        file_index, start = batcher.segment_rows[i]
        writer.writerow([records[file_index].row, start / records[file_index].sample_rate])
  counts = {status: sum(r.status == status for r in records) for status in STATUSES}
  summary = {"files": len(records), "ok": counts["ok"], "skipped": counts["skipped"],
             "failed": counts["error"], "segments": segments,
             "embedding_dim": int(embeddings.shape[1]), "scores": scores_name or None,
             "out": out}
  assert summary["ok"] + summary["skipped"] + summary["failed"] == summary["files"]
  (out_dir / "embed_info.json").write_text(json.dumps(
      dict(info, **summary, output_names=list(output_names)), indent=2) + "\n")
  return summary


# --- From a trained workdir --------------------------------------------------------------------


def make_forward(trained, batch_size: int) -> tuple[Callable, "OutputSpec"]:
  """``(forward, spec)`` for a ``musicrep_jax.serving.inference.Trained`` model: a jitted
  eval-mode forward (the task's, so a zero-shot model sees its label vectors; the model's own
  for a model folder, which has no task) giving ``spec.select`` of the outputs, ``spec`` being
  ``serving.inference.output_spec``: the embedding, the scores (``spec.scores`` names them;
  none for DCUE) and constants (CSN masks)."""
  import jax

  from musicrep_jax.serving.inference import output_spec

  spec = output_spec(trained)
  variables = jax.device_put(trained.variables)

  @jax.jit
  def apply(variables, audio):
    if trained.task is None:
      out = trained.model.apply(variables, audio, train=False)
    else:
      out = trained.task.forward(trained.model, variables, {"audio": audio}, train=False)
    return spec.select(out)

  del batch_size  # One shape: the batcher always sends full (padded) batches.
  return (lambda audio: apply(variables, audio)), spec
