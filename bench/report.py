"""Shared by every benchmark in bench/: the machine description, timing helpers, and the
replacement of one marked section of ``docs/benchmarks.md``.

A benchmark writes its results between ``<!-- bench:KEY:begin -->`` and
``<!-- bench:KEY:end -->``; rerunning it with the same KEY replaces that section only.
"""

from __future__ import annotations

import os
import pathlib
import platform
import re
import statistics
import time
from typing import Callable, Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"


def pin_threads(threads: Optional[int]) -> int:
  """Restricts the process to ``threads`` CPUs (before JAX starts); returns the CPUs allowed."""
  allowed = sorted(os.sched_getaffinity(0))
  if threads:
    if threads > len(allowed):
      raise SystemExit(f"--threads {threads} > the {len(allowed)} CPUs this process may use")
    os.sched_setaffinity(0, allowed[:threads])
  return len(os.sched_getaffinity(0))


def summarize(rates: Sequence[float]) -> dict:
  """Median, min and max of per-repeat rates."""
  return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def time_repeats(run_steps: Callable[[int], None], steps: int, repeats: int) -> list[float]:
  """Steps/s of ``repeats`` calls of ``run_steps(steps)`` (which must block until done)."""
  rates = []
  for _ in range(repeats):
    start = time.perf_counter()
    run_steps(steps)
    rates.append(steps / (time.perf_counter() - start))
  return rates


def machine() -> dict:
  """CPU model, cores and versions."""
  import jax
  import jaxlib
  cpu = "unknown"
  try:
    text = pathlib.Path("/proc/cpuinfo").read_text()
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    cpu = found.group(1).strip() if found else cpu
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
           if f in flags]
    cpu += f" ({', '.join(isa) or 'no AVX2'})"
  except OSError:
    pass
  info = {"cpu": cpu, "cpus_online": os.cpu_count(), "python": platform.python_version(),
          "jax": jax.__version__, "jaxlib": jaxlib.__version__}
  try:
    import torch
    info["torch"] = torch.__version__
  except ImportError:
    info["torch"] = None
  return info


def load_line(load_average: float) -> str:
  """One markdown line saying how busy the machine was when a benchmark started."""
  return (f"- 1-minute load average when it started: {load_average:.2f} (above ~1 on 2 CPUs "
          "means other work shared the machine and timings are noisy).")


def machine_line(info: dict, threads: int) -> str:
  """One markdown line describing the machine for a results section."""
  return (f"- Machine: {info['cpu']}, {info['cpus_online']} CPUs online, {threads} used; "
          f"Python {info['python']}, jax {info['jax']}, jaxlib {info['jaxlib']}"
          + (f", torch {info['torch']}" if info.get("torch") else ""))


def section_key(text: str) -> str:
  """A section key from any label: runs of other characters become ``-``."""
  return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def replace_section(doc: pathlib.Path, key: str, body: str) -> None:
  """Writes ``body`` as the section ``key`` of ``doc``: replaced in place, or appended."""
  text = doc.read_text() if doc.exists() else "# Benchmarks\n"
  section = f"<!-- bench:{key}:begin -->\n{body.strip()}\n<!-- bench:{key}:end -->"
  pattern = re.compile(
      rf"<!-- bench:{re.escape(key)}:begin -->.*?<!-- bench:{re.escape(key)}:end -->", re.S)
  if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
  else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
  doc.write_text(text)
