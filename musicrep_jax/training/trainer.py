"""The training run, top to bottom: workdir & logging -> mesh -> input -> model & optimizer ->
state on the mesh -> resume -> loop (step, log, evaluate, plateau stages, checkpoint,
preemption) -> final test.

One code path serves a laptop and a pod: the batch is split over every device of every process,
each process reads only its slice of the data (Grain, ``input_pipeline``), and per-process numpy
batches become global ``jax.Array``s. The train step is compiled once (counted in the summary).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import signal
import time
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from musicrep_jax import config_loading, locks, storage
from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.common import evaluator_names, run_evaluators
from musicrep_jax.registry import MODELS, TASKS
from musicrep_jax.tasks.base import Task
from musicrep_jax.training import checkpoints, device_resident, optimizers, plateau, run_record
from musicrep_jax.training import mesh as mesh_lib
from musicrep_jax.training import precision
from musicrep_jax.training import step as steps
from musicrep_jax.training.run_data import resolve_shards
from musicrep_jax.training.writers import MetricWriter

import musicrep_jax.evaluators  # noqa: F401  (registers evaluators)
import musicrep_jax.models  # noqa: F401  (registers models)
import musicrep_jax.tasks  # noqa: F401  (registers tasks)


class TrainingDiverged(UserError):
  """The loss or gradient norm became NaN or infinite."""


@dataclasses.dataclass
class Run:
  """What a config and a dataset make: model, task, optimizer, compiled steps, the mesh."""

  config: ml_collections.ConfigDict
  shards: Any
  mesh: Any
  model: Any
  task: Any
  tx: Any
  input_length: int
  create_state: Any
  train_step: Any
  eval_step: Any
  evals: tuple = ()
  state_shapes: Any = None  # jax.eval_shape of create_state: build_run checks the model with it.


def build_run(config: ml_collections.ConfigDict, shards, devices=None) -> Run:
  """The run of ``config`` on ``shards``: the task bound to the data once
  (``task.bind(shards)``), the model built with the bound task's ``model_kwargs``, the compiled
  steps, and the evaluators ``config.evals`` names (the task's ``default_evals`` when empty).
  ``devices``: the mesh's devices (default all; ``plan`` passes a TPU topology's)."""
  mesh = mesh_lib.make_mesh(config.mesh.data, config.mesh.fsdp, devices)
  mesh_lib.check_batch_size(config.batch_size, mesh)
  task = make_task(config).bind(shards)
  evals = evaluator_names(config.get("evals", ()), task)
  kwargs = config_loading.constructor_kwargs(config.model.kwargs)
  kwargs.update(task.model_kwargs())
  kwargs["dtype"] = precision.model_dtype(  # "auto": bf16 on TPU/GPU, f32 on CPU.
      precision.resolve_compute_dtype(config.compute_dtype, mesh.devices.flat))
  model_cls = MODELS.get(config.model.name)
  if "sample_rate" in getattr(model_cls, "__dataclass_fields__", {}):
    # Models with a spectrogram front end take the data's rate; a different explicit value
    # would silently compute wrong mel bands.
    if kwargs.get("sample_rate", config.data.sample_rate) != config.data.sample_rate:
      raise UserError(f"config.model.kwargs.sample_rate={kwargs['sample_rate']} differs from "
                      f"config.data.sample_rate={config.data.sample_rate}.")
    kwargs["sample_rate"] = config.data.sample_rate
  try:
    model = model_cls(**kwargs)
  except TypeError as e:
    raise UserError(f"config.model.kwargs do not fit model {config.model.name!r}: {e}") from None
  input_length = model.input_length
  tx = optimizers.make_optimizer(config.optimizer, config.num_train_steps,
                                 with_stage_scale=plateau.enabled(config))
  try:  # Shapes only (nothing computed): kwargs that build a module but do not fit fail here.
    create_state = steps.make_create_state(model, tx, input_length, mesh, task,
                                           config.mesh.get("fsdp_min_size", 2 ** 14))
    state_shapes = jax.eval_shape(create_state, jax.random.key(config.seed))
  except (ValueError, TypeError, IndexError) as error:
    raise UserError(f"config.model.kwargs do not fit model {config.model.name!r}: "
                    f"{_first_sentence(error)}.") from None
  layout = create_state.state_sharding
  return Run(config=config, shards=shards, mesh=mesh, model=model, task=task, tx=tx,
             input_length=input_length, create_state=create_state,
             train_step=steps.make_train_step(model, task, tx, mesh, config.seed, layout),
             eval_step=steps.make_eval_step(model, task, mesh, layout), evals=evals,
             state_shapes=state_shapes)


def _first_sentence(error: BaseException) -> str:
  """The first sentence of ``error``'s first line (Orbax and JAX add pages of detail)."""
  text = (str(error).strip().splitlines() or [type(error).__name__])[0]
  return text.split(". ")[0].rstrip(".")


def make_task(config: ml_collections.ConfigDict):
  """``TASKS[config.task.name](**config.task.kwargs)``, unbound (``build_run`` binds it), with a
  clear error for bad kwargs."""
  kwargs = config.task.get("kwargs", None) or {}
  if "bound" in kwargs:
    raise UserError("config.task.kwargs.bound is not a task setting: the trainer binds the task "
                    "to the data.")
  return config_loading.build_from_config(
      TASKS.get(config.task.name), kwargs,
      f"config.task.kwargs do not fit task {config.task.name!r}")


def abstract_state(run: Run):
  """The state's shapes with this run's shardings: Orbax restores any checkpoint into them,
  whatever mesh wrote it."""
  shapes = run.state_shapes
  if shapes is None:
    shapes = jax.eval_shape(run.create_state, jax.random.key(run.config.seed))
  return jax.tree.map(lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                               sharding=sharding),
                      shapes, run.create_state.state_sharding)


def train_source(c: ml_collections.ConfigDict, shards):
  """The training split's records: the shards, or all of them in memory when
  ``config.data.cache_in_memory`` (``input_pipeline.load_in_memory``)."""
  source = shards.source(c.data.train_split)
  if not c.data.get("cache_in_memory", False):
    return source
  return input_pipeline.load_in_memory(
      source, max_megabytes=c.data.get("cache_max_mb", 4096),
      progress=c.get("progress_bar", True) and jax.process_index() == 0)


def make_train_iterator(run: Run):
  c = run.config
  return run.task.train_iterator(
      train_source(c, run.shards), crop_length=run.input_length,
      global_batch_size=c.batch_size, seed=c.seed, num_workers=c.data.num_workers,
      segments=input_pipeline.TrainSegments.from_data_config(c.data))


def _train_input(run: Run) -> tuple[Any, Run]:
  """The training iterator and the run whose ``train_step`` consumes it: the host pipeline
  (``make_train_iterator``), or with ``config.data.placement="device"`` the training split held
  on the devices, index batches in the same order and the crops gathered inside the step
  (``device_resident``)."""
  c = run.config
  if device_resident.placement(c.data) != "device":
    return make_train_iterator(run), run
  if type(run.task).train_iterator is not Task.train_iterator:
    raise UserError(f"The {c.task.name} task draws its own batches; set "
                    f"config.data.placement=host.")
  resident = device_resident.load(
      run.shards.source(c.data.train_split), run.mesh, crop_length=run.input_length,
      fields=run.task.fields, budget_mb=c.data.get("device_budget_mb", 0),
      budget_fraction=c.data.get("device_budget_fraction", 0.5))
  train_it = device_resident.index_iterator(
      resident, crop_length=run.input_length, global_batch_size=c.batch_size, seed=c.seed,
      segments=input_pipeline.TrainSegments.from_data_config(c.data))
  step = device_resident.fuse_train_step(run.train_step, resident, run.input_length)
  return train_it, dataclasses.replace(run, train_step=step)


def evaluate(run: Run, state, split: str) -> dict:
  """Segment-level outputs over ``split`` (``task.eval_outputs``, in the jitted eval step) ->
  the metrics of the run's evaluators (``run.evals``, merged into one dict; all processes)."""
  c = run.config
  source = run.shards.source(split)
  batch_sharding = mesh_lib.batch_sharding(run.mesh)
  keep = ("clip_index", "segment_valid") + tuple(run.task.fields)
  pieces = []
  for batch in input_pipeline.eval_batches(
      source, segment_length=run.input_length, segments_per_clip=c.data.segments_per_clip,
      global_batch_size=c.get("eval_batch_size", c.batch_size), fields=run.task.fields,
      placement=c.data.eval_placement):
    global_batch = input_pipeline.to_global_batch(batch, batch_sharding)
    outputs = run.eval_step(state, global_batch)
    pieces.append((outputs, {k: global_batch[k] for k in keep}))
  gathered = jax.tree.map(lambda *xs: np.concatenate(xs), *_fetch(pieces))
  segments = dict(gathered[0], **gathered[1])
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  return run_evaluators(run.evals, run.task, segments, len(source), variables, model=run.model)


def _fetch(tree):
  """Global arrays -> numpy on every process (all-gathers arrays spread over hosts)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


class _StopFlag:
  """Set by SIGTERM/SIGINT; checked between steps so the run saves and exits cleanly.

  Only installed on a single process. With several processes, SIGTERM is left to JAX's
  preemption notifier, which agrees on one step for all hosts (``reached_preemption``): a local
  flag would let hosts stop at different steps and deadlock the collectives.
  """

  def __init__(self, install: bool):
    self.signal = None
    self._previous = {}
    signals = (signal.SIGTERM, signal.SIGINT) if install else ()
    for sig in signals:
      self._previous[sig] = signal.signal(sig, self._handle)

  def _handle(self, signum, frame):
    del frame
    self.signal = signal.Signals(signum).name

  def restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _fresh_accumulator(run: Run):
  names = tuple(run.task.metric_names) + ("grad_norm",)
  return jax.device_put(steps.LogAccumulator.zeros(names), mesh_lib.replicated(run.mesh))


def _checkpoints(workdir: storage.AnyPath, config: ml_collections.ConfigDict,
                 async_save: bool) -> checkpoints.Checkpoints:
  return checkpoints.Checkpoints(workdir, keep=config.checkpoint.keep,
                                   best_metric=config.checkpoint.best_metric,
                                   best_mode=config.checkpoint.best_mode, async_save=async_save)


def _require_split(shards, split: str, key: str) -> None:
  if split not in shards.split_sizes:
    raise UserError(f"{key}={split!r} is not in {shards.dataset_dir}; available splits: "
                    f"{', '.join(sorted(shards.split_sizes))}.")


def _optional_split(shards, split: str, purpose: str) -> Optional[str]:
  """``split`` if the shards have it; otherwise say what is skipped (small hashed datasets)."""
  if split in shards.split_sizes:
    return split
  print(f"Note: no {split!r} split in {shards.dataset_dir}; skipping {purpose} "
        f"(available: {', '.join(sorted(shards.split_sizes))}).", flush=True)
  return None


def _read_accumulator(acc) -> tuple[dict, int]:
  host = jax.device_get(acc)
  count = max(int(host.count), 1)
  return {k: float(v) / count for k, v in host.sums.items()}, int(host.first_nonfinite_step)


def _timing_path(workdir: storage.AnyPath) -> storage.AnyPath:
  return workdir / "timing.json"


def _write_timing(workdir: storage.AnyPath, timing: dict) -> None:
  """Writes ``timing.json`` atomically (``storage.write_text_atomic``: locally a temporary file,
  then a rename; remotely one object upload): a run killed while writing leaves the previous
  file, never a truncated one."""
  storage.write_text_atomic(_timing_path(workdir), json.dumps(timing))


def _read_timing(workdir: storage.AnyPath) -> dict:
  """The saved timing totals, or {} (with a note) when the file is missing or unreadable: the
  file only feeds the timing report, so it must never block a resume."""
  path = _timing_path(workdir)
  if not path.exists():
    return {}
  try:
    return dict(json.loads(path.read_text()))
  except (OSError, ValueError, TypeError) as error:
    print(f"Note: {path} is unreadable ({error}); timing totals restart from zero.", flush=True)
    return {}


# Keys of config.json a resumed run may change (``musicrep train --allow-config-change`` adds
# more): how long and how often, not what is trained. Any other difference between the workdir's
# config.json and the new config refuses the resume (``_check_resume``), naming the keys.
RESUMABLE_KEYS = ("num_train_steps", "log_every", "eval_every", "checkpoint_every",
                  "progress_bar", "eval_batch_size", "checkpoint.keep", "checkpoint.async_save",
                  "mesh.data", "mesh.fsdp", "mesh.fsdp_min_size")
# Where the config was read from, not what it says: never compared.
_PROVENANCE_KEYS = ("config_file", "config_arg")
RUN_INFO = "run_info.json"
LOCK_NAME = ".train.lock"


def read_run_info(workdir: storage.AnyPath) -> dict:
  """``<workdir>/run_info.json``: what the run was trained on (``data_dir``: the absolute path
  or URI given as ``--data-dir``, None for the embedded corpus; ``sample_rate``, ``tag_names``,
  ``model``, ``task``), or {} for a workdir written before the file existed."""
  path = workdir / RUN_INFO
  if not path.exists():
    return {}
  try:
    return dict(json.loads(path.read_text()))
  except (OSError, ValueError, TypeError) as error:
    raise UserError(f"{path} is unreadable ({error}); restore it, or pass --data-dir.") from None


def _run_info(config: ml_collections.ConfigDict, shards, data_dir: Optional[str]) -> dict:
  if data_dir is not None and not storage.is_remote(data_dir):
    data_dir = str(pathlib.Path(data_dir).expanduser().absolute())
  return {"data_dir": None if data_dir is None else str(data_dir),
          "sample_rate": int(shards.sample_rate), "tag_names": list(shards.tag_names),
          "model": config.model.name, "task": config.task.name,
          # What this (latest) start of the run trains on, for model cards (export --format
          # pretrained): "cpu x8 (AMD EPYC ..., 2 CPUs)".
          "hardware": run_record.hardware_text(run_record.hardware())}


def _has_checkpoint(workdir: storage.AnyPath) -> bool:
  """Whether ``workdir`` holds a checkpoint step (checked without opening Orbax's managers,
  which would create their folders)."""
  for name in ("checkpoints", "best"):
    folder = workdir / name
    if folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir()):
      return True
  return False


def _allowed(key: str, allowed: tuple) -> bool:
  return any(key == a or key.startswith(a + ".") for a in allowed)


def _check_resume(workdir: storage.AnyPath, config: ml_collections.ConfigDict,
                  info: dict, allow_config_change: tuple) -> None:
  """Refuses to resume ``workdir``'s checkpoints with a config (or data) that differs from the
  one they were trained with, outside ``RESUMABLE_KEYS`` and ``allow_config_change``."""
  old = json.loads((workdir / "config.json").read_text())
  new = json.loads(config_loading.to_json(config))
  for recorded in (old, new):  # Written before config.plateau existed: no stages.
    recorded.setdefault("plateau", dict(plateau.PLATEAU_OFF))
  diffs = config_loading.config_diff(old, new)
  recorded = read_run_info(workdir)
  if recorded and recorded.get("data_dir") != info["data_dir"]:
    diffs.append(("data_dir", recorded.get("data_dir"), info["data_dir"]))
  allowed = RESUMABLE_KEYS + _PROVENANCE_KEYS + tuple(allow_config_change)
  refused = [(k, a, b) for k, a, b in diffs if not _allowed(k, allowed)]
  if refused:
    changes = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in refused)
    raise UserError(
        f"{workdir} holds checkpoints of another config, so resuming is refused ({changes}); "
        f"train into a new --workdir, or pass --allow-config-change "
        f"{','.join(k for k, _, _ in refused)} if the change is intended.")


def _workdir_lock(workdir: storage.AnyPath, is_main: bool):
  """Process 0's lock on the workdir (``locks.folder_lock``): a second ``train`` into it (a
  SLURM requeue while the first is alive) fails at once naming the holder's host and pid. A
  local workdir gets a ``flock``; a remote one (``gs://...``) a lease that a preempted pod's
  restart takes over once its heartbeat has stopped (``locks.remote_lock``)."""
  if not is_main:
    return contextlib.nullcontext()
  return locks.folder_lock(
      workdir, LOCK_NAME, "Another `musicrep train` ({holder}) is running in the workdir "
      "{folder}; wait for it to end, stop it, or choose another --workdir.")


def _check_workdir_path(workdir: storage.AnyPath) -> None:
  if not storage.is_remote(workdir) and workdir.exists() and not workdir.is_dir():
    raise UserError(f"--workdir {workdir} is a file, not a folder; choose a new folder or a "
                    f"run's workdir.")


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
          data_dir: Optional[str] = None, allow_config_change: tuple = ()) -> dict:
  """Trains (or resumes) a run in ``workdir`` (a local folder, or ``gs://...`` or any
  ``etils.epath`` URI: ``storage.as_path``); returns a summary with the final test metrics.

  Everything is checked before the workdir is written (config, data, model shapes, a resume's
  config against the workdir's, ``allow_config_change``: more keys that may differ); a failed
  start leaves the workdir as it was. A resume without ``data_dir`` reads the data the run was
  trained on (``run_info.json``)."""
  # --- Checks, input, model, optimizer, mesh: nothing written yet ------------------------------
  storage.require_reachable(workdir, "workdir")
  workdir = storage.as_path(workdir)
  is_main = jax.process_index() == 0
  c = config
  _check_workdir_path(workdir)
  resuming = (workdir / "config.json").exists() and _has_checkpoint(workdir)
  if resuming and data_dir is None:
    data_dir = read_run_info(workdir).get("data_dir")
  shards = resolve_shards(c, data_dir)
  info = _run_info(c, shards, data_dir)
  _require_split(shards, c.data.train_split, "config.data.train_split")
  eval_split = _optional_split(shards, c.data.eval_split, "validation during training")
  test_split = _optional_split(shards, c.data.test_split, "the final test")
  run = build_run(c, shards)
  split_names = getattr(getattr(run.task, "bound", None), "split_names", None)
  if split_names is not None:  # Zero-shot: the seen / unseen tags this run trains and tests on.
    info["tag_split"] = split_names()
  if resuming:
    _check_resume(workdir, c, info, allow_config_change)
  if plateau.enabled(c) and not eval_split:
    raise UserError(f"config.plateau.num_stages={c.plateau.num_stages} needs the validation "
                    f"split config.data.eval_split={c.data.eval_split!r}, which "
                    f"{shards.dataset_dir} does not have; set config.plateau.num_stages=0.")
  if eval_split:
    _check_best_metric(run, eval_split, workdir if resuming else None)

  # --- Workdir: locked, then the config and what it trains on recorded -------------------------
  with contextlib.ExitStack() as stack:
    try:
      stack.enter_context(_workdir_lock(workdir, is_main))
      if is_main:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # A read-only folder, a full disk, no permission.
      raise UserError(f"Cannot write into the workdir {workdir}: "
                      f"{error.strerror or error}.") from None
    return _train_in(run, workdir, info, eval_split, test_split)


def _record(workdir: storage.AnyPath, config: ml_collections.ConfigDict, info: dict) -> None:
  """Writes the run's ``config.json`` and ``run_info.json`` (process 0; atomic renames)."""
  if jax.process_index() == 0:
    storage.write_text_atomic(workdir / "config.json", config_loading.to_json(config))
    storage.write_text_atomic(workdir / RUN_INFO, json.dumps(info, indent=2))


def _train_in(run: Run, workdir: storage.AnyPath, info: dict, eval_split: Optional[str],
              test_split: Optional[str]) -> dict:
  """``train``'s run in the checked and locked ``workdir``: the config and ``info`` are recorded
  once the state is restored (or created), so a checkpoint that does not fit changes nothing."""
  c = run.config
  is_main = jax.process_index() == 0
  train_it, run = _train_input(run)
  ckpt = _checkpoints(workdir, c, async_save=c.checkpoint.async_save)

  # --- State on the mesh, or resumed from the last checkpoint ---------------------------------
  timing = {"compile_s": 0.0, "train_s": 0.0, "eval_s": 0.0, "checkpoint_s": 0.0, "steps": 0}
  stages = plateau.Stages(c)
  stage_at = plateau.Progress()  # Where the run is in its plateau stages (when enabled).
  if ckpt.latest_step() is not None:
    try:
      state, start = ckpt.restore_latest(abstract_state(run), train_it)
    except ValueError as error:  # Orbax: a saved shape differs (an allowed architecture change).
      raise UserError(f"The checkpoint in {workdir} does not fit the model of this config "
                      f"({_first_sentence(error)}); train into a new --workdir.") from None
    timing.update(_read_timing(workdir))
    print(f"Resumed from {workdir / 'checkpoints' / str(start)} (step {start}).", flush=True)
    if stages.enabled:
      stage_at = _restore_stage(ckpt, workdir, start)
  else:
    state, start = run.create_state(jax.random.key(c.seed)), 0
  _record(workdir, c, info)
  # Rows and events after the restored step came from the lost attempt: dropped.
  writer = MetricWriter(workdir, resume_step=start)
  acc = _fresh_accumulator(run)
  if stages.enabled:
    restart_stage, rescale_stage = plateau.make_stage_change(run.tx,
                                                             run.create_state.state_sharding)

  # --- Loop -------------------------------------------------------------------------------------
  batch_sharding = mesh_lib.batch_sharding(run.mesh)
  multi_process = jax.process_count() > 1
  stop = _StopFlag(install=not multi_process)
  progress = _progress_bar(c, start, is_main)
  last_logged = start
  interval_start = time.perf_counter()
  step = start
  stopped_by = None
  # A run its plateau stages ended (and that was killed before its final test) trains no more.
  last_step = start if stage_at.finished else c.num_train_steps
  try:
    for step in range(start + 1, last_step + 1):
      batch = input_pipeline.to_global_batch(next(train_it), batch_sharding)
      if step == start + 1:
        t0 = time.perf_counter()
        state, acc = run.train_step(state, acc, batch)
        jax.block_until_ready(acc)
        timing["compile_s"] += time.perf_counter() - t0
        interval_start = time.perf_counter()
        last_logged = step
      else:
        state, acc = run.train_step(state, acc, batch)
      progress.update(1)
      ckpt.check()  # A background save that failed stops the run now, not at the next save.

      is_last = step == c.num_train_steps
      if step % c.log_every == 0 or is_last or step % c.checkpoint_every == 0:
        means, bad_step = _read_accumulator(acc)
        elapsed = time.perf_counter() - interval_start
        n_steps = max(step - last_logged, 1)
        timing["train_s"] += elapsed
        # The steps train_s timed (not the compiling first step of each session).
        timing["train_steps"] = (timing.get("train_steps", max(timing["steps"] - 1, 0))
                                 + step - last_logged)
        timing["steps"] = step
        if bad_step >= 0:
          raise TrainingDiverged(
              f"The training loss became NaN or infinite at step {bad_step + 1} "
              f"(last finite report at step {last_logged}); no checkpoint was written after it "
              f"(latest: {ckpt.latest_step()}). Lower config.optimizer.learning_rate or set "
              f"config.optimizer.grad_clip_norm, then rerun to resume from the checkpoint.")
        rates = {"steps_per_s": n_steps / max(elapsed, 1e-9),
                 "samples_per_s": n_steps * c.batch_size / max(elapsed, 1e-9)}
        writer.write(step, "train", dict(means, learning_rate=stages.learning_rate(stage_at, step),
                                         **rates))
        progress.set_postfix(loss=f"{means['loss']:.4f}",
                             samples_s=f"{rates['samples_per_s']:.0f}")
        acc = _fresh_accumulator(run)
        last_logged = step
        interval_start = time.perf_counter()

      evaluated = stages_ended = False
      if eval_split and (step % c.eval_every == 0 or is_last):
        jax.block_until_ready(acc)  # Steps still in flight are training time, not evaluation.
        t0 = time.perf_counter()
        val = evaluate(run, state, eval_split)
        writer.write(step, eval_split, val)
        if c.checkpoint.best_metric not in val:
          raise UserError(f"config.checkpoint.best_metric={c.checkpoint.best_metric!r} is not "
                          f"an evaluation metric; choose one of {', '.join(sorted(val))}.")
        ckpt.save_best(step, state, val)
        progress.write(f"step {step}: {eval_split} " +
                       " ".join(f"{k}={v:.4f}" for k, v in val.items()
                                if isinstance(v, float)))
        if stages.enabled:
          evaluated = True
          state, stage_at, action = _next_stage(run, ckpt, stages, stage_at, state, val, step,
                                                restart_stage, rescale_stage, progress.write)
          stages_ended = action == plateau.STOP
        timing["eval_s"] += time.perf_counter() - t0
        interval_start += time.perf_counter() - t0  # Training since the last log still counts.

      if multi_process:
        stop_now = ckpt.latest.reached_preemption(step)
      else:
        stop_now = stop.signal is not None
      # With plateau stages every evaluation is checkpointed (its progress and best checkpoint
      # must survive a kill together: plateau.py).
      if step % c.checkpoint_every == 0 or is_last or stop_now or evaluated:
        t0 = time.perf_counter()
        ckpt.save(step, state, train_it, json_items=(
            {plateau.JSON_ITEM: stage_at.to_json()} if stages.enabled else None))
        if is_main:
          _write_timing(workdir, timing)
        writer.flush()  # A remote workdir's metrics and events go up with each checkpoint.
        timing["checkpoint_s"] += time.perf_counter() - t0
        interval_start += time.perf_counter() - t0
      if stop_now:
        stopped_by = stop.signal or "preemption"
        break
      if stages_ended:
        break
  except BaseException:
    ckpt.wait(raise_errors=False)  # The error in flight is the one to report.
    raise
  else:
    ckpt.wait()
  finally:
    progress.close()
    stop.restore()
    writer.flush()

  summary = {"workdir": str(workdir), "step": int(step),
             "compilations": int(run.train_step._cache_size()), "timing": timing}
  if stages.enabled:
    summary["plateau"] = dict(stage_at.to_json(), num_stages=stages.num_stages)
  if stopped_by:
    summary["stopped_by"] = stopped_by
    ckpt.close()
    writer.close()
    return summary

  # --- Final evaluation on the held-out test split with the best checkpoint -------------------
  best_state, best_step = ckpt.restore_state(abstract_state(run), "best")
  test = evaluate(run, best_state, test_split) if test_split else {}
  if test_split:
    writer.write(best_step, test_split, test)
  ckpt.close()
  writer.close()
  summary.update(test=test, best_step=int(best_step))
  if timing["train_s"] > 0:
    summary["steps_per_s"] = timing.get("train_steps", timing["steps"] - 1) / timing["train_s"]
  return summary


def _restore_stage(ckpt: checkpoints.Checkpoints, workdir: storage.AnyPath,
                   step: int) -> plateau.Progress:
  """The plateau progress saved with the resumed checkpoint ``step`` (a fresh one, with a note,
  when that checkpoint was written without stages)."""
  saved = ckpt.read_json(step, plateau.JSON_ITEM)
  if saved is None:
    print(f"Note: {workdir / 'checkpoints' / str(step)} holds no plateau progress (written "
          f"without config.plateau); the stages start at stage 1.", flush=True)
    return plateau.Progress()
  progress = plateau.Progress.from_json(saved, str(workdir / "checkpoints" / str(step)))
  print(f"Plateau stage {progress.stage + 1}, {progress.wait} evaluation(s) without "
        f"improvement.", flush=True)
  return progress


def _next_stage(run: Run, ckpt: checkpoints.Checkpoints, stages: plateau.Stages,
                stage_at: plateau.Progress, state, val: dict, step: int, restart, rescale,
                log) -> tuple[Any, plateau.Progress, str]:
  """The plateau decision after the evaluation ``val`` of ``step`` (``stages.observe``), carried
  out: a new stage's state (the best checkpoint's weights with a fresh optimizer, or the same
  state at the lower rate) and its one ``log`` line -> ``(state, progress, action)``. Waits for
  the best checkpoint of this evaluation to commit first: the latest checkpoint of ``step``,
  which saves the progress, must never be on disk without it."""
  ckpt.wait_best()
  stage_at, action = stages.observe(stage_at, float(val[stages.metric]), step)
  best_step = None
  if action == plateau.NEXT_STAGE:
    scale = np.float32(stages.scale(stage_at.stage))
    if stages.reload_best:
      best, best_step = ckpt.restore_state(abstract_state(run), "best")
      state = restart(state, best, scale)
    else:
      state = rescale(state, scale)
  if action != plateau.CONTINUE:
    log(stages.describe(stage_at, action, step, best_step))
  return state, stage_at, action


@dataclasses.dataclass(frozen=True)
class Restored:
  """A training workdir restored by ``restore_workdir``.

  ``run`` is what ``build_run`` makes of the saved config (``run.shards``: the dataset the
  model's shape came from); ``state`` the checkpoint's ``TrainState`` on ``run.mesh``, with the
  run's shardings; ``step`` its step; ``config`` the workdir's ``config.json``.
  """

  run: Run
  state: Any
  step: int
  config: ml_collections.ConfigDict
  workdir: storage.AnyPath

  @property
  def variables(self) -> dict:
    """``{"params", "batch_stats"}`` for ``run.model.apply`` (device arrays)."""
    return {"params": self.state.params, "batch_stats": self.state.batch_stats}


def restore_workdir(workdir: str | pathlib.Path, data_dir: Optional[str] = None,
                    which: str = "best") -> Restored:
  """The one way back from a finished (or running) workdir to a model: eval, export, embed,
  multiscale feature extraction and the i-vector hybrid all come through here.

  Rebuilds the run exactly as training did (``build_run`` on ``<workdir>/config.json`` and the
  shards of ``data_dir``, by default the data the run recorded in ``run_info.json``:
  ``resolve_shards``, so the embedded corpus' cache for ``synthetic``
  configs; the task takes the number of outputs, tag names etc. from them) and restores the
  ``which`` checkpoint into it: ``"best"`` (the latest when the run kept no best) or
  ``"latest"``; a damaged step is reported, moved aside to ``<step>.corrupt`` and the next
  one restored (``checkpoints.Checkpoints``). ``UserError`` for a folder without
  ``config.json`` or without a readable checkpoint, for a checkpoint that does not fit the
  model built on ``data_dir``, and for a workdir without ``run_info.json`` (written before it
  existed) when ``data_dir`` is not given and the data cannot be the embedded corpus.
  ``workdir`` may be remote (``gs://...``: ``storage.as_path``).
  """
  storage.require_reachable(workdir, "workdir")
  workdir = storage.as_path(workdir)
  config_file = workdir / "config.json"
  if not config_file.exists():
    raise UserError(f"{workdir} is not a training workdir (no config.json); "
                    f"train first with `musicrep train --workdir {workdir}`.")
  # Checked before opening the managers, which would create the folders.
  if not any((workdir / d).is_dir() for d in ("checkpoints", "best")):
    raise UserError(f"No checkpoint in {workdir}; train first.")
  config = config_loading.from_json(config_file.read_text())
  # A workdir written before run_info.json existed does not say what it was trained on.
  unrecorded = data_dir is None and not (workdir / RUN_INFO).exists()
  old_workdir = (f"{workdir} does not record the data it was trained on (no {RUN_INFO}: it was "
                 f"written by an older version)")
  if unrecorded and config.data.name != "synthetic":
    raise UserError(f"{old_workdir} and its config reads prepared shards "
                    f"(config.data.name={config.data.name!r}); pass --data-dir with the folder "
                    f"it was trained on.")
  recorded = read_run_info(workdir)
  if data_dir is None:  # The data the run was trained on (None: the embedded corpus).
    data_dir = recorded.get("data_dir")
  kwargs = config.task.get("kwargs", {})
  if "tag_split" in recorded and config.task.name == "zero_shot" \
      and not kwargs.get("seen_tag_names"):
    # Paper 11's transfer: the tags this run saw stay seen on another dataset (not redrawn).
    config.task.kwargs.seen_tag_names = tuple(recorded["tag_split"]["seen"])
  run = build_run(config, resolve_shards(config, data_dir))
  ckpt = _checkpoints(workdir, config, async_save=False)
  try:
    state, step = ckpt.restore_state(abstract_state(run), which)
  except FileNotFoundError:
    raise UserError(f"No checkpoint in {workdir}; train first.") from None
  except ValueError as error:  # A saved shape differs from the model's (CheckpointMismatch).
    if unrecorded:
      raise UserError(f"{old_workdir}, and its checkpoint does not fit the embedded corpus; pass "
                      f"--data-dir with the folder it was trained on "
                      f"({_first_sentence(error)}).") from None
    raise UserError(f"The checkpoint in {workdir} does not fit the model its config.json builds "
                    f"on {run.shards.data_dir}; pass the data it was trained on "
                    f"({_first_sentence(error)}).") from None
  finally:
    ckpt.close()
  return Restored(run=run, state=state, step=int(step), config=config, workdir=workdir)


def evaluate_workdir(workdir: str | pathlib.Path, split: str = "test",
                     data_dir: Optional[str] = None, which: str = "best") -> dict:
  """``restore_workdir``, then the task's clip-level metrics on ``split`` (with ``split`` and
  the checkpoint's ``step``)."""
  restored = restore_workdir(workdir, data_dir, which)
  _require_split(restored.run.shards, split, "--split")
  metrics = evaluate(restored.run, restored.state, split)
  return dict(metrics, split=split, step=restored.step)


class _FirstClips:
  """``shards`` whose ``source(split)`` holds only the split's first ``n`` clips."""

  def __init__(self, shards, n: int):
    self._shards, self._n = shards, n

  def __getattr__(self, name):
    return getattr(self._shards, name)

  def source(self, split: str):
    full = self._shards.source(split)
    return _Head(full, min(self._n, len(full)))


class _Head:
  def __init__(self, source, n: int):
    self._source, self._n = source, n

  def __len__(self) -> int:
    return self._n

  def __getitem__(self, index: int):
    if not 0 <= index < self._n:
      raise IndexError(index)
    return self._source[index]


def reported_metrics(run: Run, split: str) -> Optional[list]:
  """The names of the metrics ``run``'s evaluators report on ``split``, from one evaluation of
  the untrained state on the split's first clips (one evaluation batch, compiled as the run's
  first evaluation would be); None when that small evaluation fails (too few clips for an
  evaluator: the run's own evaluation reports the problem)."""
  import warnings

  c = run.config
  per_batch = c.get("eval_batch_size", c.batch_size) // max(c.data.segments_per_clip, 1)
  probe = dataclasses.replace(run, shards=_FirstClips(run.shards, max(per_batch, 8)))
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Metrics of a few clips of an untrained model.
      return sorted(evaluate(probe, run.create_state(jax.random.key(c.seed)), split))
  except Exception:  # pylint: disable=broad-except  (the check is advisory)
    return None


def _check_best_metric(run: Run, eval_split: str, resumed: Optional[storage.AnyPath]) -> None:
  """``UserError`` before anything is written when ``config.checkpoint.best_metric`` is not
  among the metrics the run's evaluators report (``reported_metrics``), listing them. A resume
  of the ``resumed`` workdir with its recorded metric is not checked again (its first start
  was; the loop's own check remains)."""
  metric = run.config.checkpoint.best_metric
  if resumed is not None:
    recorded = json.loads((resumed / "config.json").read_text())
    if recorded.get("checkpoint", {}).get("best_metric") == metric:
      return
  names = reported_metrics(run, eval_split)
  if names is not None and metric not in names:
    raise UserError(f"config.checkpoint.best_metric={metric!r} is not a metric of this run's "
                    f"evaluators ({', '.join(run.evals)}) on {eval_split!r}; choose one of "
                    f"{', '.join(names)}.")


def _progress_bar(config, start: int, is_main: bool):
  from tqdm.auto import tqdm

  return tqdm(total=config.num_train_steps, initial=start, unit="step", dynamic_ncols=True,
              disable=not (config.get("progress_bar", True) and is_main), desc="train")
