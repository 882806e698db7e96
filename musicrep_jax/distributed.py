"""Gated ``jax.distributed.initialize``: only when asked, before any JAX computation.

Asked by the CLI flags ``--coordinator HOST:PORT --num-processes N --process-id I`` (or the
environment variables ``MUSICREP_COORDINATOR``, ``MUSICREP_NUM_PROCESSES``,
``MUSICREP_PROCESS_ID``), or by ``MUSICREP_DISTRIBUTED=auto`` on TPU pods and SLURM, where JAX
detects the cluster itself. On CPU the collectives go through gloo.
"""

from __future__ import annotations

import os

import jax


def maybe_initialize(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> bool:
  """Initializes the distributed runtime when configured; returns whether it did."""
  coordinator = coordinator or os.environ.get("MUSICREP_COORDINATOR")
  if num_processes is None and "MUSICREP_NUM_PROCESSES" in os.environ:
    num_processes = int(os.environ["MUSICREP_NUM_PROCESSES"])
  if process_id is None and "MUSICREP_PROCESS_ID" in os.environ:
    process_id = int(os.environ["MUSICREP_PROCESS_ID"])
  auto = os.environ.get("MUSICREP_DISTRIBUTED", "") == "auto"
  if not coordinator and not auto:
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  else:
    jax.distributed.initialize()
  return True
