"""What a finished run records besides its checkpoints and metrics: ``summary.json``, written
once the run has ended (``musicrep train --record-resources``, ``musicrep compare``, paper 14's
cells), with the run's scalars, its process's peak host and device memory, the hardware and the
software versions; and the check that a finished workdir holds a given config
(``check_finished``), so that comparisons reuse finished runs and never overwrite them.

Hardware is what JAX sees (platform, device kind and count, processes) and the CPU model and
the CPUs the process may use; software is Python and the numerical stack (``SOFTWARE``).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import re
import sys

from musicrep_jax import config_loading, storage
from musicrep_jax.errors import UserError

SUMMARY = "summary.json"  # A finished run (written once it ends).
SOFTWARE = ("python", "jax", "jaxlib", "flax", "optax", "numpy")
HARDWARE = ("platform", "device_kind", "device_count", "process_count", "cpu", "cpus")
# Keys of config.json that say where a config came from or how it prints, not what it trains.
_IGNORED_KEYS = ("config_file", "config_arg", "progress_bar")


def check_finished(workdir: storage.AnyPath, config) -> bool:
  """Whether ``workdir`` holds a finished run (``summary.json``) of ``config``. A finished run
  of another config (its ``config.json`` differs outside provenance keys) is refused: it is
  never retrained or overwritten."""
  if not (workdir / SUMMARY).exists():
    return False
  if (workdir / "config.json").exists():
    old = json.loads((workdir / "config.json").read_text())
    new = json.loads(config_loading.to_json(config))
    diffs = [d for d in config_loading.config_diff(old, new) if d[0] not in _IGNORED_KEYS]
    if diffs:
      changes = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:5])
      raise UserError(f"{workdir} holds a finished run of another config ({changes}); it is "
                      f"not overwritten: choose another workdir root, or remove it.")
  return True


def cpu_model() -> str:
  """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
  try:
    found = re.search(r"^model name\s*:\s*(.+)$", pathlib.Path("/proc/cpuinfo").read_text(), re.M)
    if found:
      return found.group(1).strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or "unknown"


def hardware() -> dict:
  """What the timings ran on: JAX's platform, device kind and count, processes, the CPU model
  and the CPUs this process may use (starts JAX's backend)."""
  import jax

  devices = jax.devices()
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return {"platform": devices[0].platform, "device_kind": devices[0].device_kind,
          "device_count": len(devices), "process_count": jax.process_count(),
          "cpu": cpu_model(), "cpus": cpus}


def software() -> dict:
  """Versions of Python and the numerical stack (``SOFTWARE``)."""
  from importlib import metadata

  versions = {"python": platform.python_version()}
  for name in SOFTWARE[1:]:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def hardware_key(row: dict) -> tuple:
  return tuple(row.get(k) for k in HARDWARE)


def hardware_text(row: dict) -> str:
  """One phrase: ``"cpu x1 (Intel Xeon ..., 2 CPUs)"``."""
  return (f"{row.get('device_kind')} x{row.get('device_count')} ({row.get('cpu')}, "
          f"{row.get('cpus')} CPUs)")


def peak_memory_mb() -> dict:
  """This process's peak host memory (``ru_maxrss``) and peak device memory summed over its
  devices where the backend reports it (GPU, TPU; NaN on CPU), in MiB."""
  import resource

  import jax

  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin"
                                                               else 1 << 10)
  peaks = []
  for device in jax.local_devices():
    try:
      stats = device.memory_stats() or {}
    except (NotImplementedError, RuntimeError):
      stats = {}
    if "peak_bytes_in_use" in stats:
      peaks.append(stats["peak_bytes_in_use"])
  return {"peak_rss_mb": rss,
          "device_peak_mb": sum(peaks) / (1 << 20) if peaks else float("nan")}


def write_resources(path, result: dict) -> None:
  """``musicrep train --record-resources PATH``: the run's scalars (``result``), peak memory,
  hardware and software as JSON at ``path`` (local or remote, replaced in one step)."""
  record = {k: v for k, v in result.items() if not isinstance(v, (dict, list))}
  record.update(peak_memory_mb(), hardware=hardware(), software=software(),
                finished=datetime.datetime.now(datetime.timezone.utc).isoformat())
  storage.write_text_atomic(storage.as_path(path), json.dumps(record, indent=1))
