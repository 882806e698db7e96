"""Every export format of one model, each checked against the Flax outputs (docs/export.md).

``export_model`` writes, into ``out_dir``:

  ``model.safetensors``  flat weights in the PyTorch mirror's names + header (``safetensors_io``)
  ``model.onnx``         the mirror through ``torch.onnx.export`` (``onnx_export``)
  ``model.stablehlo``    ``jax.export`` serialized, symbolic batch (``stablehlo``)
  ``modeling_musicrep.py`` with ``model.safetensors`` (format ``pretrained``): the PyTorch file
                         that needs no JAX, checked by importing the copy written here; the
                         model folder's other files come from ``pretrained.write_model_folder``
  ``export_info.json``   family, constructor fields, sample rate, input length, tag names, and
                         per format the measured max |export - Flax| of each output

and checks each artifact by reading it back and running it (safetensors through the PyTorch
mirror, ``pretrained`` through the copied ``modeling_musicrep.py``, ONNX with onnxruntime,
StableHLO deserialized and called) on a seeded batch against
``model.apply`` in float32 at the highest matmul precision. ``PARITY_TOLERANCE``: every output
must satisfy ``max |export - flax| <= 1e-5 * max(1, max |flax|)``; otherwise ``ExportMismatch``.
Every file gets the mode of any new file (``0666`` less the umask: ``0644`` under umask 022).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax import storage
from musicrep_jax.serving.export import eval_apply, layout, model_family, model_kwargs
from musicrep_jax.serving.export import safetensors_io
from musicrep_jax.serving.inference import audio_outputs

FORMATS = ("safetensors", "onnx", "stablehlo", "pretrained")
FILE_NAMES = {"safetensors": "model.safetensors", "onnx": "model.onnx",
              "stablehlo": "model.stablehlo", "pretrained": "modeling_musicrep.py"}
# |export - flax| <= PARITY_TOLERANCE * max(1, max|flax|), per output (float32 on CPU).
PARITY_TOLERANCE = 1e-5
# Python packages each format needs beyond the core install (pip names).
REQUIREMENTS = {"safetensors": ("safetensors", "torch"), "onnx": ("torch", "onnx", "onnxscript",
                                                                  "onnxruntime"),
                "stablehlo": (), "pretrained": ("safetensors", "torch")}


class ExportMismatch(RuntimeError):
  """An exported artifact does not reproduce the Flax outputs within ``PARITY_TOLERANCE``."""


def check_batch(input_length: int, batch: int = 3, seed: int = 0) -> np.ndarray:
  """Seeded float32 ``[batch, input_length, 1]`` audio-like input (normal, std 0.3)."""
  rng = np.random.default_rng(seed)
  return (0.3 * rng.standard_normal((batch, input_length, 1))).astype(np.float32)


def flax_outputs(model, variables: dict, audio: np.ndarray) -> dict[str, np.ndarray]:
  """The reference: ``eval_apply`` (``model.apply`` in eval mode, array outputs) at the highest
  matmul precision."""
  with jax.default_matmul_precision("highest"):
    out = jax.jit(lambda v, a: eval_apply(model, v, a))(variables, jnp.asarray(audio))
  return {k: np.asarray(v) for k, v in out.items()}


def parity(got: dict, reference: dict, names: Sequence[str] = ("logits", "embedding")) -> dict:
  """``{output: {"max_abs_err", "scale", "ok"}}`` for ``names``."""
  report = {}
  for name in names:
    ref = np.asarray(reference[name], np.float64)
    err = float(np.max(np.abs(np.asarray(got[name], np.float64) - ref)))
    scale = max(1.0, float(np.max(np.abs(ref))))
    report[name] = {"max_abs_err": err, "scale": scale, "ok": err <= PARITY_TOLERANCE * scale}
  return report


def missing_packages(fmt: str) -> list[str]:
  import importlib.util

  return [p for p in REQUIREMENTS[fmt] if importlib.util.find_spec(p) is None]


def export_model(model, variables: dict, out_dir: str | pathlib.Path, *, sample_rate: int,
                 tag_names: Sequence[str] = (), formats: Sequence[str] = FORMATS) -> dict:
  """Writes ``formats`` of a Flax model with ``variables`` into ``out_dir``; returns (and writes
  as ``export_info.json``) what was written and the parity measured for each format.

  ``variables``: ``{"params", "batch_stats"}`` (host numpy or jax arrays). Raises
  ``ExportMismatch`` when a format misses the tolerance, ``ImportError`` naming the missing
  packages of a format. A remote ``out_dir`` (``gs://...``) is written in a local folder and
  copied up once every format passed its parity check (``storage.local_dir``).
  """
  with storage.local_dir(out_dir) as local:
    return _export_into(local, model, variables, sample_rate, tag_names, formats)


def _export_into(out_dir: pathlib.Path, model, variables: dict, sample_rate: int,
                 tag_names: Sequence[str], formats: Sequence[str]) -> dict:
  variables = {k: jax.device_get(variables[k]) for k in ("params", "batch_stats")
               if k in variables}
  model = model.clone(dtype=jnp.float32) if hasattr(model, "dtype") else model
  header = safetensors_io.ModelHeader(model_family(model), model_kwargs(model), int(sample_rate),
                                      int(model.input_length), tuple(tag_names))
  # The audio side only (DCUE's user branch and the zero-shot label branch stay behind); the
  # reference runs without them, so nothing exported depends on them.
  variables = layout.audio_variables(header.family, variables)
  outputs = audio_outputs(model)
  audio = check_batch(header.input_length)
  reference = flax_outputs(model, variables, audio)
  info = {"family": header.family, "kwargs": header.kwargs, "sample_rate": header.sample_rate,
          "input_length": header.input_length, "input": "float32 [batch, input_length, 1]",
          "outputs": list(outputs), "embedding": outputs[-1],
          "tag_names": list(tag_names), "tolerance": PARITY_TOLERANCE, "formats": {}}
  for fmt in formats:
    if fmt not in FORMATS:
      raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    missing = missing_packages(fmt)
    if missing:
      raise ImportError(f"--format {fmt} needs the Python packages {', '.join(missing)} "
                        f"(pip install 'musicrep-jax[export]')")
    path = out_dir / FILE_NAMES[fmt]
    got = _write_and_run(fmt, path, model, variables, header, audio, outputs)
    report = parity(got, reference, outputs)
    info["formats"][fmt] = {"file": path.name, "bytes": path.stat().st_size, "parity": report}
    if not all(r["ok"] for r in report.values()):
      raise ExportMismatch(f"{fmt} export of {header.family} differs from Flax: {report}")
  (out_dir / "export_info.json").write_text(json.dumps(info, indent=2) + "\n")
  return info


def _write_and_run(fmt: str, path: pathlib.Path, model, variables, header, audio,
                   outputs: Sequence[str]) -> dict:
  """Writes one artifact, then reads it back and runs it on ``audio``."""
  if fmt == "stablehlo":
    from musicrep_jax.serving.export import stablehlo

    path.write_bytes(stablehlo.serialize(model, variables, header.input_length))
    return stablehlo.run(path.read_bytes(), audio)
  if fmt == "pretrained":
    safetensors_io.write(path.with_name(FILE_NAMES["safetensors"]), header, variables)
    copy_modeling_file(path)
    modeling = import_file(path)
    return modeling.forward_numpy(modeling.load(path.parent), audio)
  from musicrep_jax.serving.export import torch_mirror

  if fmt == "safetensors":
    safetensors_io.write(path, header, variables)
    mirror, _ = torch_mirror.mirror_from_safetensors(path)
    return torch_mirror.forward_numpy(mirror, audio)
  from musicrep_jax.serving.export import onnx_export

  onnx_export.export_onnx(torch_mirror.mirror_from_flax(model, variables), path, outputs)
  return onnx_export.run_onnx(path, audio)


def copy_modeling_file(path: pathlib.Path) -> None:
  """Writes ``modeling_musicrep.py`` of this package, byte for byte, to ``path`` (the mode of a
  new file; ``shutil.copyfile`` does not copy the source's mode)."""
  from musicrep_jax.serving.export import modeling_musicrep

  shutil.copyfile(modeling_musicrep.__file__, path)


def import_file(path: pathlib.Path):
  """Imports the Python file ``path`` as a fresh module (not registered in ``sys.modules``)."""
  spec = importlib.util.spec_from_file_location(f"_exported_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
