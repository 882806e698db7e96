"""The training split resident in accelerator memory (``config.data.placement="device"``).

Issue 16, item 3. The raw-waveform models are memory-bound and their input is large (one 59,049-
sample crop is 236 kB of float32), so with ``placement="host"`` every step assembles, converts
and transfers the whole batch of audio from the host. With ``placement="device"`` the training
split's int16 PCM is placed once on the devices and each step sends only a small index batch.

Layout. :class:`DeviceDataset` holds the split as one int16 ``jax.Array`` ``[rows, width]``:
clip ``i`` is row ``i``, zero-padded at the end to ``width = max(longest clip, crop_length)``
(so a window never runs past the row: ``dynamic_slice`` would clamp its start instead of
zero-padding, and :func:`musicrep_jax.data.pipeline.window` zero-pads). ``rows`` is the clip
count rounded up to a multiple of the mesh's ``data`` axis; the rows are sharded over ``data``
(``P("data", None)``) and replicated over ``fsdp``. Per-clip metadata (``clip_id``, the task's
``fields``: tags etc., a few MB even for MSD) and the lengths stay on the host in numpy. Padding
costs ``width / mean length`` (MTAT clips are all ~29.1 s, so ~1.0); a corpus with very uneven
lengths should be cut into clips first.

Order. The host side (:class:`IndexBatches`) is :class:`musicrep_jax.data.pipeline.TrainBatches`
without the audio: the same global stream (epoch permutations, counter-based random starts or
the segment grid), so global step ``s`` holds exactly the (clip, window start) pairs of the host
pipeline's step ``s``, in the same row order, and the gathered crops are bit-identical to the host
batch. The example order therefore does NOT differ from ``placement="host"``; each clip (each
(clip, segment) on the grid) is seen exactly once per epoch, and the iterator's state is the
step (a Grain ``MapDataset`` over steps: checkpointed by ``grain.checkpoint`` as today).

Gather. Inside the jitted step (:func:`fuse_train_step`) the index batch (``clip``, ``start``:
int32 ``[batch]``, batch-sharded) is all-gathered (``4 B`` bytes), every device slices the rows
of the global batch whose clip lives in its shard (zeros elsewhere) and a ``psum_scatter`` over
``data`` hands each device its own rows (a reduce-scatter of one global batch of int16, ``2 x
batch x crop`` bytes; exact, since one addend per row is non-zero); int16 -> float32 happens
after the exchange. Each device writes ``batch x crop`` int16 in the masked slice: for SampleCNN
(59,049 samples, 16 rows per chip, 16 chips) 30 MB per step against the step's ~7.7 GB of
activation traffic per chip.

Budget. Before the audio is placed, the bytes per device (``rows / data x width x 2``) are
checked against ``config.data.device_budget_mb`` (when > 0), else against
``config.data.device_budget_fraction`` of the chip's memory (``chips.chip_spec``, else the
device's ``memory_stats()["bytes_limit"]``); a CPU device has neither, so CPU runs must set
``device_budget_mb``. The check runs while the clips are read, so an oversize split is refused
as soon as it is known not to fit. MTAT at 22,050 Hz (~27 GB) is ~1.7 GB per chip on a v5e-16.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import grain
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P

from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.data.schema import AUDIO_FULL_SCALE
from musicrep_jax.errors import UserError
from musicrep_jax.training import chips
from musicrep_jax.training import mesh as mesh_lib

PLACEMENTS = ("host", "device")  # config.data.placement
INDEX_KEYS = ("clip", "start")  # What an index batch adds to the host batch's label fields.
_ENDLESS = 2 ** 62  # Steps of the "infinite" index dataset (as pipeline.train_dataset's).


def placement(data_config: Mapping[str, Any]) -> str:
  """``config.data.placement`` (default ``"host"``), checked."""
  value = str(data_config.get("placement", "host"))
  if value not in PLACEMENTS:
    raise UserError(f"config.data.placement={value!r} is not one of {PLACEMENTS}.")
  return value


# ------------------------------------------------------------------------------------ budget


def device_budget_bytes(device, budget_mb: float = 0, fraction: float = 0.5) -> float:
  """Bytes of audio one device may hold: ``budget_mb`` MiB when > 0, else ``fraction`` of the
  chip's memory (``chips.chip_spec`` of its ``device_kind``, else ``memory_stats()
  ["bytes_limit"]``); ``UserError`` when neither is known (CPU)."""
  if budget_mb and budget_mb > 0:
    return float(budget_mb) * 2 ** 20
  if not 0 < fraction <= 1:
    raise UserError(f"config.data.device_budget_fraction={fraction} must be in (0, 1].")
  spec = chips.chip_spec(getattr(device, "device_kind", ""))
  total = spec.hbm_bytes if spec is not None else None
  if total is None:
    try:
      total = (device.memory_stats() or {}).get("bytes_limit")
    except Exception:  # pylint: disable=broad-except  (backends without memory stats)
      total = None
  if not total:
    raise UserError(f"the memory of device {getattr(device, 'device_kind', device)!r} is not "
                    f"known; set config.data.device_budget_mb for data.placement=device.")
  return float(total) * fraction


def _refuse(needed: float, budget: float, what: str) -> None:
  if needed > budget:
    raise UserError(
        f"the training split does not fit on the devices ({what}: {needed / 2 ** 20:,.0f} MiB "
        f"per device > budget {budget / 2 ** 20:,.0f} MiB); use more devices, raise "
        f"config.data.device_budget_mb/device_budget_fraction, or set data.placement=host.")


# ----------------------------------------------------------------------------------- dataset


@dataclasses.dataclass(frozen=True)
class DeviceDataset:
  """A training split on the devices (module docstring).

  ``audio``: int16 ``jax.Array`` ``[rows, width]`` sharded ``P("data", None)``; ``lengths``:
  int64 ``[num_clips]`` samples per clip; ``clip_id``: int64 ``[num_clips]``; ``fields``: name
  -> numpy ``[num_clips, ...]`` (:func:`pipeline.convert_field`), all on the host.
  """

  audio: jax.Array
  lengths: np.ndarray
  clip_id: np.ndarray
  fields: dict
  mesh: Any

  @property
  def num_clips(self) -> int:
    return int(self.lengths.shape[0])

  @property
  def bytes_per_device(self) -> int:
    return int(self.audio.shape[0] // self.mesh.shape["data"] * self.audio.shape[1] * 2)


def load(source: Any, mesh, *, crop_length: int, fields: Sequence[str] = ("tags",),
         budget_mb: float = 0, budget_fraction: float = 0.5) -> DeviceDataset:
  """Reads ``source`` once and places its audio on ``mesh`` (a :class:`DeviceDataset`).

  Each process keeps the audio of the clips its devices hold (``make_array_from_callback``);
  every process reads every record once for the lengths and label fields. ``UserError`` as soon
  as the bytes per device exceed the budget (:func:`device_budget_bytes`).
  """
  fields = tuple(f for f in dict.fromkeys(fields) if f not in ("clip_id", "audio"))
  n = len(source)
  if n == 0:
    raise UserError(f"the data source {source!r} is empty.")
  data = mesh.shape["data"]
  rows = -(-n // data) * data
  per_shard = rows // data
  budget = device_budget_bytes(mesh.devices.flat[0], budget_mb, budget_fraction)
  _refuse(per_shard * crop_length * 2.0, budget, f"{n} clips of at least {crop_length} samples")
  local_rows = set()  # Rows this process's devices hold.
  for device, index in NamedSharding(mesh, P("data", None)).addressable_devices_indices_map(
      (rows, 1)).items():
    del device
    local_rows.update(range(*index[0].indices(rows)))
  lengths = np.zeros([n], np.int64)
  clip_ids = np.zeros([n], np.int64)
  values: dict[str, list] = {name: [] for name in fields}
  kept: dict[int, np.ndarray] = {}
  width = crop_length
  for i in range(n):
    record = source[i]
    audio = np.asarray(record["audio"])
    if audio.ndim != 1:
      raise UserError(f"record audio must be 1-D int16 [samples], got shape {audio.shape}.")
    lengths[i] = audio.shape[0]
    clip_ids[i] = int(record["clip_id"])
    for name in fields:
      if name not in record:
        raise UserError(f"records of {source!r} lack field {name!r}; they have {sorted(record)}.")
      values[name].append(input_pipeline.convert_field(name, record[name]))
    if audio.shape[0] > width:
      width = int(audio.shape[0])
      _refuse(per_shard * width * 2.0, budget, f"{n} clips padded to {width} samples (clip {i})")
    if i in local_rows:
      kept[i] = audio.astype(np.int16, copy=False)

  def block(index) -> np.ndarray:
    start, stop, _ = index[0].indices(rows)
    out = np.zeros([stop - start, width], np.int16)
    for r in range(start, stop):
      if r in kept:
        out[r - start, :kept[r].shape[0]] = kept[r]
    return out

  audio = jax.make_array_from_callback((rows, width), NamedSharding(mesh, P("data", None)),
                                       block)
  return DeviceDataset(audio=audio, lengths=lengths, clip_id=clip_ids,
                       fields={k: np.stack(v) for k, v in values.items()}, mesh=mesh)


# ------------------------------------------------------------------------------ host indices


class IndexBatches:
  """Global step -> this process's index batch: ``clip``, ``start`` int32 ``[local_batch]``,
  ``clip_id`` int64 and the label ``fields`` (as :class:`pipeline.TrainBatches` stacks them).
  The rows are those of ``TrainBatches`` for the same arguments (its ``elements``, ``units`` and
  ``starts``), without reading any audio."""

  def __init__(self, dataset: DeviceDataset, *, crop_length: int, global_batch_size: int,
               seed: int, process_index: int, process_count: int,
               segments: input_pipeline.TrainSegments = input_pipeline.TrainSegments()):
    self.lengths, self.clip_id, self.fields = dataset.lengths, dataset.clip_id, dataset.fields
    # TrainBatches reads only len(source) until called; range(n) stands in for the records.
    self.stream = input_pipeline.TrainBatches(
        range(dataset.num_clips), crop_length=crop_length, global_batch_size=global_batch_size,
        seed=seed, fields=(), process_index=process_index, process_count=process_count,
        segments=segments)

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    g = self.stream.elements(step)
    clips, segments = self.stream.units(g)
    starts = self.stream.starts(g, segments, self.lengths[clips])
    batch = {"clip": clips.astype(np.int32), "start": starts.astype(np.int32),
             "clip_id": self.clip_id[clips]}
    for name, value in self.fields.items():
      batch[name] = value[clips]
    return batch


def index_iterator(dataset: DeviceDataset, *, crop_length: int, global_batch_size: int,
                   seed: int, segments: input_pipeline.TrainSegments = input_pipeline.TrainSegments(),
                   process_index: int | None = None, process_count: int | None = None,
                   start_step: int = 0) -> grain.DatasetIterator:
  """A checkpointable Grain iterator of :class:`IndexBatches` (its state is the step), read by
  one thread: an index batch costs tens of microseconds."""
  process_index, process_count = input_pipeline.resolve_processes(process_index, process_count)
  batches = IndexBatches(dataset, crop_length=crop_length, global_batch_size=global_batch_size,
                         seed=seed, process_index=process_index, process_count=process_count,
                         segments=segments)
  return input_pipeline.iterate_batches(grain.MapDataset.range(_ENDLESS).map(batches),
                                        read_threads=1, read_buffer_size=4,
                                        start_step=start_step)


# ------------------------------------------------------------------------------ device gather


def gather_crops(audio: jax.Array, clip: jax.Array, start: jax.Array,
                 crop_length: int) -> jax.Array:
  """Windows of int16 rows: ``audio`` ``[rows, width]``, ``clip``/``start`` int32 ``[batch]``
  -> float32 ``[batch, crop_length, 1]`` in [-1, 1) (``pcm16_to_float``). Starts must satisfy
  ``start + crop_length <= width`` (``dynamic_slice`` clamps otherwise)."""
  rows = jax.vmap(lambda c, s: lax.dynamic_slice(audio, (c, s), (1, crop_length))[0])(
      clip, start)
  return (rows.astype(jnp.float32) / jnp.float32(AUDIO_FULL_SCALE))[..., None]


def sharded_gather(mesh, crop_length: int):
  """``(audio [rows, width] P("data", None), clip, start [batch] batch-sharded) -> float32
  [batch, crop_length, 1]`` batch-sharded, by the masked gather + ``psum_scatter`` of the
  module docstring (a ``shard_map`` over ``mesh``)."""
  axes = mesh_lib.BATCH_AXES
  fsdp = mesh.shape["fsdp"]

  def local(block, clip, start):
    clip = lax.all_gather(clip, axes, tiled=True)  # The global batch's indices, [batch].
    start = lax.all_gather(start, axes, tiled=True)
    first = lax.axis_index("data") * block.shape[0]
    mine = (clip >= first) & (clip < first + block.shape[0])
    row = jnp.where(mine, clip - first, 0)
    pcm = jax.vmap(lambda c, s: lax.dynamic_slice(block, (c, s), (1, crop_length))[0])(
        row, start)
    pcm = jnp.where(mine[:, None], pcm, jnp.zeros_like(pcm))
    pcm = lax.psum_scatter(pcm, "data", scatter_dimension=0, tiled=True)  # [batch / data, T]
    if fsdp > 1:  # This device's part of its data group's rows.
      size = pcm.shape[0] // fsdp
      pcm = lax.dynamic_slice_in_dim(pcm, lax.axis_index("fsdp") * size, size)
    return (pcm.astype(jnp.float32) / jnp.float32(AUDIO_FULL_SCALE))[..., None]

  return jax.shard_map(local, mesh=mesh, in_specs=(P("data", None), P(axes), P(axes)),
                       out_specs=P(axes), check_vma=False)


class FusedStep:
  """``step(state, acc, index_batch)``: the run's train step with the crops gathered from
  ``dataset.audio`` inside the same jitted program. Calls the (jitted) ``train_step`` inside
  an outer ``jax.jit`` (its shardings become constraints; the outer jit donates the state and
  accumulator as the inner one does)."""

  def __init__(self, train_step, dataset: DeviceDataset, crop_length: int):
    self.dataset = dataset
    gather = sharded_gather(dataset.mesh, crop_length)

    def step(state, acc, batch, audio):
      crops = gather(audio, batch["clip"], batch["start"])
      batch = {k: v for k, v in batch.items() if k not in INDEX_KEYS}
      return train_step(state, acc, dict(batch, audio=crops))

    self._jitted = jax.jit(step, donate_argnums=(0, 1))

  def __call__(self, state, acc, batch):
    return self._jitted(state, acc, batch, self.dataset.audio)

  def _cache_size(self) -> int:
    return self._jitted._cache_size()  # pylint: disable=protected-access

  def lower(self, state, acc, batch):
    return self._jitted.lower(state, acc, batch, self.dataset.audio)


def fuse_train_step(train_step, dataset: DeviceDataset, crop_length: int) -> FusedStep:
  """The run's ``train_step`` taking index batches (:class:`FusedStep`)."""
  return FusedStep(train_step, dataset, crop_length)
