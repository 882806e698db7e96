"""data.placement="device" (training/device_resident.py): on 8 fake CPU devices the crops gathered
from the device-resident split are bit-identical to the host pipeline's batches (random crops
and the segment grid, data x fsdp meshes), every clip comes once per epoch, the index iterator
resumes from its state; an oversize split is refused with one line."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from musicrep_jax.data import pipeline as ip
from musicrep_jax.errors import UserError
from musicrep_jax.training import device_resident as dr
from musicrep_jax.training import mesh as mesh_lib
from tests.helpers import REPO


def _records(n: int, seed: int = 0):
  """Clips of uneven lengths (some shorter than the crop) with tags."""
  rng = np.random.default_rng(seed)
  return [dict(audio=rng.integers(-32768, 32767, int(rng.integers(50, 400))).astype(np.int16),
               clip_id=np.int64(1000 + i), tags=rng.random(5) > 0.5) for i in range(n)]


_EIGHT_DEVICES = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import numpy as np
    from musicrep_jax.data import pipeline as ip
    from musicrep_jax.training import device_resident as dr, mesh as mesh_lib
    from tests.unit.training.test_device_resident import _records

    assert jax.device_count() == 8
    source = ip.InMemorySource(_records(37))
    crop, batch = 128, 16
    for data, fsdp in ((8, 1), (4, 2)):
      mesh = mesh_lib.make_mesh(data, fsdp)
      sharding = mesh_lib.batch_sharding(mesh)
      ds = dr.load(source, mesh, crop_length=crop, budget_mb=1)
      width = max(crop, max(len(r["audio"]) for r in source))
      assert ds.audio.shape == (40, width) and ds.audio.dtype == np.int16, ds.audio.shape
      assert ds.audio.sharding.spec == jax.sharding.PartitionSpec("data", None)
      gather = jax.jit(dr.sharded_gather(mesh, crop))
      for segments in (ip.TrainSegments(), ip.TrainSegments("grid", 3, "start")):
        kwargs = dict(crop_length=crop, global_batch_size=batch, seed=3, segments=segments)
        host = ip.TrainBatches(source, fields=("tags",), process_index=0, process_count=1,
                               **kwargs)
        it = dr.index_iterator(ds, **kwargs)
        epoch = 37 * segments.per_clip
        units = []
        for step in range(-(-2 * epoch // batch)):
          index = next(it)
          if step == 3:
            resumed = dr.index_iterator(ds, **kwargs)
            resumed.set_state(it.get_state())
          if step == 4:
            again = next(resumed)
            for k in index:
              np.testing.assert_array_equal(again[k], index[k])
          units += list(index["clip"])
          if step < 6 or step % 7 == 0:
            expected = host(step)
            out = gather(ds.audio, *[ip.to_global_batch(index, sharding)[k]
                                     for k in ("clip", "start")])
            assert out.sharding.is_equivalent_to(sharding, 3)
            np.testing.assert_array_equal(np.asarray(out), expected["audio"])
            np.testing.assert_array_equal(index["tags"], expected["tags"])
            np.testing.assert_array_equal(index["clip_id"], expected["clip_id"])
        for e in range(2):  # Exactly once per epoch: every clip S times, S segments each.
          counts = np.bincount(units[e * epoch:(e + 1) * epoch], minlength=37)
          assert (counts == segments.per_clip).all(), counts
      print("checked", data, fsdp)
    print("ALL OK")
""")


def test_gathered_crops_equal_host_batches_on_8_devices():
  proc = subprocess.run([sys.executable, "-c", _EIGHT_DEVICES], cwd=REPO, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0 and "ALL OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]


def test_gather_crops_matches_window_and_refuses_oversize():
  source = ip.InMemorySource(_records(5, seed=1))
  mesh = mesh_lib.make_mesh(1, 1)
  ds = dr.load(source, mesh, crop_length=300, budget_mb=1)
  width = max(300, max(len(r["audio"]) for r in source))
  assert ds.audio.shape == (5, width) and ds.bytes_per_device == 5 * width * 2
  clip, start = np.array([0, 3, 4], np.int32), np.array([0, 17, width - 300], np.int32)
  out = np.asarray(dr.gather_crops(ds.audio, clip, start, 300))
  for row, (c, s) in enumerate(zip(clip, start)):
    np.testing.assert_array_equal(out[row, :, 0], ip.pcm16_to_float(
        ip.window(source[int(c)]["audio"], int(s), 300)))
  with pytest.raises(UserError, match="does not fit on the devices") as error:
    dr.load(source, mesh, crop_length=300, budget_mb=0.001)
  assert "\n" not in str(error.value)
  with pytest.raises(UserError, match="device_budget_mb"):  # CPU: no known memory.
    dr.device_budget_bytes(mesh.devices.flat[0])
  with pytest.raises(UserError, match="placement"):
    dr.placement({"placement": "tpu"})
