"""Times the real jitted SampleCNN train step (JAX/XLA) against a PyTorch eager reference;
with ``--block rese2`` (any paper-5 block), the multi-level ReSE model against its mirror.

JAX side: ``musicrep_jax.training.step.make_train_step`` with ``TaggingTask`` and the optimizer of
``configs/samplecnn_mtat.py`` on a one-device mesh, random audio and tags. Reports the compile time
(first call), steps/s and samples/s without compilation (median, min and max over ``--repeats``
timed runs of ``--steps`` steps each after ``--warmup`` steps, each ended by
``jax.block_until_ready``), the number of compilations of the step over the whole run (must be 1),
FLOPs per step from XLA's cost analysis of the compiled step and the achieved FLOP/s as a fraction
of a float32 SGEMM measured in the same process (the best of NumPy and XLA).

PyTorch side (``bench.torch_sample_cnn``, NCW): the same model, SGD Nesterov, BCE, timed the
same way twice, eager and under ``torch.compile`` (inductor by default; ``--compile-backend``),
with ``torch.set_num_threads`` equal to the threads XLA's CPU backend uses (the CPUs this process
may run on, ``os.sched_getaffinity``; ``--threads N`` pins the process to N CPUs before JAX
starts so both frameworks get N). Where ``torch.compile`` cannot run (no C++ compiler for
inductor's CPU code, or any compile error) the bench prints one line saying why and records
"n/a". Both ratios are reported: JAX over eager and JAX over compiled.

``--dtype bfloat16``: the JAX model computes in bfloat16 (float32 parameters, statistics and
loss; training/precision.py) and the PyTorch step runs under ``torch.autocast(bfloat16)``. On a
GPU (JAX's default backend, PyTorch on ``cuda``) the row also gives the MFU: achieved FLOP/s over
the chip's published peak for that dtype (``training/chips.py``; float32 = TF32 tensor cores).
Prints a markdown row and a JSON line; ``--write-doc`` updates this configuration's section of
``docs/benchmarks.md``; ``bench/accelerator_check.sh`` runs it on a GPU.

Example: ``musicrep bench train-step`` (the paper's 3^9 model at batch 23);
``musicrep bench train-step --n 5 --channels 16,16,16,32,32,64,64 --batch 16``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import shlex
import statistics
import sys
import time
from typing import Optional, Sequence

from musicrep_jax.bench.report import (
    DOC,
    REPO,
    load_line,
    machine,
    pin_threads,
    replace_section,
    summarize,
    time_repeats,
)

COLUMNS = ("config", "dtype", "batch", "threads", "compile s", "JAX steps/s", "JAX samples/s",
           "torch eager steps/s", "JAX/eager", "torch.compile steps/s", "JAX/compiled",
           "GFLOP/step (XLA)", "achieved GFLOP/s", "SGEMM GFLOP/s", "% of SGEMM",
           "MFU % (chip peak)", "step memory GiB (XLA)", "peak RSS GiB", "compilations")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(
      prog="musicrep bench train-step",
      description="JAX train step vs PyTorch eager SampleCNN: compile time, steps/s, FLOP/s.")
  p.add_argument("--m", type=int, default=3, help="filter/pool size m (default 3)")
  p.add_argument("--n", type=int, default=9, help="number of pooled blocks n (default 9)")
  p.add_argument("--channels", type=str, default=None,
                 help="comma-separated n + 2 channel counts (default: the paper's)")
  p.add_argument("--num-tags", type=int, default=50)
  p.add_argument("--block", default=None,
                 help="a paper-5 block (basic, se, res1, res2, rese1, rese2): time resemul "
                 "(SampleCNNBlocks, multi-level) against its PyTorch mirror instead of SampleCNN")
  p.add_argument("--pool-impl", default="auto", choices=("auto", "reshape", "window"),
                 help="max-pool formulation (models/sample_cnn.max_pool_time; default auto: "
                 "window on TPU, reshape elsewhere)")
  p.add_argument("--batch", type=int, default=23, help="global batch size (default 23)")
  p.add_argument("--steps", type=int, default=3, help="timed steps per repeat (default 3)")
  p.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
  p.add_argument("--warmup", type=int, default=1, help="untimed steps after compile (default 1)")
  p.add_argument("--threads", type=int, default=None,
                 help="pin the process to this many CPUs (XLA and torch); default: all allowed")
  p.add_argument("--gemm-size", type=int, default=4096,
                 help="n of the n x n float32 matmul measuring the SGEMM peak (default 4096)")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                 help="compute dtype: JAX model dtype and torch.autocast (default float32)")
  p.add_argument("--no-torch", action="store_true", help="time the JAX step only")
  p.add_argument("--no-compile", action="store_true",
                 help="skip the torch.compile timing (PyTorch eager only)")
  p.add_argument("--compile-backend", default="inductor",
                 help="torch.compile backend (default inductor; aot_eager needs no compiler)")
  p.add_argument("--write-doc", action="store_true",
                 help=f"update this configuration's section of {DOC.relative_to(REPO)}")
  p.add_argument("--doc", type=pathlib.Path, default=DOC, help=argparse.SUPPRESS)
  return p.parse_args(argv)


def parse_channels(text: Optional[str]) -> Optional[tuple[int, ...]]:
  return tuple(int(c) for c in text.split(",")) if text else None








def analytic_train_flops(batch: int, m: int, n: int, first_filter: Optional[int],
                         channels: Sequence[int], num_tags: int) -> float:
  """Convolution/dense FLOPs of one training step, ~3x forward (forward, input and weight grads).

  A cross-check of XLA's count; ignores BatchNorm, pooling, the loss and the optimizer.
  """
  first = first_filter or m
  length, c_in, macs = m**n, 1, 0
  macs += length * first * c_in * channels[0]
  c_in = channels[0]
  for i in range(n):
    macs += length * m * c_in * channels[i + 1]
    c_in, length = channels[i + 1], length // m
  macs += length * c_in * channels[-1] + channels[-1] * num_tags
  return 3.0 * 2.0 * batch * macs


def sgemm_gflops(size: int, repeats: int = 3) -> dict:
  """Best float32 ``size x size`` matmul GFLOP/s of NumPy and of XLA (median of repeats each)."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  flops = 2.0 * size**3
  a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
  b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
  a @ b  # warm-up
  numpy_rates = time_repeats(lambda k: [a @ b for _ in range(k)], 1, repeats)
  ja, jb = jnp.asarray(a), jnp.asarray(b)
  matmul = jax.jit(jnp.matmul)
  jax.block_until_ready(matmul(ja, jb))
  xla_rates = time_repeats(lambda k: jax.block_until_ready([matmul(ja, jb) for _ in range(k)]),
                           1, repeats)
  result = {"size": size, "numpy_gflops": statistics.median(numpy_rates) * flops / 1e9,
            "xla_gflops": statistics.median(xla_rates) * flops / 1e9}
  result["peak_gflops"] = max(result["numpy_gflops"], result["xla_gflops"])
  return result


class CompileCounter:
  """Counts XLA backend compilations and sums tracing + lowering + compile seconds
  (``jax.monitoring`` events) while ``active``."""

  COMPILE = "/jax/core/compile/backend_compile_duration"
  STAGES = (COMPILE, "/jax/core/compile/jaxpr_trace_duration",
            "/jax/core/compile/jaxpr_to_mlir_module_duration")

  def __init__(self):
    import jax
    self.count, self.seconds, self.active = 0, 0.0, False
    jax.monitoring.register_event_duration_secs_listener(self._listen)

  def _listen(self, name, duration, **kwargs):
    del kwargs
    if not self.active:
      return
    if name in self.STAGES:
      self.seconds += duration
    if name == self.COMPILE:
      self.count += 1


def bench_jax(args, channels) -> dict:
  """Compile time, timed steps, compilations and XLA FLOPs of the real jitted train step."""
  import jax
  import jax.numpy as jnp
  import ml_collections
  import numpy as np

  from musicrep_jax.config_loading import load_config_file, resolve_config_spec
  from musicrep_jax.training import optimizers, mesh as sharding, step as train_step
  from musicrep_jax.tasks.tagging import TaggingTask

  config = load_config_file(resolve_config_spec("samplecnn_mtat"))
  model = flax_model(args, channels).clone(dtype=jnp.dtype(args.dtype))
  task = TaggingTask()
  tx = optimizers.make_optimizer(ml_collections.ConfigDict(config.optimizer),
                                 config.num_train_steps)
  mesh = sharding.make_mesh()
  state = train_step.make_create_state(model, tx, model.input_length, mesh)(jax.random.key(0))
  # Placed replicated on the mesh as the trainer does; an unplaced one recompiles the step once.
  acc = jax.device_put(train_step.LogAccumulator.zeros(task.metric_names + ("grad_norm",)),
                       sharding.replicated(mesh))
  rng = np.random.default_rng(0)
  batch = jax.device_put(
      {"audio": rng.standard_normal((args.batch, model.input_length, 1), dtype=np.float32),
       "tags": (rng.random((args.batch, args.num_tags)) < 0.1).astype(np.float32)},
      sharding.batch_sharding(mesh))
  step = train_step.make_train_step(model, task, tx, mesh, seed=0)
  counter = CompileCounter()
  counter.active = True
  start = time.perf_counter()
  state, acc = jax.block_until_ready(step(state, acc, batch))
  first_call_s = time.perf_counter() - start

  def run_steps(k):
    nonlocal state, acc
    for _ in range(k):
      state, acc = step(state, acc, batch)
    jax.block_until_ready((state, acc))

  run_steps(args.warmup)
  rates = time_repeats(run_steps, args.steps, args.repeats)
  counter.active = False
  loss = float(acc.sums["loss"] / acc.count)
  compiled = step.lower(state, acc, batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  steps_s = summarize(rates)
  memory = compiled.memory_analysis()
  stats = jax.devices()[0].memory_stats() or {}
  return {"step_memory_bytes": (float("nan") if memory is None else
                                memory.argument_size_in_bytes + memory.output_size_in_bytes +
                                memory.temp_size_in_bytes - memory.alias_size_in_bytes),
          "device_peak_bytes": stats.get("peak_bytes_in_use"),
          "peak_rss_bytes": peak_rss_bytes(),
          "compile_s": counter.seconds, "first_call_s": first_call_s,
          "steps_per_s": steps_s, "samples_per_s": args.batch * steps_s["median"],
          "compilations": counter.count, "jit_cache_size": step._cache_size(),
          "xla_flops_per_step": float(cost.get("flops", float("nan"))),
          "mean_loss": loss, "devices": len(jax.devices()), "platform": jax.default_backend(),
          "device_kind": jax.devices()[0].device_kind}


def peak_rss_bytes() -> int:
  """This process's peak resident set size so far (Linux reports KiB)."""
  import resource

  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def torch_device(platform: str) -> str:
  """``cuda`` when JAX runs on a GPU and PyTorch sees one, else ``cpu``: both on one device."""
  import torch

  return "cuda" if platform == "gpu" and torch.cuda.is_available() else "cpu"


def compile_unavailable(backend: str, device: str) -> Optional[str]:
  """Why ``torch.compile(backend=...)`` cannot run here (one line), or None."""
  import shutil

  if backend == "inductor" and device == "cpu":
    from torch._inductor import config as inductor_config

    cxx = inductor_config.cpp.cxx[-1] if inductor_config.cpp.cxx else "g++"
    if shutil.which(cxx) is None:
      return f"no C++ compiler ({cxx}) for inductor's CPU code"
  return None


def bench_torch(args, channels, threads: int, platform: str = "cpu",
                compiled: bool = False) -> dict:
  """Steps/s of the PyTorch reference on ``threads`` intra-op threads, eager or under
  ``torch.compile(backend=args.compile_backend)``; on the GPU when JAX runs on one. A compiled
  run that cannot compile returns ``{"error": one line}``."""
  import torch

  from musicrep_jax.bench import torch_sample_cnn

  torch.set_num_threads(threads)
  torch.manual_seed(0)
  device = torch_device(platform)
  if compiled:
    reason = compile_unavailable(args.compile_backend, device)
    if reason:
      return {"error": reason}
  model = torch_model(args, channels).to(device)
  forward = torch.compile(model, backend=args.compile_backend) if compiled else None
  step = torch_sample_cnn.make_train_step(
      model, torch_sample_cnn.make_optimizer(model),
      autocast_dtype=torch.bfloat16 if args.dtype == "bfloat16" else None, forward=forward)
  gen = torch.Generator().manual_seed(0)
  audio = torch.randn(args.batch, 1, model.input_length, generator=gen).to(device)
  tags = (torch.rand(args.batch, args.num_tags, generator=gen) < 0.1).float().to(device)
  start = time.perf_counter()
  try:
    step(audio, tags).item()
  except Exception as error:  # noqa: BLE001  (any compiler failure is reported, not raised)
    if not compiled:
      raise
    return {"error": f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"}
  first_call_s = time.perf_counter() - start

  def run_steps(k):
    loss = None
    for _ in range(k):
      loss = step(audio, tags)
    if loss is not None:
      loss.item()  # waits for the step to finish

  run_steps(args.warmup)
  steps_s = summarize(time_repeats(run_steps, args.steps, args.repeats))
  return {"first_call_s": first_call_s, "steps_per_s": steps_s,
          "samples_per_s": args.batch * steps_s["median"], "threads": torch.get_num_threads(),
          "params": torch_sample_cnn.num_params(model), "device": device,
          "compile_backend": args.compile_backend if compiled else None}




def model_fields(args, channels) -> dict:
  """Constructor fields shared by the Flax model and its PyTorch mirror."""
  fields = dict(num_outputs=args.num_tags, m=args.m, n=args.n, channels=channels,
                pool_impl=args.pool_impl)
  if args.block:
    fields.update(block=args.block, multi_level=True)
  return fields


def flax_model(args, channels):
  """SampleCNN, or ``SampleCNNBlocks`` (resemul) with ``--block``."""
  from musicrep_jax.models.resemul import SampleCNNBlocks
  from musicrep_jax.models.sample_cnn import SampleCNN

  return (SampleCNNBlocks if args.block else SampleCNN)(**model_fields(args, channels))


def torch_model(args, channels):
  """The PyTorch mirror of :func:`flax_model` (``musicrep_jax.serving.export.torch_mirror``)."""
  from musicrep_jax.serving.export.torch_mirror import build_mirror

  return build_mirror("resemul" if args.block else "sample_cnn",
                      model_fields(args, channels)).train()


def config_key(args, channels) -> str:
  """Short name of the benchmarked configuration, e.g. ``3^9 paper`` or ``ReSE-2 3^9 paper``."""
  width = "paper" if channels is None else "ch " + "-".join(map(str, channels))
  prefix = f"{args.block} multi " if args.block else ""
  pool = "" if args.pool_impl == "auto" else f", {args.pool_impl} pool"
  return f"{prefix}{args.m}^{args.n} {width}{pool}"


def _timed(result: Optional[dict]) -> bool:
  return bool(result) and "error" not in result


def markdown_row(r: dict) -> str:
  jax_r, torch_r, compiled_r, gemm = r["jax"], r.get("torch"), r.get("torch_compiled"), r["sgemm"]
  fmt = lambda s: f"{s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})"
  ratio = lambda x: "-" if x is None else f"{x:.2f}"
  cells = [r["config"], r.get("dtype", "float32"), r["batch"], r["threads"],
           f"{jax_r['compile_s']:.1f}", fmt(jax_r["steps_per_s"]),
           f"{jax_r['samples_per_s']:.3g}",
           fmt(torch_r["steps_per_s"]) if torch_r else "-", ratio(r["jax_over_torch"]),
           fmt(compiled_r["steps_per_s"]) if _timed(compiled_r) else
           ("n/a" if compiled_r else "-"), ratio(r.get("jax_over_torch_compiled")),
           f"{jax_r['xla_flops_per_step'] / 1e9:.3g}", f"{r['achieved_gflops']:.3g}",
           f"{gemm['peak_gflops']:.1f}", f"{100 * r['fraction_of_sgemm']:.1f}",
           "-" if r.get("mfu") is None else f"{100 * r['mfu']:.1f}",
           f"{jax_r['step_memory_bytes'] / 2 ** 30:.2f}",
           f"{jax_r['peak_rss_bytes'] / 2 ** 30:.2f}", jax_r["compilations"]]
  return "| " + " | ".join(str(c) for c in cells) + " |"


def table_header() -> str:
  return "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)


def doc_section(r: dict) -> str:
  m = r["machine"]
  return "\n".join([
      f"### {r['config']}, batch {r['batch']}",
      "",
      f"- Date: {r['date']}",
      f"- Machine: {m['cpu']}, {m['cpus_online']} CPUs online, {r['threads']} used "
      f"(XLA CPU threads = torch.set_num_threads = {r['threads']}).",
      load_line(r["load_average"]),
      f"- Versions: Python {m['python']}, jax {m['jax']}, jaxlib {m['jaxlib']}, torch {m['torch']}",
      device_line(r),
      f"- Command: `{r['command']}`",
      f"- Timing: compile = JAX trace + lowering + XLA compile of the step (first call "
      f"{r['jax']['first_call_s']:.1f} s in all); steps/s = median (min-max) of "
      f"{r['repeats']} repeats of {r['steps']} steps after {r['warmup']} warm-up step(s); "
      f"SGEMM = {r['sgemm']['size']}^3 float32 matmul, NumPy {r['sgemm']['numpy_gflops']:.1f} / "
      f"XLA {r['sgemm']['xla_gflops']:.1f} GFLOP/s; analytic conv FLOPs "
      f"{r['analytic_flops_per_step'] / 1e9:.3g} GFLOP/step. Memory: XLA's compiled step "
      "(arguments + outputs + temporaries - aliased buffers); peak RSS of the process after the "
      "JAX runs, before PyTorch runs"
      + (f"; device peak {r['jax']['device_peak_bytes'] / 2 ** 30:.2f} GiB."
         if r["jax"].get("device_peak_bytes") else "."),
      "",
      table_header(),
      markdown_row(r),
  ])


def device_line(r: dict) -> str:
  """Where both frameworks ran, the compute dtype and how torch.compile fared."""
  compiled = r.get("torch_compiled")
  note = ("not timed" if not compiled else f"n/a: {compiled['error']}" if "error" in compiled
          else f"backend {compiled['compile_backend']}, first call {compiled['first_call_s']:.1f} s")
  torch_device_name = (r.get("torch") or {}).get("device", "-")
  peak = r.get("chip_peak_tflops")
  return (f"- Device: JAX {r['jax']['platform']} ({r['jax']['device_kind']}), PyTorch "
          f"{torch_device_name}; compute dtype {r.get('dtype', 'float32')} (PyTorch: "
          f"{'torch.autocast bfloat16' if r.get('dtype') == 'bfloat16' else 'float32'}); "
          f"torch.compile: {note}"
          + (f"; chip peak {peak:.1f} TFLOP/s ({r['chip']})." if peak else "."))


def update_doc(doc: pathlib.Path, r: dict) -> None:
  """Replaces this configuration's section of ``doc`` (or appends it) with ``r``."""
  replace_section(doc, r["key"], doc_section(r))


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args = parse_args(argv)
  if args.steps < 1 or args.repeats < 1 or args.warmup < 0:
    raise SystemExit("--steps and --repeats must be >= 1, --warmup >= 0")
  threads = pin_threads(args.threads)  # before JAX creates its thread pool
  load_average = os.getloadavg()[0]
  channels = parse_channels(args.channels)
  jax_r = bench_jax(args, channels)
  platform = jax_r["platform"]
  torch_r = None if args.no_torch else bench_torch(args, channels, threads, platform)
  compiled_r = None
  if not (args.no_torch or args.no_compile):
    compiled_r = bench_torch(args, channels, threads, platform, compiled=True)
    if "error" in compiled_r:
      print(f"torch.compile ({args.compile_backend}) cannot run here, recorded as n/a: "
            f"{compiled_r['error']}")
  gemm = sgemm_gflops(args.gemm_size)
  from musicrep_jax.training.chips import chip_spec
  spec = chip_spec(jax_r["device_kind"]) if platform != "cpu" else None
  from musicrep_jax.models.sample_cnn import paper_channels
  achieved = jax_r["xla_flops_per_step"] * jax_r["steps_per_s"]["median"] / 1e9
  key_channels = channels or paper_channels(args.n)
  rate = lambda result: result["steps_per_s"]["median"]
  r = {"config": config_key(args, channels), "dtype": args.dtype, "batch": args.batch,
       "threads": threads, "load_average": load_average, "torch_compiled": compiled_r,
       "jax_over_torch_compiled": (rate(jax_r) / rate(compiled_r) if _timed(compiled_r)
                                   else None),
       "chip": spec.name if spec else None,
       "chip_peak_tflops": spec.peak(args.dtype) / 1e12 if spec else None,
       "mfu": achieved * 1e9 / spec.peak(args.dtype) if spec else None,
       "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup,
       "jax": jax_r, "torch": torch_r, "sgemm": gemm, "achieved_gflops": achieved,
       "fraction_of_sgemm": achieved / gemm["peak_gflops"],
       "analytic_flops_per_step": (float("nan") if args.block else analytic_train_flops(
           args.batch, args.m, args.n, None, key_channels, args.num_tags)),
       "jax_over_torch": (jax_r["steps_per_s"]["median"] / torch_r["steps_per_s"]["median"]
                          if torch_r else None),
       "machine": machine(), "date": datetime.date.today().isoformat(),
       "command": "musicrep bench train-step " + shlex.join(argv if argv is not None
                                                                   else sys.argv[1:])}
  # float32 CPU keys are the ones older sections of docs/benchmarks.md use.
  suffix = ("" if args.dtype == "float32" else " bf16") + (
      "" if platform == "cpu" else f" {jax_r['device_kind']}")
  r["key"] = re.sub(r"[^A-Za-z0-9]+", "-", f"{r['config']} b{args.batch} t{threads}{suffix}")
  print(table_header())
  print(markdown_row(r))
  print(json.dumps(r, sort_keys=True))
  if args.write_doc:
    update_doc(args.doc, r)
  return r


if __name__ == "__main__":
  main()
