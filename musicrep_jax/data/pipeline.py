"""Input pipelines: training batches (Grain; random crops or the segment grid) and segmented
evaluation batches.

Both read any random-access *source*: an object with ``__len__`` and ``__getitem__(i) -> dict``
of numpy values in the :mod:`musicrep_jax.data.schema` record format (in production a TFDS
ArrayRecord data source; in tests :class:`InMemorySource`). Sources must be picklable when
Grain worker processes are used (they are started with ``spawn``).

Training (:func:`train_iterator`)
---------------------------------
A training *unit* is a window of a clip; :class:`TrainSegments` (``config.data.train_segments``)
says which. ``"random"``: ``S = 1`` unit per clip, a window drawn uniformly anew at each visit.
``"grid"``: ``S = segments_per_clip`` units per clip, the fixed windows of
:func:`segment_starts` (the evaluation segments; papers 1, 5, 6: 10 back-to-back 59,049-sample
segments of each MTAT clip, papers.md 1.2, 2.4, 6.1, 7.2), so an epoch is ``N x S`` units
as the papers count it.

The *global stream* is an infinite sequence of elements ``g = 0, 1, 2, ...``: element ``g``
is unit ``u = perm_e[g % (N * S)]`` (``N = len(source)``, ``e = g // (N * S)``), i.e. clip
``u // S`` and grid segment ``u % S``; in ``"random"`` mode its crop is drawn from ``(seed, g)``
(a counter-based hash, :func:`uniform_from_counter`). ``perm_e`` is a numpy permutation of the
``N * S`` units seeded with ``(seed, e)``, so every epoch is a new permutation and every block
``[e * N * S, (e + 1) * N * S)`` of the stream holds each (clip, segment) exactly once. (The
papers' code shuffles segments within 37 partitions of the training list for memory reasons;
here the permutation is global.) Epochs are counted in samples: nothing is dropped at an epoch
end and a batch may span two epochs. A batch is built whole by :class:`TrainBatches` (one
vectorized index, crop and conversion step per batch; per-element Grain transforms cost ~60 us
per example, more than reading a cached clip).

Process ``p`` of ``P`` reads contiguous blocks of ``L = B / P`` elements (``B`` = global batch
size): its batch for global step ``s`` is elements ``[s * B + p * L, s * B + (p + 1) * L)``. So
global step ``s`` consists of exactly the elements ``[s * B, (s + 1) * B)``, in the same row
order as on one process (row-dependent ops such as dropout masks then match across ``P``).
The stream does not depend on ``P`` nor on the number of Grain workers, only on ``seed``,
the :class:`TrainSegments` and the source; resuming from a global step gives the same stream.

Evaluation (:func:`eval_batches`)
---------------------------------
Every clip is cut into ``segments_per_clip`` windows; process ``p`` handles clips
``p, p + P, ...`` in order; all processes yield :func:`num_eval_batches` batches, the tail padded
with rows whose ``segment_valid`` is False.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Iterator, Mapping, Sequence

import grain
import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.data.schema import pcm16_to_float

PLACEMENTS = ("start", "even")
TRAIN_SEGMENTS = ("random", "grid")  # config.data.train_segments
_SHUFFLE_STREAM = 0  # Sub-streams of the user seed (numpy SeedSequence entropy).
_CROP_STREAM = 1
_ENDLESS = 2 ** 62  # Length of the "infinite" training datasets (global steps).


# ----------------------------------------------------------------------------------- sources


class InMemorySource:
  """A picklable random-access source over a list of record dicts (tests, small corpora).

  ``split``, when given, is kept as the attribute ``split`` (as :class:`ShardSource` has it).
  """

  def __init__(self, records: Sequence[Mapping[str, Any]], split: str | None = None):
    self._records = list(records)
    if split is not None:
      self.split = split

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> Mapping[str, Any]:
    return self._records[index]

  def __repr__(self) -> str:
    return f"InMemorySource(num_records={len(self._records)})"


def load_in_memory(source: Any, *, max_megabytes: float, progress: bool = True) -> InMemorySource:
  """Every record of ``source`` read once into memory: an :class:`InMemorySource` whose
  ``source[i]`` costs no decompression or parsing (``config.data.cache_in_memory``).

  For training splits that fit in RAM: the per-record cost of the shards (zstd decompression and
  TFDS parsing, ~0.2 ms) is paid once instead of once per example per epoch. Raises
  :class:`UserError` as soon as the arrays read exceed ``max_megabytes``.
  """
  from tqdm.auto import tqdm

  split = getattr(source, "split", None)
  records, total = [], 0
  for i in tqdm(range(len(source)), desc=f"caching {split or 'records'} in memory",
                unit="clip", leave=False, disable=not progress):
    record = source[i]
    total += sum(v.nbytes for v in record.values() if isinstance(v, np.ndarray))
    if total > max_megabytes * 2 ** 20:
      raise UserError(
          f"{source!r} does not fit in config.data.cache_max_mb={max_megabytes:g} MB (passed it "
          f"at record {i} of {len(source)}); raise the limit or set "
          f"config.data.cache_in_memory=false.")
    records.append(record)
  return InMemorySource(records, split=split)


# ------------------------------------------------------------------------------ pure helpers


def resolve_processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  """``(process_index, process_count)``, defaulting each to ``jax.process_index()/count()``."""
  if process_index is None or process_count is None:
    import jax  # Lazily: Grain workers import this module and never need jax.

    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if process_count < 1 or not 0 <= process_index < process_count:
    raise UserError(f"process_index={process_index} is not in [0, process_count={process_count}).")
  return int(process_index), int(process_count)


def local_batch_size(global_batch_size: int, process_count: int) -> int:
  """The per-process batch size ``global_batch_size // process_count`` (must divide exactly)."""
  if global_batch_size < 1 or global_batch_size % process_count:
    raise UserError(
        f"global_batch_size={global_batch_size} must be a positive multiple of the number of "
        f"processes ({process_count}).")
  return global_batch_size // process_count


def convert_field(name: str, value: Any) -> np.ndarray:
  """One record field -> numpy: ``tags`` float32, integers int64, floats float32, else as is."""
  array = np.asarray(value)
  if name == "tags" or array.dtype.kind == "f":
    return array.astype(np.float32)
  if array.dtype.kind in "iu":
    return array.astype(np.int64)
  return array


def window(audio: np.ndarray, start: int, length: int) -> np.ndarray:
  """``audio[start:start + length]`` of a 1-D int16 clip, zero-padded at the end -> [length]."""
  piece = audio[start:start + length]
  if piece.shape[0] < length:
    piece = np.concatenate([piece, np.zeros([length - piece.shape[0]], audio.dtype)])
  return piece


def segment_starts(num_samples: int, segment_length: int, segments_per_clip: int,
                   placement: str = "even") -> np.ndarray:
  """Start samples of a clip's evaluation segments -> int64 [segments_per_clip].

  ``"start"``: back-to-back from sample 0 (``0, L, 2L, ...``), as in the papers (10 segments of
  59,049 samples from the start of each 29 s MTAT clip); a clip shorter than
  ``segments_per_clip * L`` falls back to ``"even"``. ``"even"``: ``round(linspace(0, len - L,
  n))``, so the first segment starts the clip and the last one ends it. A clip shorter than
  ``L`` gives ``n`` zero starts (every segment is the whole clip, zero-padded).
  """
  return grid_starts(np.full([segments_per_clip], num_samples, np.int64),
                     np.arange(segments_per_clip, dtype=np.int64), segment_length,
                     segments_per_clip, placement)


def grid_starts(num_samples: np.ndarray, segment_index: np.ndarray, segment_length: int,
                segments_per_clip: int, placement: str) -> np.ndarray:
  """Vectorized :func:`segment_starts`: the start of segment ``segment_index[i]`` of a clip of
  ``num_samples[i]`` samples -> int64 ``[n]`` (both inputs int ``[n]``; one batch of the
  training grid in one step)."""
  if placement not in PLACEMENTS:
    raise UserError(f"placement={placement!r} is not one of {PLACEMENTS}.")
  num_samples = np.asarray(num_samples, np.int64)
  k = np.asarray(segment_index, np.int64)
  last = np.maximum(num_samples - segment_length, 0)
  # np.linspace(0, last, S)[k] as numpy computes it: k * (last / (S - 1)), the endpoint set to
  # exactly ``last`` when S > 1; [0] when S == 1.
  step = last / max(segments_per_clip - 1, 1)
  endpoint = (k == segments_per_clip - 1) & (segments_per_clip > 1)
  even = np.where(endpoint, last, np.round(k * step)).astype(np.int64)
  if placement == "start":
    back_to_back = num_samples >= segments_per_clip * segment_length
    return np.where(back_to_back, k * segment_length, even)
  return even


def _mono_audio(record: Mapping[str, Any]) -> np.ndarray:
  audio = np.asarray(record["audio"])
  if audio.ndim != 1:
    raise UserError(f"record audio must be 1-D int16 [samples], got shape {audio.shape}.")
  return audio


def _clean_fields(fields: Sequence[str]) -> tuple[str, ...]:
  """The requested extra fields, without ``clip_id`` (always present) and duplicates."""
  if "audio" in fields:
    raise UserError("fields must not contain 'audio': the pipeline always returns it.")
  return tuple(dict.fromkeys(f for f in fields if f != "clip_id"))


def _check_source(source: Any, fields: tuple[str, ...]) -> Mapping[str, Any]:
  """Reads the first record and checks that it has the requested fields; returns it."""
  if len(source) == 0:
    raise UserError(f"the data source {source!r} is empty.")
  first = source[0]
  missing = [f for f in ("audio", "clip_id") + fields if f not in first]
  if missing:
    raise UserError(f"records of {source!r} lack fields {missing}; they have {sorted(first)}.")
  return first


# ------------------------------------------------------------------------------------ training


@dataclasses.dataclass(frozen=True)
class TrainSegments:
  """Which windows of a clip the training stream visits (``config.data.train_segments``).

  ``mode="random"`` (default): one unit per clip per epoch, a window drawn uniformly at each
  visit (an epoch is ``N`` windows). ``mode="grid"``: the papers' fixed grid (papers 1, 5, 6;
  papers.md 1.2, 2.4, 6.1, 7.2): every clip is cut into ``segments_per_clip`` windows placed by
  :func:`segment_starts` with ``placement`` (the evaluation segments: ``"start"`` is the papers'
  back-to-back grid from sample 0), each visited once per epoch (an epoch is ``N x
  segments_per_clip`` windows). The count is fixed per clip so that the epoch length is known
  without reading every clip: a clip shorter than ``segments_per_clip`` windows gets
  :func:`segment_starts`' fallback (evenly spaced, overlapping windows; a clip shorter than one
  window gives ``segments_per_clip`` copies of itself zero-padded at the end), exactly as its
  evaluation segments are cut. ``segments_per_clip`` and ``placement`` are unused in random mode.
  Cost of the grid: a permutation of ``N x S`` int64 per epoch (MSD, 201,680 clips x 10: 16 MB,
  ~0.1 s to draw, two kept per reading process); per batch as cheap as random crops.
  """

  mode: str = "random"
  segments_per_clip: int = 1
  placement: str = "start"

  def __post_init__(self):
    if self.mode not in TRAIN_SEGMENTS:
      raise UserError(f"train_segments={self.mode!r} is not one of {TRAIN_SEGMENTS}.")
    if self.placement not in PLACEMENTS:
      raise UserError(f"placement={self.placement!r} (config.data.eval_placement) is not one "
                      f"of {PLACEMENTS}.")
    if int(self.segments_per_clip) < 1:
      raise UserError(f"segments_per_clip must be positive, got {self.segments_per_clip}.")

  @classmethod
  def from_data_config(cls, data: Mapping[str, Any]) -> "TrainSegments":
    """From ``config.data``: ``train_segments`` (default ``"random"``), ``segments_per_clip``
    and ``eval_placement`` (the grid is the evaluation segments)."""
    return cls(str(data.get("train_segments", "random")), int(data.get("segments_per_clip", 1)),
               str(data.get("eval_placement", "start")))

  @property
  def per_clip(self) -> int:
    """Units per clip in an epoch: ``segments_per_clip`` on the grid, 1 for random crops."""
    return int(self.segments_per_clip) if self.mode == "grid" else 1


def uniform_from_counter(key: int, counters: np.ndarray) -> np.ndarray:
  """float64 ``[n]`` uniform in [0, 1): splitmix64 of ``counters * golden + key`` (a counter-based
  generator: the draw for counter ``g`` depends only on ``key`` and ``g``, vectorized)."""
  with np.errstate(over="ignore"):
    z = np.asarray(counters, np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(key)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
  return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


class TrainBatches:
  """Global step ``s`` -> this process's training batch (module docstring). Picklable (Grain
  workers) and safe to call from Grain's reading threads; keeps the permutations of the last two
  epochs it used.

  Batch: ``audio`` float32 ``[local_batch, crop_length, 1]`` in [-1, 1), one window of each
  element's clip: uniformly drawn (``segments.mode == "random"``) or its grid segment
  (``"grid"``); clips shorter than ``crop_length`` zero-padded at the end. ``clip_id`` int64
  ``[local_batch]``, each of ``fields`` stacked by :func:`convert_field`.
  """

  def __init__(self, source: Any, *, crop_length: int, global_batch_size: int, seed: int,
               fields: tuple[str, ...], process_index: int, process_count: int,
               segments: TrainSegments = TrainSegments()):
    self.source, self.crop_length, self.seed, self.fields = (source, int(crop_length),
                                                             int(seed), tuple(fields))
    self.segments = segments
    self.global_batch_size = int(global_batch_size)
    self.local_batch = local_batch_size(global_batch_size, process_count)
    self.offset = process_index * self.local_batch
    self.num_records = len(source)
    self.epoch_length = self.num_records * segments.per_clip  # Units per epoch.
    self._crop_key = int(np.random.SeedSequence((self.seed, _CROP_STREAM)).generate_state(
        1, np.uint64)[0])
    self._orders: dict[int, np.ndarray] = {}
    self._lock = threading.Lock()

  def __getstate__(self) -> dict:
    return {k: v for k, v in self.__dict__.items() if k not in ("_orders", "_lock")}

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state, _orders={}, _lock=threading.Lock())

  def epoch_order(self, epoch: int) -> np.ndarray:
    """int64 ``[N * S]``: the unit (``clip * S + segment``) at each position of epoch ``epoch``
    (``perm_e``; ``S = 1`` for random crops, so units are clips)."""
    with self._lock:
      order = self._orders.get(epoch)
      if order is None:
        order = np.random.default_rng((self.seed, _SHUFFLE_STREAM, epoch)).permutation(
            self.epoch_length)
        if len(self._orders) >= 2:
          self._orders.pop(min(self._orders))
        self._orders[epoch] = order
      return order

  def elements(self, step: int) -> np.ndarray:
    """int64 ``[local_batch]``: the global-stream elements ``g`` of this process's batch."""
    first = int(step) * self.global_batch_size + self.offset
    return np.arange(first, first + self.local_batch, dtype=np.int64)

  def units(self, elements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(record index, grid segment index)`` of each global-stream element, int64 each
    (the segment is 0 for random crops)."""
    epochs, positions = np.divmod(elements, self.epoch_length)
    out = np.empty_like(elements)
    for epoch in np.unique(epochs):
      rows = epochs == epoch
      out[rows] = self.epoch_order(int(epoch))[positions[rows]]
    return np.divmod(out, self.segments.per_clip)

  def starts(self, elements: np.ndarray, segments: np.ndarray,
             lengths: np.ndarray) -> np.ndarray:
    """int64 window start of each element (clips of ``lengths`` samples)."""
    if self.segments.mode == "random":
      spans = np.maximum(lengths - self.crop_length, 0) + 1
      return np.floor(uniform_from_counter(self._crop_key, elements) * spans).astype(np.int64)
    return grid_starts(lengths, segments, self.crop_length, self.segments.per_clip,
                       self.segments.placement)

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    g = self.elements(step)
    record_indices, segments = self.units(g)
    records = [self.source[int(i)] for i in record_indices]
    audio = [_mono_audio(r) for r in records]
    starts = self.starts(g, segments, np.array([a.shape[0] for a in audio], np.int64))
    pcm = np.stack([window(a, int(s), self.crop_length) for a, s in zip(audio, starts)])
    batch = {"audio": pcm16_to_float(pcm)[..., None],
             "clip_id": np.array([r["clip_id"] for r in records], np.int64)}
    for name in self.fields:
      batch[name] = np.stack([convert_field(name, r[name]) for r in records])
    return batch


def crop_example(record: Mapping[str, Any], start: int, crop_length: int,
                 fields: Sequence[str]) -> dict[str, np.ndarray]:
  """One training example from a record and a crop start (what one row of a
  :class:`TrainBatches` batch holds; used by the samplers that build examples one at a time):
  ``audio`` float32 [crop_length, 1], ``clip_id`` int64 [], ``fields`` by :func:`convert_field`."""
  example = {
      "audio": pcm16_to_float(window(_mono_audio(record), start, crop_length))[:, None],
      "clip_id": np.asarray(record["clip_id"], np.int64),
  }
  for name in fields:
    example[name] = convert_field(name, record[name])
  return example


def _ensure_absl_flags_parsed() -> None:
  """Marks absl flags parsed (at their defaults) if no one parsed them.

  Grain 0.2.18's ``mp_prefetch`` reads an absl flag and raises ``UnparsedFlagAccessError`` in
  programs that do not run under ``absl.app`` (google/grain#1355, fixed upstream by #1362).
  A later ``absl.flags.FLAGS(argv)`` still parses normally.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def train_dataset(source: Any, *, crop_length: int, global_batch_size: int, seed: int,
                  fields: Sequence[str] = ("tags",), process_index: int | None = None,
                  process_count: int | None = None,
                  segments: TrainSegments = TrainSegments()) -> grain.MapDataset:
  """This process's infinite ``MapDataset`` of training batches (item ``s`` = global step ``s``).

  units (clips, or (clip, grid segment) pairs) -> shuffle (new permutation each epoch) -> repeat
  forever -> window of element ``g`` (random: rng ``(seed, g)``; grid: its segment) -> batches
  of ``B = global_batch_size // process_count`` consecutive elements -> process
  ``process_index``'s contiguous block of each global step. See the module docstring for the
  stream's exactly-once property. Batch shapes are those of :func:`train_iterator`.
  """
  process_index, process_count = resolve_processes(process_index, process_count)
  local_batch_size(global_batch_size, process_count)  # Checks that it divides.
  if crop_length < 1:
    raise UserError(f"crop_length must be positive, got {crop_length}.")
  fields = _clean_fields(fields)
  _check_source(source, fields)
  if seed < 0:
    raise UserError(f"seed must be a non-negative integer, got {seed}.")
  if not isinstance(segments, TrainSegments):
    raise TypeError(f"segments must be a TrainSegments, got {type(segments).__name__}.")
  batches = TrainBatches(source, crop_length=crop_length, global_batch_size=global_batch_size,
                         seed=seed, fields=fields, process_index=process_index,
                         process_count=process_count, segments=segments)
  return grain.MapDataset.range(_ENDLESS).map(batches)


def process_batches(ds: grain.MapDataset, *, global_batch_size: int, process_index: int,
                    process_count: int) -> grain.MapDataset:
  """A global stream of examples -> this process's batches (item ``s`` = global step ``s``).

  Contiguous blocks: process p's batch for global step s is stream elements
  [s*G + p*B, s*G + (p+1)*B) (``G = global_batch_size``, ``B = G // process_count``), so the
  global batch has the single-process row order (dropout masks and any row-dependent op then
  match across process counts).
  """
  batch = local_batch_size(global_batch_size, process_count)
  return ds.batch(batch, drop_remainder=True)[process_index::process_count]


def train_iterator(source: Any, *, crop_length: int, global_batch_size: int, seed: int,
                   fields: Sequence[str] = ("tags",), process_index: int | None = None,
                   process_count: int | None = None, num_workers: int = 0,
                   worker_buffer_size: int = 2, read_threads: int = 4,
                   read_buffer_size: int = 8, start_step: int = 0,
                   segments: TrainSegments = TrainSegments()) -> grain.DatasetIterator:
  """An endless iterator of this process's training batches (dict of numpy).

  Batch: ``audio`` float32 [local_batch, crop_length, 1] (``[batch, time, channels]``, clips
  shorter than ``crop_length`` zero-padded at the end), ``clip_id`` int64 [local_batch], and
  each of ``fields``: ``tags`` float32 [local_batch, num_tags], integer fields int64, float
  fields float32, others (``path``) as numpy stacks them. ``local_batch = global_batch_size //
  process_count`` (a :class:`UserError` if it does not divide).

  Batches may span epoch boundaries (epochs are counted in samples, nothing is dropped); the
  first ``len(source) * S`` elements of the global stream hold every unit once (``S =
  segments.per_clip``: each clip once with random crops, each (clip, grid segment) once on the
  grid), the next ``len(source) * S`` again, and so on (module docstring).

  Resuming: ``it.get_state()`` is a JSON-serialisable dict (``grain.checkpoint.CheckpointSave``
  saves it per process); ``set_state`` on a fresh iterator built with the same arguments
  continues bit-identically. The state's layout depends on ``num_workers`` (with workers it is
  one state per worker), so restore it with the same ``num_workers`` and the same
  ``global_batch_size``/``process_count``. To resume after changing ``num_workers`` or
  ``process_count`` (same ``global_batch_size`` and ``seed``), build a new iterator with
  ``start_step=<steps already taken>`` instead: the stream depends only on the global step.

  Args:
    num_workers: Grain worker processes (``mp_prefetch``, spawned); 0 reads in this process.
    worker_buffer_size: batches each worker keeps ready.
    read_threads, read_buffer_size: Grain ``ReadOptions`` per process (threads reading whole
      batches, and batches buffered). Grain's defaults (16, 500) are far too big for audio.
    start_step: first global step to yield.
    segments: random crops (default) or the segment grid, :class:`TrainSegments`.
  """
  ds = train_dataset(source, crop_length=crop_length, global_batch_size=global_batch_size,
                     seed=seed, fields=fields, process_index=process_index,
                     process_count=process_count, segments=segments)
  return iterate_batches(ds, num_workers=num_workers, worker_buffer_size=worker_buffer_size,
                         read_threads=read_threads, read_buffer_size=read_buffer_size,
                         start_step=start_step)


def iterate_batches(ds: grain.MapDataset, *, num_workers: int = 0, worker_buffer_size: int = 2,
                    read_threads: int = 4, read_buffer_size: int = 8,
                    start_step: int = 0) -> grain.DatasetIterator:
  """A checkpointable iterator over a ``MapDataset`` of batches from ``start_step`` on, read
  with ``read_threads`` threads and optionally ``num_workers`` spawned Grain workers (the
  arguments of :func:`train_iterator`)."""
  if start_step:
    ds = ds[start_step:]
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                               prefetch_buffer_size=read_buffer_size))
  if num_workers > 0:
    _ensure_absl_flags_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=num_workers, per_worker_buffer_size=worker_buffer_size))
  return iter(it_ds)


# ---------------------------------------------------------------------------------- evaluation


def num_eval_batches(num_clips: int, *, segments_per_clip: int, global_batch_size: int,
                     process_count: int | None = None) -> int:
  """How many batches :func:`eval_batches` yields on every process.

  ``ceil(ceil(num_clips / P) * segments_per_clip / (global_batch_size / P))``: the process with
  the most clips sets the count, the others pad.
  """
  _, process_count = resolve_processes(0, process_count)
  batch = local_batch_size(global_batch_size, process_count)
  clips_per_process = -(-num_clips // process_count)
  return -(-clips_per_process * segments_per_clip // batch)


def _empty_eval_batch(batch: int, segment_length: int,
                      spec: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """An all-padding batch: zeros everywhere, ``segment_valid`` False."""
  out = {
      "audio": np.zeros([batch, segment_length, 1], np.float32),
      "clip_id": np.zeros([batch], np.int64),
      "clip_index": np.zeros([batch], np.int64),
      "segment_index": np.zeros([batch], np.int64),
      "segment_valid": np.zeros([batch], bool),
  }
  for name, example in spec.items():
    out[name] = np.zeros((batch,) + example.shape, example.dtype)
  return out


def _eval_rows(source: Any, clip_indices: range, segment_length: int, segments_per_clip: int,
               placement: str, fields: tuple[str, ...]) -> Iterator[tuple[int, int, dict]]:
  """Yields ``(clip_index, segment_index, row)`` per segment, reading one clip at a time."""
  for clip_index in clip_indices:
    record = source[clip_index]
    audio = _mono_audio(record)
    starts = segment_starts(audio.shape[0], segment_length, segments_per_clip, placement)
    extra = {name: convert_field(name, record[name]) for name in fields}
    for segment_index, start in enumerate(starts):
      row = {
          "audio": pcm16_to_float(window(audio, int(start), segment_length))[:, None],
          "clip_id": np.int64(record["clip_id"]),
          **extra,
      }
      yield clip_index, segment_index, row


def _eval_generator(source, first, segment_length, segments_per_clip, batch, num_batches,
                    placement, fields, process_index, process_count) -> Iterator[dict]:
  spec = {name: convert_field(name, first[name]) for name in fields}  # Shapes for padding.
  rows = _eval_rows(source, range(process_index, len(source), process_count), segment_length,
                    segments_per_clip, placement, fields)
  for _ in range(num_batches):
    out = _empty_eval_batch(batch, segment_length, spec)
    for i, (clip_index, segment_index, row) in zip(range(batch), rows):
      out["clip_index"][i] = clip_index
      out["segment_index"][i] = segment_index
      out["segment_valid"][i] = True
      for name, value in row.items():
        out[name][i] = value
    yield out


def eval_batches(source: Any, *, segment_length: int, segments_per_clip: int,
                 global_batch_size: int, fields: Sequence[str] = ("tags",),
                 placement: str = "even", process_index: int | None = None,
                 process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """This process's evaluation batches, deterministic, one clip in memory at a time.

  Each clip is cut into ``segments_per_clip`` windows of ``segment_length`` samples placed by
  :func:`segment_starts` (``"start"`` or ``"even"``; short clips zero-padded). Process ``p``
  takes clips ``p, p + P, ...`` in source order, their segments in order, and packs them into
  batches of ``global_batch_size // P`` rows (a clip may straddle two batches). Every process
  yields exactly :func:`num_eval_batches` batches, since every process must join each global
  step; the rows past a process's last segment are zeros with ``segment_valid`` False.

  Batch: ``audio`` float32 [local_batch, segment_length, 1], ``clip_id`` int64,
  ``clip_index`` int64 (position of the clip in the source: average predictions over it),
  ``segment_index`` int64 (0..segments_per_clip-1), ``segment_valid`` bool, all [local_batch],
  and ``fields`` as in :func:`train_iterator` (per segment: the clip's values repeated).
  """
  process_index, process_count = resolve_processes(process_index, process_count)
  batch = local_batch_size(global_batch_size, process_count)
  if segment_length < 1 or segments_per_clip < 1:
    raise UserError(f"segment_length ({segment_length}) and segments_per_clip "
                    f"({segments_per_clip}) must be positive.")
  if placement not in PLACEMENTS:
    raise UserError(f"placement={placement!r} is not one of {PLACEMENTS}.")
  fields = _clean_fields(fields)
  first = _check_source(source, fields)
  num_batches = num_eval_batches(len(source), segments_per_clip=segments_per_clip,
                                 global_batch_size=global_batch_size, process_count=process_count)
  return _eval_generator(source, first, segment_length, segments_per_clip, batch, num_batches,
                         placement, fields, process_index, process_count)


# ------------------------------------------------------------------------------ global arrays


def to_global_batch(local_batch: Mapping[str, np.ndarray], sharding) -> dict[str, Any]:
  """This process's batch -> global ``jax.Array`` per leaf, rows sharded by ``sharding``.

  ``sharding`` is e.g. ``NamedSharding(mesh, P("data"))``: a spec naming only the leading axis
  shards axis 0 over the data axis and replicates the others, so the one sharding serves every
  leaf of rank >= 1. The global leading size is ``local_batch * process_count``, rows ordered by
  process (process 0's rows first). Non-numeric leaves (e.g. ``path``) cannot be placed on
  devices: drop them first.
  """
  import jax  # pylint: disable=g-import-not-at-top

  out = {}
  for name, value in local_batch.items():
    value = np.asarray(value)
    if value.ndim == 0 or value.dtype.kind not in "biuf":
      raise UserError(f"batch leaf {name!r} ({value.dtype}, shape {value.shape}) cannot be "
                      "sharded over the batch axis; drop it from the batch first.")
    out[name] = jax.make_array_from_process_local_data(sharding, value)
  return out
