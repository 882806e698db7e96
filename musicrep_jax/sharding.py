"""The device mesh and the shardings of batches and parameters.

One mesh with axes ``("data", "fsdp")``. The batch is sharded over both axes (so an ``fsdp`` axis
also splits the batch, as in FSDP); parameters and optimizer state are replicated for now
(``fsdp`` = 1 by default; sharding parameters over it is the scale-out issue's work). BatchNorm
under ``jax.jit`` sees the global batch: synchronised BatchNorm across all devices and hosts.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from musicrep_jax.errors import UserError

BATCH_AXES = ("data", "fsdp")


def make_mesh(data: int = -1, fsdp: int = 1, devices=None) -> Mesh:
  """A ``data x fsdp`` mesh over all (global) devices; ``data=-1`` takes what ``fsdp`` leaves."""
  devices = list(devices if devices is not None else jax.devices())
  if fsdp < 1 or len(devices) % fsdp:
    raise UserError(f"config.mesh.fsdp={fsdp} must divide the {len(devices)} devices.")
  if data == -1:
    data = len(devices) // fsdp
  if data * fsdp != len(devices):
    raise UserError(f"config.mesh data={data} x fsdp={fsdp} != {len(devices)} devices.")
  grid = np.asarray(devices, dtype=object).reshape(data, fsdp)
  return Mesh(grid, BATCH_AXES, axis_types=(AxisType.Auto, AxisType.Auto))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over every mesh axis; other axes whole."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  devices = mesh.devices.size
  if global_batch_size % devices or global_batch_size % jax.process_count():
    raise UserError(
        f"config.batch_size={global_batch_size} must be divisible by the {devices} devices and "
        f"the {jax.process_count()} processes.")
