"""Published peak numbers of the accelerators ``musicrep plan`` reports against.

One ``ChipSpec`` per chip, keyed by the ``device_kind`` JAX reports (``jax.devices()[0]
.device_kind``, or a TPU topology's devices). Numbers are per chip, as the vendors publish them
(dense, no structured sparsity); where JAX shows a chip as several devices (TPU v4 compiled for a
topology: one device per TensorCore), ``per_device`` divides them.

Sources (read 2025; the pages are the vendors' own):

* TPU v4: https://cloud.google.com/tpu/docs/v4 -- 275 TFLOP/s bf16, 32 GiB HBM2, 1,200 GB/s.
* TPU v5e: https://cloud.google.com/tpu/docs/v5e -- 197 TFLOP/s bf16, 16 GiB HBM2, 819 GB/s.
* TPU v5p: https://cloud.google.com/tpu/docs/v5p -- 459 TFLOP/s bf16, 95 GiB HBM2e, 2,765 GB/s.
* TPU v6e (Trillium): https://cloud.google.com/tpu/docs/v6e -- 918 TFLOP/s bf16, 32 GiB HBM,
  1,640 GB/s.
* NVIDIA H100 SXM5: https://www.nvidia.com/en-us/data-center/h100/ (datasheet) -- 989.4 TFLOP/s
  bf16 dense (1,979 with sparsity), 494.7 TF32 dense, 80 GB HBM3, 3.35 TB/s.
* NVIDIA H200 SXM: https://www.nvidia.com/en-us/data-center/h200/ (datasheet) -- same tensor
  cores as H100 (989.4 TFLOP/s bf16 dense, 494.7 TF32), 141 GB HBM3e, 4.8 TB/s.

``peak_f32`` is the peak that float32 matrix work actually reaches under JAX's default matmul
precision: on TPU, XLA runs float32 convolutions and dots as single bfloat16 MXU passes
(``jax.default_matmul_precision`` "default"), so it is the bf16 peak; on NVIDIA GPUs XLA uses
TF32 tensor cores for float32 dots and convolutions by default, so it is the TF32 peak. With
``precision="highest"`` both are several times lower.
"""

from __future__ import annotations

import dataclasses

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class ChipSpec:
  """One chip's published peaks: FLOP/s by compute dtype, HBM bytes and HBM bytes/s."""

  name: str
  hbm_bytes: float
  peak_bf16: float  # FLOP/s
  peak_f32: float  # FLOP/s at JAX's default precision (module docstring)
  hbm_bandwidth: float  # bytes/s
  source: str

  def peak(self, compute_dtype: str) -> float:
    return self.peak_bf16 if compute_dtype == "bfloat16" else self.peak_f32

  def per_device(self, devices_per_chip: int) -> "ChipSpec":
    """The share of one device when JAX shows each chip as ``devices_per_chip`` devices."""
    if devices_per_chip == 1:
      return self
    k = float(devices_per_chip)
    return dataclasses.replace(
        self, name=f"{self.name} (1/{devices_per_chip} chip)", hbm_bytes=self.hbm_bytes / k,
        peak_bf16=self.peak_bf16 / k, peak_f32=self.peak_f32 / k,
        hbm_bandwidth=self.hbm_bandwidth / k)


CHIPS = {
    "TPU v4": ChipSpec("TPU v4", 32 * GIB, 275e12, 275e12, 1200e9,
                       "https://cloud.google.com/tpu/docs/v4"),
    "TPU v5 lite": ChipSpec("TPU v5e", 16 * GIB, 197e12, 197e12, 819e9,
                            "https://cloud.google.com/tpu/docs/v5e"),
    "TPU v5": ChipSpec("TPU v5p", 95 * GIB, 459e12, 459e12, 2765e9,
                       "https://cloud.google.com/tpu/docs/v5p"),
    "TPU v6 lite": ChipSpec("TPU v6e", 32 * GIB, 918e12, 918e12, 1640e9,
                            "https://cloud.google.com/tpu/docs/v6e"),
    "H100": ChipSpec("NVIDIA H100 SXM", 80e9, 989.4e12, 494.7e12, 3.35e12,
                     "https://www.nvidia.com/en-us/data-center/h100/"),
    "H200": ChipSpec("NVIDIA H200 SXM", 141e9, 989.4e12, 494.7e12, 4.8e12,
                     "https://www.nvidia.com/en-us/data-center/h200/"),
}


def chip_spec(device_kind: str):
  """The ``ChipSpec`` of a JAX ``device_kind`` (TPU kinds exactly; NVIDIA kinds such as "NVIDIA
  H100 80GB HBM3" by model name), or None for a chip without published numbers here (CPU)."""
  if device_kind in CHIPS:
    return CHIPS[device_kind]
  for key in ("H100", "H200"):
    if key in device_kind:
      return CHIPS[key]
  return None
