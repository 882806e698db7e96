"""``musicrep plan``: what a config's training step costs on an accelerator topology, without one.

The run is built exactly as ``train`` builds it (``trainer.build_run``: task, model, optimizer,
state shardings, a ``data x fsdp`` mesh), but over the devices of a named TPU topology
(``jax.experimental.topologies.get_topology_desc``; needs ``libtpu``, the ``tpu`` extra) or of this
host (``"local"``). The train and eval steps are then compiled ahead of time from abstract inputs
(``jax.ShapeDtypeStruct`` with the run's shardings: ``jit(...).lower(...).compile()``), which on a
CPU host gives the executable XLA would run on the pod, and its own accounting:

* ``memory_analysis()``: HBM bytes per device of arguments, outputs, temporaries and generated
  code; donated outputs alias their arguments. Needed = arguments + outputs - aliased +
  temporaries + code, against the chip's HBM (``chips.CHIPS``).
* ``cost_analysis()``: FLOPs and bytes accessed per device per step (XLA's HLO cost model).
* ``as_text()``: the optimized HLO, whose collectives (all-reduce, all-gather, reduce-scatter,
  all-to-all, collective-permute) are counted with the bytes of their results per device.

From these, a roofline (Williams, Waterman & Patterson, CACM 2009): step time >= max(FLOPs /
peak FLOP/s, bytes / HBM bandwidth); the MFU bound is the compute part over that time, and
samples/s follow from the per-chip batch. The roofline ignores collective time over the
interconnect, input stalls and kernel inefficiency, so real steps are slower: it is a bound.

Data: tagging and classification tasks bind to the data's metadata only (the tag or class
count), so without ``--data-dir`` a metadata stand-in (``MetadataShards``) with
``num_outputs`` classes is used. The other tasks (metric learning, DCUE, zero-shot) read records
when they bind (label tables, listening interactions, the tag words); without ``--data-dir`` they
bind to the embedded corpus rendered at the config's sample rate, the data ``:runlocal`` trains
on, and the report says so (``"data"``). What the corpus sets is small next to the papers' data
(its 24 tags, 200 users, a few dozen artists): the backbones and the P x K / triplet batches, which
are what a step costs, are the config's own, but output tables sized by the data (DCUE's user
embeddings, a classifier over artists) are the corpus's; pass ``--data-dir`` for the real sizes.
A zero-shot config without a word-vector file gets a stand-in: random vectors of the papers'
300 dimensions (papers.md 11) for the corpus's tag words, written into the cache.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.training import chips as chips_lib
from musicrep_jax.training import mesh as mesh_lib
from musicrep_jax.training import step as steps
from musicrep_jax.training import trainer
from musicrep_jax.training.precision import resolve_compute_dtype

# Tasks whose ``bind`` reads only shard metadata (tag names / class counts).
METADATA_TASKS = ("tagging", "classification")
# Output counts of the datasets the paper configs name (``config.data.name``): MTAT and MSD
# top-50 tags (papers.md 2, 11), DCASE 2017 Task 1's 15 scenes, Speech Commands v0.02's 35 words
# (data_pipelines/speech_commands_builder.py), the embedded corpus' 24 tags.
DEFAULT_OUTPUTS = {"mtat": 50, "msd": 50, "dcase2017": 15, "dcase2017_task4": 17,
                   "speech_commands": 35,
                   "synthetic": 24}
# The word-vector dimension of papers 10-11 (papers.md 11: 300-d GloVe / word2vec), for the
# zero-shot stand-in vectors (``with_standin_word_vectors``).
STANDIN_VECTOR_DIM = 300
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1,
               "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4, "u32": 4, "f64": 8,
               "s64": 8, "u64": 8, "c64": 8, "c128": 16}
# One HLO instruction: "%name = SHAPE op(" or "%name = SHAPE op-done(" (async pairs are
# counted once, at -done, whose shape is the result).
_INSTRUCTION = re.compile(r"=\s*(?P<shape>.*?)\s(?P<op>" + "|".join(COLLECTIVES) +
                          r")(?P<suffix>-start|-done)?\(")
_ARRAY = re.compile(r"\b(?P<dtype>[a-z]+[0-9]*[a-z0-9]*)\[(?P<dims>[0-9,]*)\]")
MAX_PER_CHIP_BATCH = 2 ** 16


# ------------------------------------------------------------------------------ topology


@dataclasses.dataclass(frozen=True)
class Topology:
  """Devices to compile for: ``name``, the devices, processes (hosts) and chips."""

  name: str
  devices: tuple
  hosts: int
  chips: int

  @property
  def device_kind(self) -> str:
    return self.devices[0].device_kind

  @property
  def devices_per_chip(self) -> int:
    return max(len(self.devices) // max(self.chips, 1), 1)


# libtpu's view of a host that is not a TPU VM (``topology``): no metadata server to query, one
# local worker. Never set on a TPU VM, whose real values libtpu needs.
NOT_A_TPU_VM = {"TPU_SKIP_MDS_QUERY": "1", "TPU_WORKER_HOSTNAMES": "localhost",
                "TPU_WORKER_ID": "0", "TPU_ACCELERATOR_TYPE": "v5litepod-4"}


def on_tpu_host() -> bool:
  """Whether this machine has TPU chips attached (``/dev/accel*`` on v2-v5e VMs, ``/dev/vfio``
  on v5p/v6e VMs)."""
  return bool(glob.glob("/dev/accel*")) or os.path.isdir("/dev/vfio")


def topology(name: str) -> Topology:
  """``"local"`` (this host's devices) or a TPU topology ``KIND:AxB[xC]`` (``v5e:2x2``,
  ``v5e:16x16``, ``v5p:4x4x4``, ``v4:2x2x1``, ``v6e:4x4``; the shape counts chips)."""
  if name == "local":
    devices = tuple(jax.devices())
    return Topology(name, devices, jax.process_count(), len(devices))
  match = re.fullmatch(r"(v[0-9][a-z]*):([0-9]+(?:x[0-9]+)*)", name)
  if not match:
    raise UserError(f"--topology {name!r} is not 'local' or a TPU topology like v5e:2x2, "
                    f"v5e:16x16 or v5p:4x4x4.")
  # libtpu takes a lock file per process unless told that several may load it (a second JAX
  # process on this host, e.g. a concurrent CPU test, would otherwise block the compile).
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  if not on_tpu_host():
    # Off a TPU VM, libtpu asks the GCE metadata server which TPU this is and prints five lines
    # of errors when none answers; saying "one local worker" up front keeps it quiet. The
    # compiled programs are the same (checked: identical plans with and without these).
    for key, value in NOT_A_TPU_VM.items():
      os.environ.setdefault(key, value)
  try:
    from jax.experimental import topologies

    desc = topologies.get_topology_desc(platform="tpu", topology_name=name)
  except Exception as error:  # pylint: disable=broad-except  (libtpu missing or name unknown)
    import importlib.util

    hint = ("" if importlib.util.find_spec("libtpu") else
            " (TPU topologies need libtpu: pip install 'musicrep-jax[tpu]')")
    raise UserError(f"--topology {name} cannot be compiled for: {_first_line(error)}"
                    f"{hint}.") from None
  devices = tuple(desc.devices)
  chips = int(np.prod([int(d) for d in match.group(2).split("x")]))
  hosts = max(int(d.process_index) for d in devices) + 1
  return Topology(name, devices, hosts, chips)


def _first_line(error: BaseException) -> str:
  text = str(error).strip() or type(error).__name__
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return lines[0][:300]


# ------------------------------------------------------------------------------ data stand-in


class _NoRecords:
  """A split without records: any read is a ``UserError`` (the task needs ``--data-dir``)."""

  def __init__(self, split: str, message: str):
    self.split = split
    self._message = message

  def __len__(self):
    raise UserError(self._message)

  def __getitem__(self, index):
    raise UserError(self._message)


@dataclasses.dataclass(frozen=True)
class MetadataShards:
  """What ``task.bind`` of a tagging or classification task reads from ``data.shards.Shards``
  (tag names, single-label flag, class names), for ``num_outputs`` outputs, with no records."""

  num_outputs: int
  sample_rate: int
  config_name: str
  data_dir: str = "(no data: plan's metadata stand-in)"
  tag_groups: dict = dataclasses.field(default_factory=dict)
  split_sizes: dict = dataclasses.field(default_factory=lambda: {"train": 0})

  @property
  def dataset_dir(self) -> str:
    return self.data_dir

  @property
  def splits(self) -> tuple:
    return tuple(self.split_sizes)

  @property
  def tag_names(self) -> tuple:
    return tuple(f"output_{i}" for i in range(self.num_outputs))

  @property
  def metadata(self) -> dict:
    names = list(self.tag_names)
    return {"sample_rate": self.sample_rate, "tag_names": names, "single_label": True,
            **{f"{field}_names": names for field in ("genre", "artist", "album", "track")}}

  def source(self, split: str) -> _NoRecords:
    return _NoRecords(split, f"config {self.config_name}: its task reads records of the data; "
                             f"pass --data-dir with prepared shards to plan it.")


def plan_shards(config: ml_collections.ConfigDict, config_name: str,
                num_outputs: Optional[int] = None, data_dir: Optional[str] = None):
  """The shards ``build_run`` binds the task to: the prepared shards of ``data_dir``; else a
  ``MetadataShards`` stand-in with ``num_outputs`` outputs (by default
  ``DEFAULT_OUTPUTS[config.data.name]``) for tagging and classification, the embedded corpus for
  the tasks that read records (module docstring)."""
  if data_dir is not None:
    from musicrep_jax.data.shards import open_shards

    return open_shards(data_dir, expected_sample_rate=config.data.sample_rate)
  if config.task.name not in METADATA_TASKS:
    from musicrep_jax.data.shards import open_shards
    from musicrep_jax.training import run_data

    data = run_data.ensure_synthetic(config.data,
                                     progress=bool(config.get("progress_bar", True)))
    return open_shards(data, expected_sample_rate=config.data.sample_rate)
  count = num_outputs or DEFAULT_OUTPUTS.get(config.data.name)
  if not count or count < 1:
    raise UserError(f"config {config_name}: no known output count for data "
                    f"{config.data.name!r}; pass --num-outputs N.")
  return MetadataShards(int(count), int(config.data.sample_rate), config_name)


def data_description(shards, data_dir: Optional[str]) -> str:
  """What the plan's task was bound to, for the report's ``"data"`` field."""
  if isinstance(shards, MetadataShards):
    return f"metadata stand-in ({shards.num_outputs} outputs, no records)"
  if data_dir is None:
    return (f"embedded corpus stand-in ({len(shards.tag_names)} tags; pass --data-dir for the "
            f"sizes of real data)")
  return str(data_dir)


def with_standin_word_vectors(config: ml_collections.ConfigDict, shards) -> ml_collections.ConfigDict:
  """``config`` with ``task.kwargs.word_vectors`` pointing at random 300-d vectors for the words
  of ``shards``' tags (written once into the cache) when a zero-shot config names no vector file
  (module docstring); other configs unchanged. The label branch's cost depends only on the
  vector dimension, not on the values."""
  kwargs = config.task.get("kwargs", {})
  if (config.task.name != "zero_shot" or kwargs.get("word_vectors")
      or kwargs.get("side_info", "word_vectors") != "word_vectors"):
    return config
  from musicrep_jax.data import word_vectors
  from musicrep_jax.training import run_data

  words = sorted({w for tag in shards.tag_names for w in re.split(r"[\s_/&,-]+", tag.lower())
                  if w})
  path = run_data.cache_root() / "plan" / f"standin-vectors-{STANDIN_VECTOR_DIM}d-{len(words)}.txt"
  if not path.exists():
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = np.random.default_rng(0).standard_normal((len(words), STANDIN_VECTOR_DIM))
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    word_vectors.save_word2vec_text(tmp, words, vectors)
    os.replace(tmp, path)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.task.kwargs.word_vectors = str(path)
    config.task.kwargs.word_vectors_config = ""
  return config


# ------------------------------------------------------------------------------ abstract inputs


def _abstract(tree, sharding):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(
      x.shape, jax.dtypes.canonicalize_dtype(x.dtype), sharding=sharding), tree)


def record_example(run: trainer.Run) -> dict:
  """One record's ``task.fields`` values (numpy), converted as batches convert them
  (``pipeline.convert_field``): from the shards' first train record, or from the stand-in."""
  from musicrep_jax.data import pipeline

  if isinstance(run.shards, MetadataShards):
    n = run.shards.num_outputs
    raw = {name: (np.zeros([n], np.uint8) if name == "tags" else np.int64(0))
           for name in run.task.fields}
  else:
    source = run.shards.source(run.config.data.train_split)
    first = source[0]
    raw = {name: first[name] for name in run.task.fields}
  return {name: pipeline.convert_field(name, value) for name, value in raw.items()}


def train_batch_rows(run: trainer.Run) -> dict:
  """One row of a training batch, as ``{name: numpy array without the batch axis}``: audio
  ``[T, 1]``, ``clip_id`` and the task's fields; with real shards, the first row of the task's
  own ``train_iterator`` (P x K, DCUE and zero-shot batches differ).

  A row's shapes do not depend on the batch size, so the iterator is asked for batches of one
  row per process: a batch of ``config.batch_size`` would be read, cropped and held on this
  host, several times over with the iterator's read-ahead (DCUE at 4,096 x 21 crops of 67,072
  samples is 23 GB a batch: what stopped its plans, docs/scaling.md). Tasks whose batch size is
  fixed by their sampler (P x K metric learning, ``pk_batches.check_pk``) refuse that with a
  ``UserError``; they get ``config.batch_size``."""
  if isinstance(run.shards, MetadataShards):
    row = {"audio": np.zeros([run.input_length, 1], np.float32), "clip_id": np.int64(0)}
    row.update(record_example(run))
    return {k: np.asarray(v) for k, v in row.items()}
  from musicrep_jax.data import pipeline

  c = run.config

  def iterator(size: int):
    return run.task.train_iterator(
        trainer.train_source(c, run.shards), crop_length=run.input_length,
        global_batch_size=size, seed=c.seed, num_workers=0,
        segments=pipeline.TrainSegments.from_data_config(c.data))

  try:
    batches = iterator(jax.process_count())
  except UserError:  # P x K: the sampler fixes the batch size.
    batches = iterator(int(c.batch_size))
  return {k: np.asarray(v)[0] for k, v in next(batches).items()}


def eval_batch_rows(run: trainer.Run) -> dict:
  """One row of an evaluation batch (``pipeline.eval_batches``' keys)."""
  row = {"audio": np.zeros([run.input_length, 1], np.float32), "clip_id": np.int64(0),
         "clip_index": np.int64(0), "segment_index": np.int64(0), "segment_valid": np.bool_(True)}
  row.update(record_example(run))
  return {k: np.asarray(v) for k, v in row.items()}


def abstract_batch(rows: dict, batch_size: int, mesh) -> dict:
  """``rows`` stacked ``batch_size`` times, as abstract arrays split over the mesh."""
  shapes = {k: jax.ShapeDtypeStruct((batch_size,) + v.shape, v.dtype) for k, v in rows.items()}
  return _abstract(shapes, mesh_lib.batch_sharding(mesh))


def abstract_accumulator(run: trainer.Run):
  names = tuple(run.task.metric_names) + ("grad_norm",)
  shapes = jax.eval_shape(lambda: steps.LogAccumulator.zeros(names))
  return _abstract(shapes, mesh_lib.replicated(run.mesh))


# ------------------------------------------------------------------------------ analysis


def collectives(hlo_text: str) -> dict:
  """``{op: {"count", "bytes"}}`` of the collectives in optimized HLO text: every instruction
  ``op(...)`` or ``op-done(...)`` (async pairs once), bytes = its result shape (tuple shapes
  summed), per device. Instructions inside loops count once (static count)."""
  found = {op: {"count": 0, "bytes": 0} for op in COLLECTIVES}
  for match in _INSTRUCTION.finditer(hlo_text):
    if match.group("suffix") == "-start":
      continue
    op = match.group("op")
    found[op]["count"] += 1
    found[op]["bytes"] += shape_bytes(match.group("shape"))
  return found


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape string such as ``f32[3,3]{1,0}`` or ``(bf16[8], s32[])``."""
  total = 0.0
  for array in _ARRAY.finditer(shape):
    size = DTYPE_BYTES.get(array.group("dtype"))
    if size is None:
      continue
    dims = [int(d) for d in array.group("dims").split(",") if d]
    total += size * int(np.prod(dims, dtype=np.int64))
  return int(total)


@dataclasses.dataclass(frozen=True)
class Compiled:
  """What one ahead-of-time compile reports, per device."""

  argument_bytes: int
  output_bytes: int
  alias_bytes: int
  temp_bytes: int
  code_bytes: int
  flops: float
  bytes_accessed: float
  collectives: dict
  compile_s: float
  out_of_memory: Optional[str] = None  # XLA's message when the program cannot fit the device.

  @property
  def hbm_bytes(self) -> int:
    """Peak HBM the executable needs: arguments + outputs - aliased (donated) + temporaries +
    generated code. Out of memory: what XLA's message says it needed."""
    return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes +
            self.code_bytes)


_OOM_NEEDED = re.compile(r"required for (?:HLO )?[\w ]+? \((?P<n>[0-9.]+)(?P<unit>[KMGT]?)\) "
                         r"exceeds available HBM")
_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def out_of_memory(message: str, seconds: float) -> Optional[Compiled]:
  """A ``Compiled`` for XLA's "Ran out of memory in memory space hbm" refusal (the TPU compiler
  checks the device's HBM itself), with the bytes its message names as temporaries; None
  when ``message`` is another error."""
  if "RESOURCE_EXHAUSTED" not in message and "Ran out of memory" not in message:
    return None
  match = _OOM_NEEDED.search(message)
  needed = int(float(match.group("n")) * _UNITS[match.group("unit")]) if match else 0
  return Compiled(argument_bytes=0, output_bytes=0, alias_bytes=0, temp_bytes=needed,
                  code_bytes=0, flops=float("nan"), bytes_accessed=float("nan"),
                  collectives={op: {"count": 0, "bytes": 0} for op in COLLECTIVES},
                  compile_s=seconds, out_of_memory=_first_line(message))


def analyse(jitted, *args, what: str, config_name: str, topology_name: str) -> Compiled:
  """``jitted.lower(*args).compile()`` and its memory, cost and collectives; a ``UserError``
  naming the config and XLA's reason when it does not compile."""
  t0 = time.perf_counter()
  try:
    compiled = jitted.lower(*args).compile()
  except UserError:
    raise
  except Exception as error:  # pylint: disable=broad-except  (XLA: no lowering, bad sharding)
    oom = out_of_memory(str(error), time.perf_counter() - t0)
    if oom is not None:
      return oom
    raise UserError(f"config {config_name}: the {what} does not compile for {topology_name}: "
                    f"{_first_line(error)}") from None
  seconds = time.perf_counter() - t0
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per executable.
    cost = cost[0] if cost else {}
  cost = cost or {}
  return Compiled(
      argument_bytes=int(memory.argument_size_in_bytes),
      output_bytes=int(memory.output_size_in_bytes),
      alias_bytes=int(memory.alias_size_in_bytes),
      temp_bytes=int(memory.temp_size_in_bytes),
      code_bytes=int(memory.generated_code_size_in_bytes),
      flops=float(cost.get("flops", 0.0)), bytes_accessed=float(cost.get("bytes accessed", 0.0)),
      collectives=collectives(compiled.as_text()), compile_s=seconds)


def roofline(flops: float, bytes_accessed: float, peak_flops: float,
             bandwidth: float) -> dict:
  """Roofline bound of one step: compute time, memory time, their max, the bound, intensity."""
  compute_s = flops / peak_flops
  memory_s = bytes_accessed / bandwidth
  step_s = max(compute_s, memory_s)
  return {"compute_time_s": compute_s, "memory_time_s": memory_s, "step_time_s": step_s,
          "bound": "compute" if compute_s >= memory_s else "memory",
          "mfu_bound": compute_s / step_s if step_s > 0 else 0.0,
          "arithmetic_intensity": flops / bytes_accessed if bytes_accessed else 0.0,
          "ridge_intensity": peak_flops / bandwidth}


def sharded_bytes(abstract_tree) -> int:
  """Bytes per device of an abstract tree with shardings (each leaf's shard shape)."""
  total = 0
  for leaf in jax.tree.leaves(abstract_tree):
    shard = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
    total += int(np.prod(shard, dtype=np.int64)) * jnp.dtype(leaf.dtype).itemsize
  return total


# ------------------------------------------------------------------------------ the plan


@dataclasses.dataclass
class Planner:
  """A run built over a topology's devices, compiled at any global batch size."""

  run: trainer.Run
  topology: Topology
  config_name: str
  state: Any = None

  def __post_init__(self):
    self.state = trainer.abstract_state(self.run)
    self.accumulator = abstract_accumulator(self.run)
    self.train_rows = train_batch_rows(self.run)
    self.eval_rows = eval_batch_rows(self.run)

  def check_batch(self, batch_size: int, key: str = "config.batch_size") -> None:
    n, hosts = len(self.topology.devices), self.topology.hosts
    if batch_size < 1 or batch_size % n or batch_size % hosts:
      raise UserError(f"config {self.config_name}: {key}={batch_size} must be a positive "
                      f"multiple of the {n} devices of {self.topology.name}.")

  def compile_train(self, batch_size: int) -> Compiled:
    batch = abstract_batch(self.train_rows, batch_size, self.run.mesh)
    return analyse(self.run.train_step, self.state, self.accumulator, batch, what="train step",
                   config_name=self.config_name, topology_name=self.topology.name)

  def compile_eval(self, batch_size: int) -> Compiled:
    batch = abstract_batch(self.eval_rows, batch_size, self.run.mesh)
    return analyse(self.run.eval_step, self.state, batch, what="eval step",
                   config_name=self.config_name, topology_name=self.topology.name)


def max_per_device_batch(fits: Callable[[int], bool], start: int = 1,
                         limit: int = MAX_PER_CHIP_BATCH) -> int:
  """The largest per-device batch ``b`` with ``fits(b)``, assuming fitting is monotone: doubling
  from ``start`` until a batch does not fit (or ``limit``), then bisection. 0 when none fits."""
  lo, hi = 0, None
  b = max(int(start), 1)
  while b <= limit:
    if not fits(b):
      hi = b
      break
    lo, b = b, b * 2
  if hi is None:
    return lo
  while hi - lo > 1:
    mid = (lo + hi) // 2
    if fits(mid):
      lo = mid
    else:
      hi = mid
  return lo


def plan(config: ml_collections.ConfigDict, *, topology_name: str, config_name: str,
         num_outputs: Optional[int] = None, data_dir: Optional[str] = None,
         max_batch: bool = False, progress: Callable[[str], None] = lambda line: None) -> dict:
  """The plan of ``config`` on ``topology_name``: a flat dict (module docstring; every value a
  scalar) describing memory, cost, roofline and collectives per chip of the train step, and
  the eval step's memory. ``max_batch``: first find the largest per-chip batch that fits."""
  try:
    topo = topology(topology_name)
    if max_batch:  # The search sets the batch; start from the config's, rounded to the devices.
      config = config.copy_and_resolve_references()
      n = len(topo.devices)
      config.batch_size = max(int(config.batch_size) // n, 1) * n
    shards = plan_shards(config, config_name, num_outputs, data_dir)
    config = with_standin_word_vectors(config, shards)
    run = trainer.build_run(config, shards, devices=topo.devices)
  except UserError as error:
    prefix = f"config {config_name}"
    raise UserError(str(error) if str(error).startswith(prefix) else
                    f"{prefix} on {topology_name}: {error}") from None
  planner = Planner(run, topo, config_name)
  n = len(topo.devices)
  batch_size = int(config.batch_size)
  spec = chips_lib.chip_spec(topo.device_kind)
  device_spec = spec.per_device(topo.devices_per_chip) if spec else None

  searched = None
  if max_batch:
    if device_spec is None:
      raise UserError(f"--max-batch needs the memory of {topo.device_kind!r}, which "
                      f"musicrep_jax/training/chips.py does not list.")
    per = max(batch_size // n, 1)

    def fits(b: int) -> bool:
      progress(f"  compiling the train step at {b} per device ...")
      compiled = planner.compile_train(b * n)
      return compiled.out_of_memory is None and compiled.hbm_bytes <= device_spec.hbm_bytes

    searched = max_per_device_batch(fits, start=per)
    if searched == 0:
      raise UserError(f"config {config_name}: not even one example per device fits "
                      f"{topo.device_kind} ({device_spec.hbm_bytes / 2 ** 30:.1f} GiB).")
    batch_size = searched * n
  planner.check_batch(batch_size)
  eval_batch = int(config.get("eval_batch_size", config.batch_size))
  if searched is not None and "eval_batch_size" not in config:
    eval_batch = batch_size
  planner.check_batch(eval_batch, "config.eval_batch_size")

  progress(f"compiling the train step for {topo.name} ({n} devices, batch {batch_size}) ...")
  train = planner.compile_train(batch_size)
  progress(f"compiling the eval step (batch {eval_batch}) ...")
  evaluation = planner.compile_eval(eval_batch)

  per_device = batch_size // n
  row_bytes = sum(v.nbytes for v in planner.train_rows.values())
  state_bytes = sharded_bytes(planner.state)
  param_bytes = sharded_bytes(planner.state.params)
  out = {
      "config": config_name, "data": data_description(shards, data_dir),
      "topology": topo.name, "device_kind": topo.device_kind,
      "devices": n, "chips": topo.chips, "hosts": topo.hosts,
      "devices_per_host": n // topo.hosts, "mesh_data": int(run.mesh.shape["data"]),
      "mesh_fsdp": int(run.mesh.shape["fsdp"]), "compute_dtype": resolve_compute_dtype(config.compute_dtype, run.mesh.devices.flat),
      "input_length": int(run.input_length), "global_batch": batch_size,
      "per_chip_batch": per_device, "eval_batch": eval_batch,
      "max_batch_searched": searched is not None,
      "param_count": int(sum(int(np.prod(x.shape)) for x in
                             jax.tree.leaves(planner.state.params))),
      "param_bytes_per_chip": param_bytes, "state_bytes_per_chip": state_bytes,
      "hbm_bytes_per_chip": train.hbm_bytes, "hbm_argument_bytes": train.argument_bytes,
      "hbm_output_bytes": train.output_bytes, "hbm_temp_bytes": train.temp_bytes,
      "hbm_alias_bytes": train.alias_bytes, "hbm_code_bytes": train.code_bytes,
      "eval_hbm_bytes_per_chip": evaluation.hbm_bytes,
      "flops_per_chip": train.flops, "bytes_accessed_per_chip": train.bytes_accessed,
      "eval_flops_per_chip": evaluation.flops,
      "compile_train_s": train.compile_s, "compile_eval_s": evaluation.compile_s,
      "collectives_total": sum(v["count"] for v in train.collectives.values()),
      "collective_bytes_total": sum(v["bytes"] for v in train.collectives.values()),
      "eval_collectives_total": sum(v["count"] for v in evaluation.collectives.values()),
  }
  for op, value in train.collectives.items():
    key = op.replace("-", "_")
    out[f"{key}_count"] = value["count"]
    out[f"{key}_bytes"] = value["bytes"]
  out["out_of_memory"] = train.out_of_memory or evaluation.out_of_memory
  if train.out_of_memory:  # No executable: no cost, no roofline.
    for key in ("flops_per_chip", "bytes_accessed_per_chip", "collectives_total",
                "collective_bytes_total"):
      out[key] = None
  if device_spec is None:
    out.update(chip=None, fits=False if out["out_of_memory"] else None)
    return _no_nan(out)
  peak = device_spec.peak(out["compute_dtype"])
  train_fits = train.out_of_memory is None and train.hbm_bytes <= device_spec.hbm_bytes
  eval_fits = evaluation.out_of_memory is None and evaluation.hbm_bytes <= device_spec.hbm_bytes
  out.update(
      chip=device_spec.name, hbm_capacity_bytes=int(device_spec.hbm_bytes),
      hbm_fraction=train.hbm_bytes / device_spec.hbm_bytes, fits=bool(train_fits and eval_fits),
      train_fits=bool(train_fits), eval_fits=bool(eval_fits), peak_flops=peak,
      hbm_bandwidth=device_spec.hbm_bandwidth, chip_source=device_spec.source)
  if train.out_of_memory:
    return _no_nan(out)
  line = roofline(train.flops, train.bytes_accessed, peak, device_spec.hbm_bandwidth)
  samples_device = per_device / line["step_time_s"] if line["step_time_s"] > 0 else 0.0
  samples_host = samples_device * n / topo.hosts
  out.update(
      **line,
      samples_per_s_per_chip=samples_device, samples_per_s_per_host=samples_host,
      host_input_mb_per_s=samples_host * row_bytes / 1e6)
  return _no_nan(out)


def _no_nan(result: dict) -> dict:
  """NaN (no executable, so no cost) -> None, so the JSON line stays valid JSON (null)."""
  return {k: None if isinstance(v, float) and v != v else v for k, v in result.items()}


def format_report(result: dict) -> str:
  """The plan as a readable table (what the CLI prints before its JSON line)."""
  def gb(key):
    value = result.get(key)
    return "-" if value is None else f"{value / 1e9:.3f} GB"

  def num(key, fmt="{:.3g}"):
    value = result.get(key)
    return "-" if value is None else fmt.format(value)

  rows = [
      ("config", result["config"]),
      ("data", result.get("data", "-")),
      ("topology", f"{result['topology']}: {result['devices']} x {result['device_kind']} "
                   f"({result['chips']} chips, {result['hosts']} hosts)"),
      ("mesh", f"data={result['mesh_data']} x fsdp={result['mesh_fsdp']}, "
               f"{result['compute_dtype']} compute"),
      ("batch", f"global {result['global_batch']}, per chip {result['per_chip_batch']}"
                f"{' (largest that fits)' if result['max_batch_searched'] else ''}; eval "
                f"{result['eval_batch']}"),
      ("parameters", f"{result['param_count']:,} ({gb('param_bytes_per_chip')} per chip; state "
                     f"{gb('state_bytes_per_chip')})"),
      ("HBM per chip", f"{gb('hbm_bytes_per_chip')} of {gb('hbm_capacity_bytes')}: arguments "
                       f"{gb('hbm_argument_bytes')}, outputs {gb('hbm_output_bytes')}, temporaries "
                       f"{gb('hbm_temp_bytes')}, aliased {gb('hbm_alias_bytes')}, code "
                       f"{gb('hbm_code_bytes')}"),
      ("fits", f"{result['fits']} (eval step {gb('eval_hbm_bytes_per_chip')})" +
               (f"; XLA: {result['out_of_memory']}" if result.get("out_of_memory") else "")),
      ("FLOPs / chip / step", num("flops_per_chip", "{:.4g}")),
      ("bytes / chip / step", num("bytes_accessed_per_chip", "{:.4g}")),
      ("intensity", f"{num('arithmetic_intensity', '{:.1f}')} FLOP/byte (ridge "
                    f"{num('ridge_intensity', '{:.0f}')}): {result.get('bound', '-')}-bound"),
      ("roofline step", f"{num('step_time_s', '{:.4g}')} s (compute "
                        f"{num('compute_time_s', '{:.3g}')} s, memory "
                        f"{num('memory_time_s', '{:.3g}')} s)"),
      ("MFU bound", num("mfu_bound", "{:.1%}")),
      ("samples/s", f"{num('samples_per_s_per_chip', '{:,.0f}')} per chip, "
                    f"{num('samples_per_s_per_host', '{:,.0f}')} per host "
                    f"({num('host_input_mb_per_s', '{:,.1f}')} MB/s of batches per host)"),
      ("collectives", f"{result['collectives_total']} ({gb('collective_bytes_total')}): " +
                      ", ".join(f"{op} {result[op.replace('-', '_') + '_count']}"
                                for op in COLLECTIVES
                                if result[op.replace("-", "_") + "_count"])),
      ("compile", f"train {result['compile_train_s']:.1f} s, eval "
                  f"{result['compile_eval_s']:.1f} s"),
  ]
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"  {k:>{width}}: {v}" for k, v in rows)
