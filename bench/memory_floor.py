"""The train step's memory-traffic floor against the compiled step's bytes (issue 16, item 2).

**Floor** (``floor``): the model is traced abstractly (``jax.eval_shape``, no FLOPs, no memory)
in training mode under ``flax.linen.intercept_methods``, which sees the arguments and results of
every call of a layer module (``nn.Conv``, ``nn.BatchNorm``, ``nn.Dense``, ``nn.Dropout``); the
distinct arrays among them (by identity) are the activations of the layer list, with their real
shapes and dtypes (``bfloat16`` where the model's ``dtype`` is).
Elementwise functions between layers (ReLU, the SE scaling, a residual add) are taken as fused
into their neighbours; a max-pool output is counted as the input of the next conv. Two floors,
in bytes per example:

* ``layer``: every layer's input and output written once and read once forward, and its
  gradient written once and read once backward: ``4 x sum(bytes)``.
* ``fused``: the same, counting only the inputs and outputs of ``nn.Conv`` and ``nn.Dense`` --
  what a step must keep whole even with every conv + BN + ReLU + max-pool chain fused: a
  BatchNorm needs the batch statistics of the whole conv output before any of it is normalised.

Both add the parameter traffic per step amortised over the batch: ``param_passes`` passes over
the float32 parameters (default 7: read forward, gradient written, and the SGD-momentum update
reading parameters, gradients and momentum and writing parameters and momentum).

**Measured** (``compiled``): ``musicrep_jax.training.plan.plan`` builds the config's run over a
topology (``local`` = this host's CPU; ``v5e:2x2`` etc. through libtpu's ahead-of-time compiler)
and reads XLA's ``cost_analysis()["bytes accessed"]`` of the compiled train step per chip; divided
by the per-chip batch it is bytes per example, comparable with the floor (computed at that batch).

**VMEM prefetches** (``--vmem-prefetch off``): on TPU, XLA's memory-space assignment stages
tensors that fit (an 80 MB ``[16, 19683, 128]`` bfloat16 activation does on a v5e) from HBM into
the core's VMEM with asynchronous copies (``slice-start``/``slice-done``/``ConcatBitcast``,
``copy-start``/``copy-done`` into memory space ``S(1)``), and ``cost_analysis`` counts those
copies *and* the consumers' reads, now served from VMEM, as bytes accessed: the staging is
counted twice where a prefetch replaced an HBM read. ``off`` compiles with
``--xla_vf_vmem_memory_space_assignment=false`` in ``LIBTPU_INIT_ARGS`` (libtpu's flag for
v5e/v5p; checked on v5e: the fusions stay the same, the copies disappear): the bytes of the same
fusions with every tensor in HBM, the better estimate of the step's HBM traffic. It must be set
before libtpu is first loaded in the process, so it is a process-wide option here.

Example: ``python -m musicrep_jax.bench.memory_floor --configs samplecnn_mtat,resemul_mtat
--topologies local,v5e:2x2 --dtypes float32,bfloat16 --per-chip-batch 16 [--vmem-prefetch off]``
(one compile per row: ~15 s each on CPU, 1-2 min each for v5e, ReSE-2-multi 5-8 min on a
loaded 2-core host; ~1.2 GB of host RAM). Prints a markdown table and a JSON line. Numbers and
their reading: docs/benchmarks.md, "Memory floor of the train step".
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Passes over the float32 parameters per step: forward read, gradient write, and an optimizer
# with one slot (SGD momentum) reading parameters, gradients, momentum and writing two of them.
PARAM_PASSES = 7
MATMUL_MODULES = (nn.Conv, nn.Dense)
LAYER_MODULES = (nn.Conv, nn.Dense, nn.BatchNorm, nn.Dropout)
# libtpu flag that turns off the staging of HBM tensors in VMEM (module docstring).
NO_VMEM_PREFETCH = "--xla_vf_vmem_memory_space_assignment=false"


def set_vmem_prefetch(enabled: bool, environ=os.environ) -> None:
  """Add (``enabled=False``) or leave out libtpu's flag turning off VMEM memory-space
  assignment in ``LIBTPU_INIT_ARGS``, keeping the flags already there. Takes effect only if
  libtpu has not been loaded yet in this process."""
  flags = [f for f in environ.get("LIBTPU_INIT_ARGS", "").split() if f != NO_VMEM_PREFETCH]
  if not enabled:
    flags.append(NO_VMEM_PREFETCH)
  if flags:
    environ["LIBTPU_INIT_ARGS"] = " ".join(flags)
  else:
    environ.pop("LIBTPU_INIT_ARGS", None)


def activations(model: nn.Module, input_shape: Sequence[int]) -> list[dict]:
  """The distinct activations of one training forward pass of ``model`` on an input of
  ``input_shape`` (``[batch, time, 1]``), in order of first appearance: ``{"module": path,
  "kind": "input"|"output", "shape", "dtype", "bytes", "matmul": bool}``; ``matmul`` marks
  arrays that are an input or output of an ``nn.Conv``/``nn.Dense``. Abstract: no compute."""
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  variables = jax.eval_shape(lambda r, a: model.init(r, a, train=False), rngs, x)
  found: dict[int, dict] = {}
  alive = []  # keeps the traced arrays referenced so that their ids stay unique

  def record(leaves, module, kind, matmul):
    for leaf in leaves:
      if not isinstance(leaf, jax.Array):
        continue
      alive.append(leaf)
      entry = found.get(id(leaf))
      if entry is None:
        found[id(leaf)] = entry = {
            "module": "/".join(module.path) or type(module).__name__, "kind": kind,
            "shape": tuple(leaf.shape), "dtype": str(leaf.dtype),
            "bytes": int(np.prod(leaf.shape, dtype=np.int64)) * leaf.dtype.itemsize,
            "matmul": False}
      entry["matmul"] |= matmul

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and isinstance(context.module, LAYER_MODULES):
      matmul = isinstance(context.module, MATMUL_MODULES)
      record(jax.tree.leaves((args, kwargs)), context.module, "input", matmul)
      record(jax.tree.leaves(out), context.module, "output", matmul)
    return out

  def forward(v, a):
    with nn.intercept_methods(interceptor):
      return model.apply(v, a, train=True, rngs={"dropout": rngs["dropout"]},
                         mutable=["batch_stats"])

  jax.eval_shape(forward, variables, x)
  return list(found.values())


def param_bytes(model: nn.Module, input_shape: Sequence[int]) -> int:
  """Bytes of the model's trainable parameters (as stored, float32)."""
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  variables = jax.eval_shape(lambda r, a: model.init(r, a, train=False), jax.random.key(0), x)
  return sum(int(np.prod(p.shape, dtype=np.int64)) * p.dtype.itemsize
             for p in jax.tree.leaves(variables["params"]))


def floor(model: nn.Module, batch: int, param_passes: int = PARAM_PASSES) -> dict:
  """Floors in bytes per example at ``batch`` (module docstring): ``layer`` and ``fused``
  (activations, forward + backward, plus amortised parameters), their parts, and counts.
  The activations are traced at batch 2 (their bytes scale with the batch; 2 keeps a
  batch axis distinct from the unit axes) and divided by 2."""
  shape = (2, model.input_length, 1)
  acts = activations(model, shape)
  layer = sum(a["bytes"] for a in acts) / 2
  fused = sum(a["bytes"] for a in acts if a["matmul"]) / 2
  params = param_passes * param_bytes(model, shape) / batch
  return {"layer": 4 * layer + params, "fused": 4 * fused + params,
          "layer_activation_bytes": layer, "fused_activation_bytes": fused,
          "param_bytes_per_example": params, "activations": len(acts),
          "matmul_activations": sum(a["matmul"] for a in acts), "batch": batch,
          "param_passes": param_passes}


def load(config_name: str, overrides: Sequence[str] = (), model_kwargs: Optional[dict] = None):
  """The config, overridden, with ``model_kwargs`` added to ``config.model.kwargs`` (fields a
  config does not list, e.g. ``pool_impl`` where a config omits it)."""
  from musicrep_jax import config_loading

  config = config_loading.load_config(config_name, overrides,
                                      runner=config_loading.DEFAULT_RUNNER)
  with config.unlocked():
    config.model.kwargs.update(model_kwargs or {})
  return config


def config_model(config_name: str, dtype: str, overrides: Sequence[str] = (),
                 model_kwargs: Optional[dict] = None) -> nn.Module:
  """The Flax model of a packaged config (its ``model_kwargs``) computing in ``dtype``."""
  importlib.import_module("musicrep_jax.models")  # registers the models
  from musicrep_jax import config_loading
  from musicrep_jax.registry import MODELS

  config = load(config_name, overrides, model_kwargs)
  kwargs = config_loading.constructor_kwargs(config.model.kwargs)
  return MODELS.get(config.model.name)(**kwargs, dtype=jnp.dtype(dtype))


def compiled(config_name: str, topology: str, dtype: str, per_chip_batch: int,
             overrides: Sequence[str] = (), model_kwargs: Optional[dict] = None) -> dict:
  """Bytes and FLOPs per example of the config's compiled train step on ``topology``
  (``musicrep plan``'s compile; per chip, divided by the per-chip batch)."""
  from musicrep_jax.training import plan

  topo = plan.topology(topology)
  config = load(config_name, [*overrides, f"--config.compute_dtype={dtype}",
                              f"--config.batch_size={per_chip_batch * len(topo.devices)}"],
                model_kwargs)
  result = plan.plan(config, topology_name=topology, config_name=config_name)
  return {"bytes_per_example": result["bytes_accessed_per_chip"] / result["per_chip_batch"],
          "flops_per_example": result["flops_per_chip"] / result["per_chip_batch"],
          "device_kind": result["device_kind"], "compile_train_s": result["compile_train_s"]}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--configs", default="samplecnn_mtat,resemul_mtat")
  parser.add_argument("--topologies", default="local", help="comma list: local, v5e:2x2, ...")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--per-chip-batch", type=int, default=16)
  parser.add_argument("--floor-only", action="store_true", help="no compile, floors only")
  parser.add_argument("--override", action="append", default=[],
                      help="--config.k=v passed to every config")
  parser.add_argument("--model", action="append", default=[], metavar="FIELD=VALUE",
                      help="a model field set on every config, e.g. pool_impl='window'")
  parser.add_argument("--vmem-prefetch", choices=("on", "off"), default="on",
                      help="TPU: 'off' compiles without XLA's HBM->VMEM staging copies, which "
                           "cost_analysis counts on top of the reads they serve")
  args = parser.parse_args(argv)
  args.model_kwargs = {}
  for item in args.model:
    key, _, value = item.partition("=")
    try:  # a Python literal (True, 3, (16, 32)), else the text itself (window)
      args.model_kwargs[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      args.model_kwargs[key] = value
  return args


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
  args = parse_args(argv)
  if args.vmem_prefetch == "off":  # before anything loads libtpu
    set_vmem_prefetch(False)
  rows = []
  print("| config | dtype | topology | VMEM prefetch | floor layer MB/ex | floor fused MB/ex "
        "| compiled MB/ex | compiled/layer | compiled/fused | GFLOP/ex |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for name in args.configs.split(","):
    for dtype in args.dtypes.split(","):
      f = floor(config_model(name, dtype, args.override, args.model_kwargs), args.per_chip_batch)
      for topology in ([] if args.floor_only else args.topologies.split(",")) or ["-"]:
        c = (compiled(name, topology, dtype, args.per_chip_batch, args.override,
                      args.model_kwargs)
             if topology != "-" else {})
        row = {"config": name, "dtype": dtype, "topology": topology,
               "vmem_prefetch": args.vmem_prefetch, "model_kwargs": args.model_kwargs,
               "floor": f, **c}
        rows.append(row)
        b = c.get("bytes_per_example")
        cell = lambda v, fmt: "-" if v is None else fmt.format(v)
        print(f"| {name} | {dtype} | {topology} | {args.vmem_prefetch} | "
              f"{f['layer'] / 1e6:.1f} | "
              f"{f['fused'] / 1e6:.1f} | {cell(b and b / 1e6, '{:.1f}')} | "
              f"{cell(b and b / f['layer'], '{:.2f}')} | {cell(b and b / f['fused'], '{:.2f}')} | "
              f"{cell(c.get('flops_per_example') and c['flops_per_example'] / 1e9, '{:.2f}')} |",
              flush=True)
  print(json.dumps(rows))
  return rows


if __name__ == "__main__":
  main()
