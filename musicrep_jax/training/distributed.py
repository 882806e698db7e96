"""Gated ``jax.distributed.initialize``: only when asked or on a detected multi-host cluster,
before any JAX computation.

Order of precedence:

1. explicit: the CLI flags ``--coordinator HOST:PORT --num-processes N --process-id I`` or the
   variables ``MUSICREP_COORDINATOR``, ``MUSICREP_NUM_PROCESSES``, ``MUSICREP_PROCESS_ID``;
2. ``MUSICREP_DISTRIBUTED=off`` never initializes; ``MUSICREP_DISTRIBUTED=auto`` always calls
   ``jax.distributed.initialize()`` and lets JAX find the cluster;
3. detected (:func:`detect_cluster`): a SLURM job step with more than one task
   (``SLURM_STEP_NUM_TASKS``/``SLURM_NTASKS`` > 1, i.e. started by ``srun``) or a Cloud TPU VM
   slice with more than one worker (``TPU_WORKER_HOSTNAMES`` lists several hosts). JAX's own
   cluster detection then supplies coordinator, process count and index.

A single-host run initializes nothing. On CPU the collectives go through gloo.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

import jax


def detect_cluster(env: Mapping[str, str]) -> Optional[str]:
  """``"slurm"`` or ``"tpu"`` when ``env`` describes a multi-process job; None otherwise."""
  tasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS")
  if env.get("SLURM_JOB_ID") and tasks and tasks.isdigit() and int(tasks) > 1:
    return "slurm"
  hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
  if len(hosts) > 1:
    return "tpu"
  return None


def maybe_initialize(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, env: Mapping[str, str] | None = None) -> bool:
  """Initializes the distributed runtime when configured or detected; returns whether it did."""
  env = os.environ if env is None else env
  coordinator = coordinator or env.get("MUSICREP_COORDINATOR")
  if num_processes is None and "MUSICREP_NUM_PROCESSES" in env:
    num_processes = int(env["MUSICREP_NUM_PROCESSES"])
  if process_id is None and "MUSICREP_PROCESS_ID" in env:
    process_id = int(env["MUSICREP_PROCESS_ID"])
  mode = env.get("MUSICREP_DISTRIBUTED", "").lower()
  if not coordinator and (mode == "off" or (mode != "auto" and detect_cluster(env) is None)):
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  else:
    jax.distributed.initialize()
  return True
