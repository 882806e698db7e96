"""The benchmarks of ``bench/accelerator_check.sh`` (issue 16), run in one process and written
as one marked section of ``docs/benchmarks.md`` named after the device.

Runs ``train_step_bench`` for SampleCNN 3^9 and ReSE-2-multi 3^9 in float32 and bfloat16 (JAX
against the PyTorch mirror, eager and ``torch.compile``, MFU against the chip's published peak)
the SampleCNN step with the window max-pool in bfloat16 (``pool_impl="auto"`` picks it on TPU
only), and ``conv_layout_bench`` (1-D vs 2-D, channels-last vs channels-first convolutions) on
JAX's default device. A benchmark that fails becomes a row saying so; the others still run.
``--dry-run``: the same code path with tiny models, one timed step, and ``torch.compile``'s
``aot_eager`` backend (no C++ compile), for CI on a CPU.

Usage: ``python -m musicrep_jax.bench.accelerator_check [--dry-run] [--doc FILE] [--tests TEXT]``
(the shell script passes the pytest summary as ``--tests``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import traceback
from typing import Optional, Sequence

from musicrep_jax.bench import conv_layout_bench, train_step_bench
from musicrep_jax.bench.report import DOC, machine, machine_line, replace_section, section_key

DTYPES = ("float32", "bfloat16")

# (label, train_step_bench arguments, dtypes) of the full check on a GPU and of the dry run
# (one tiny model in bfloat16 there, to stay within CI's time; tests/unit/bench covers the
# ReSE-2 path of train_step_bench).
MODELS = {False: [("SampleCNN 3^9", [], DTYPES),
                  ("ReSE-2-multi 3^9", ["--block", "rese2"], DTYPES),
                  # pool_impl="auto" is reshape off TPU: is the window pool faster on a GPU?
                  ("SampleCNN 3^9 window pool", ["--pool-impl", "window"], ("bfloat16",))],
          True: [("SampleCNN 3^3 tiny", ["--n", "3", "--channels", "4,4,4,8,8"],
                  ("bfloat16",))]}
TIMING = {False: ["--batch", "64", "--steps", "20", "--repeats", "3", "--warmup", "3"],
          True: ["--batch", "4", "--steps", "1", "--repeats", "1", "--warmup", "0",
                 "--gemm-size", "128", "--compile-backend", "aot_eager"]}
CONV = {False: ["--batch", "64", "--steps", "20", "--repeats", "3"],
        True: ["--layers", "81x4x8", "--batch", "2", "--steps", "1", "--repeats", "1",
               "--dtypes", "float32"]}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m musicrep_jax.bench.accelerator_check",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--dry-run", action="store_true", help="tiny sizes (CI on a CPU)")
  p.add_argument("--doc", type=pathlib.Path, default=DOC, help="markdown file to update")
  p.add_argument("--tests", default="not run", help="the device tests' pytest summary line")
  return p.parse_args(argv)


def _one_line(error: BaseException) -> str:
  return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"


def run(dry_run: bool) -> dict:
  """Every benchmark of the check; failures are recorded, not raised."""
  steps, failures = [], []
  for label, model_args, dtypes in MODELS[dry_run]:
    for dtype in dtypes:
      argv = model_args + TIMING[dry_run] + ["--dtype", dtype]
      try:
        steps.append(train_step_bench.main(argv))
      except Exception as error:  # noqa: BLE001  (one failing benchmark must not stop the rest)
        traceback.print_exc()
        failures.append(f"train-step {label} {dtype}: {_one_line(error)}")
  try:
    conv = conv_layout_bench.main(CONV[dry_run])
  except Exception as error:  # noqa: BLE001
    traceback.print_exc()
    conv, failures = None, failures + [f"conv-layout: {_one_line(error)}"]
  return {"train_steps": steps, "conv": conv, "failures": failures}


def doc_section(result: dict, tests: str, dry_run: bool) -> str:
  steps, conv = result["train_steps"], result["conv"]
  first = steps[0] if steps else None
  kind = first["jax"]["device_kind"] if first else (conv or {}).get("device_kind", "unknown")
  lines = [f"### Accelerator check: {kind}" + (" (dry run)" if dry_run else ""), "",
           f"- Date: {datetime.date.today().isoformat()}",
           machine_line(machine(), first["threads"] if first else 0),
           "- Command: `bash bench/accelerator_check.sh" + (" --dry-run`" if dry_run else "`"),
           f"- Device tests: {tests}"]
  if first:
    lines.append(train_step_bench.device_line(first).replace(
        f"compute dtype {first['dtype']}", "compute dtype per row"))
    lines.append(f"- Train step: batch {first['batch']}, median (min-max) steps/s of "
                 f"{first['repeats']} runs of {first['steps']} steps after {first['warmup']} "
                 "warm-up steps; PyTorch bfloat16 = torch.autocast; MFU = XLA FLOPs x steps/s "
                 "over the chip's published dense peak for the row's dtype (float32: TF32).")
  lines += [f"- Failed: {f}" for f in result["failures"]]
  if steps:
    lines += ["", train_step_bench.table_header()] + [train_step_bench.markdown_row(r)
                                                      for r in steps]
  if conv:
    lines += ["", "Convolution formulations (one call = forward + input gradient + filter "
              "gradient, 'same' padding, no bias):", "",
              conv_layout_bench.markdown_table(conv["rows"])]
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args = parse_args(argv)
  result = run(args.dry_run)
  steps = result["train_steps"]
  kind = steps[0]["jax"]["device_kind"] if steps else "unknown"
  replace_section(args.doc, section_key(f"accelerator-check {kind}"),
                  doc_section(result, args.tests, args.dry_run))
  summary = {"device_kind": kind, "doc": str(args.doc), "failures": result["failures"],
             "rows": [{"config": r["config"], "dtype": r["dtype"],
                       "jax_steps_per_s": r["jax"]["steps_per_s"]["median"],
                       "jax_over_eager": r["jax_over_torch"],
                       "jax_over_compiled": r["jax_over_torch_compiled"], "mfu": r["mfu"]}
                      for r in steps],
             "conv_rows": len((result["conv"] or {}).get("rows", []))}
  print("accelerator check: " + json.dumps(summary, sort_keys=True))
  return summary


if __name__ == "__main__":
  main()
