"""The device mesh and the shardings of batches, parameters and optimizer state.

One mesh with axes ``("data", "fsdp")``. The batch is sharded over both axes (so an ``fsdp`` axis
also splits the batch, as in FSDP/ZeRO-3). Parameters, BatchNorm statistics and optimizer state
are replicated when ``fsdp`` is 1 (the default); with ``fsdp > 1`` every leaf with at least
``min_size`` elements is split over the ``fsdp`` axis along its largest dimension that the axis
size divides (:func:`fsdp_spec`), the rest stay replicated. XLA (GSPMD) inserts the all-gathers
before use and reduce-scatters the gradients. The rule depends on shapes only, so Adam's moments
get their parameter's layout, and a checkpoint restores onto any other mesh: Orbax reads each
array into the target sharding (``trainer.abstract_state``).

BatchNorm under ``jax.jit`` sees the global batch: synchronised BatchNorm across all devices and
hosts.
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


def fsdp_spec(shape: tuple, fsdp_size: int, min_size: int) -> P:
  """Where a leaf of ``shape`` goes: split over ``fsdp`` along its largest divisible axis.

  Leaves smaller than ``min_size`` elements, or with no axis that ``fsdp_size`` divides, are
  replicated (``P()``). Ties between equal axes go to the last one (output channels of a conv
  kernel ``[width, in, out]``).
  """
  if fsdp_size <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  candidates = [i for i, d in enumerate(shape) if d % fsdp_size == 0]
  if not candidates:
    return P()
  axis = max(candidates, key=lambda i: (shape[i], i))
  return P(*[("fsdp" if i == axis else None) for i in range(len(shape))])


def state_shardings(abstract_tree, mesh: Mesh, min_size: int = 2 ** 14):
  """A ``NamedSharding`` per leaf of ``abstract_tree`` (shapes only) by :func:`fsdp_spec`."""
  fsdp_size = mesh.shape["fsdp"]
  return jax.tree.map(
      lambda x: NamedSharding(mesh, fsdp_spec(tuple(x.shape), fsdp_size, min_size)),
      abstract_tree)


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  devices = mesh.devices.size
  if global_batch_size % devices or global_batch_size % jax.process_count():
    raise UserError(
        f"config.batch_size={global_batch_size} must be divisible by the {devices} devices and "
        f"the {jax.process_count()} processes.")
