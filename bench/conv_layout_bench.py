"""Times one SampleCNN convolution layer (forward, input gradient and filter gradient) in the
formulations that matter on a GPU (issue 16): 1-D convolution vs a 2-D convolution of a height-1
image, channels-last (NWC / NHWC: Flax's layout, the models') vs channels-first (NCW / NCHW:
PyTorch's and cuDNN's native one), in JAX and PyTorch, float32 or bfloat16, on JAX's default
device (PyTorch on ``cuda`` when JAX runs on a GPU). JAX's 1-D convolutions have been reported
well behind PyTorch's on GPU (jax#23783); this says which formulation to use.

Each formulation is one jitted (JAX) or eager (PyTorch) call computing ``y = conv(x, w)`` and the
vector-Jacobian products ``dx, dw`` for a fixed cotangent, 'same' padding, stride 1; timed as in
``train_step_bench`` (``report.time_repeats``: median, min and max of ``--repeats`` runs of
``--steps`` calls, each run ended by a device sync). TFLOP/s count 3 x the forward's
``2 * batch * length * kernel * c_in * c_out``; MFU is against the chip's published peak
(``training/chips.py``) on a GPU or TPU.

Example: ``musicrep bench conv-layout --batch 23 --layers 19683x128x128,243x256x256``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import shlex
import sys
from typing import Optional, Sequence

from musicrep_jax.bench.report import (DOC, REPO, machine, machine_line, replace_section,
                                       section_key, summarize, time_repeats)

JAX_FORMULATIONS = {  # name: (dimension numbers, x shape, w shape) from (B, L, Ci, Co, K)
    "JAX 1-D NWC": (("NWC", "WIO", "NWC"), lambda b, l, ci: (b, l, ci),
                    lambda k, ci, co: (k, ci, co)),
    "JAX 1-D NCW": (("NCW", "OIW", "NCW"), lambda b, l, ci: (b, ci, l),
                    lambda k, ci, co: (co, ci, k)),
    "JAX 2-D NHWC (H=1)": (("NHWC", "HWIO", "NHWC"), lambda b, l, ci: (b, 1, l, ci),
                           lambda k, ci, co: (1, k, ci, co)),
    "JAX 2-D NCHW (H=1)": (("NCHW", "OIHW", "NCHW"), lambda b, l, ci: (b, ci, 1, l),
                           lambda k, ci, co: (co, ci, 1, k)),
}
TORCH_FORMULATIONS = ("torch Conv1d NCW", "torch Conv2d NCHW (H=1)",
                      "torch Conv2d channels_last (H=1)")
COLUMNS = ("layer (length x c_in -> c_out, k)", "formulation", "dtype", "batch", "ms / call",
           "TFLOP/s", "MFU % (chip peak)")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="musicrep bench conv-layout",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--layers", default="19683x128x128,243x256x256",
                 help="comma-separated LENGTHxC_INxC_OUT layers (default: SampleCNN 3^9's first "
                 "block and a late one)")
  p.add_argument("--kernel", type=int, default=3, help="filter length (default 3)")
  p.add_argument("--batch", type=int, default=23, help="batch size (default 23)")
  p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated compute dtypes")
  p.add_argument("--steps", type=int, default=10, help="calls per timed run (default 10)")
  p.add_argument("--repeats", type=int, default=3, help="timed runs (default 3)")
  p.add_argument("--no-torch", action="store_true", help="JAX formulations only")
  p.add_argument("--write-doc", action="store_true",
                 help=f"update this device's section of {DOC.relative_to(REPO)}")
  p.add_argument("--doc", type=pathlib.Path, default=DOC, help=argparse.SUPPRESS)
  return p.parse_args(argv)


def parse_layers(text: str) -> list[tuple[int, int, int]]:
  return [tuple(int(v) for v in layer.split("x")) for layer in text.split(",") if layer]


def time_jax(name: str, batch: int, length: int, c_in: int, c_out: int, kernel: int,
             dtype: str, steps: int, repeats: int) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  dims, x_shape, w_shape = JAX_FORMULATIONS[name]
  rng = np.random.default_rng(0)  # numpy: a jax.random draw would compile once per shape
  draw = lambda shape, scale=1.0: jnp.asarray(
      scale * rng.standard_normal(shape, dtype=np.float32), jnp.dtype(dtype))
  x, w = draw(x_shape(batch, length, c_in)), draw(w_shape(kernel, c_in, c_out), 0.05)
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1,) * (len(dims[0]) - 2), "SAME",
                                                   dimension_numbers=dims)
  g = draw(jax.eval_shape(conv, x, w).shape)

  @jax.jit
  def call(x, w, g):
    y, vjp = jax.vjp(conv, x, w)
    return (y, *vjp(g))

  jax.block_until_ready(call(x, w, g))

  def run(k):
    jax.block_until_ready([call(x, w, g) for _ in range(k)])

  return summarize(time_repeats(run, steps, repeats))


def time_torch(name: str, batch: int, length: int, c_in: int, c_out: int, kernel: int,
               dtype: str, steps: int, repeats: int, device: str) -> dict:
  import torch

  dt = getattr(torch, dtype)
  gen = torch.Generator().manual_seed(0)
  two_d = "Conv2d" in name
  conv = (torch.nn.Conv2d(c_in, c_out, (1, kernel), padding="same", bias=False) if two_d else
          torch.nn.Conv1d(c_in, c_out, kernel, padding="same", bias=False)).to(device, dt)
  shape = (batch, c_in, 1, length) if two_d else (batch, c_in, length)
  x = torch.randn(*shape, generator=gen).to(device, dt)
  if "channels_last" in name:
    conv = conv.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  x.requires_grad_(True)
  g = torch.randn(*conv(x).shape, generator=gen).to(device, dt)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def run(k):
    for _ in range(k):
      x.grad = None
      conv.weight.grad = None
      conv(x).backward(g)
    sync()

  run(1)
  return summarize(time_repeats(run, steps, repeats))


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args = parse_args(argv)
  import jax

  from musicrep_jax.bench.train_step_bench import torch_device
  from musicrep_jax.training.chips import chip_spec

  platform, kind = jax.default_backend(), jax.devices()[0].device_kind
  spec = chip_spec(kind) if platform != "cpu" else None
  device = None if args.no_torch else torch_device(platform)
  rows = []
  for length, c_in, c_out in parse_layers(args.layers):
    flops = 3 * 2.0 * args.batch * length * args.kernel * c_in * c_out
    for dtype in args.dtypes.split(","):
      names = list(JAX_FORMULATIONS) + ([] if args.no_torch else list(TORCH_FORMULATIONS))
      for name in names:
        common = (args.batch, length, c_in, c_out, args.kernel, dtype, args.steps, args.repeats)
        rate = (time_jax(name, *common) if name.startswith("JAX")
                else time_torch(name, *common, device))
        tflops = flops * rate["median"] / 1e12
        rows.append({"layer": f"{length} x {c_in} -> {c_out}, k{args.kernel}", "formulation": name,
                     "dtype": dtype, "batch": args.batch, "ms": 1e3 / rate["median"],
                     "calls_per_s": rate, "tflops": tflops,
                     "mfu": tflops * 1e12 / spec.peak(dtype) if spec else None})
  result = {"rows": rows, "platform": platform, "device_kind": kind,
            "torch_device": device, "machine": machine(), "date": datetime.date.today().isoformat(),
            "command": "musicrep bench conv-layout " + shlex.join(
                argv if argv is not None else sys.argv[1:])}
  print(markdown_table(rows))
  print(json.dumps(result, sort_keys=True))
  if args.write_doc:
    replace_section(args.doc, section_key(f"conv-layout {kind}"), doc_section(result))
  return result


def markdown_table(rows: list[dict]) -> str:
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  for r in rows:
    mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}"
    lines.append(f"| {r['layer']} | {r['formulation']} | {r['dtype']} | {r['batch']} | "
                 f"{r['ms']:.3g} | {r['tflops']:.3g} | {mfu} |")
  return "\n".join(lines)


def doc_section(result: dict) -> str:
  return "\n".join([
      f"### Convolution formulations on {result['device_kind']}", "",
      f"- Date: {result['date']}",
      machine_line(result["machine"], 0).replace(", 0 used", ""),
      f"- Device: JAX {result['platform']} ({result['device_kind']}), PyTorch "
      f"{result['torch_device'] or '-'}",
      f"- Command: `{result['command']}`",
      "- One call = forward + input gradient + filter gradient, 'same' padding, no bias.", "",
      markdown_table(result["rows"])])


if __name__ == "__main__":
  main()
