"""`musicrep export` from a training workdir in a fresh process: the summary line, the export
info, the StableHLO file (and safetensors and the model folder when torch is installed), and the one-sentence error
for a folder that is not a workdir. (Export formats and parity:
tests/unit/serving/export/test_export.py.)"""

import json

import pytest

from musicrep_jax.serving.export import exporter
from tests.helpers import make_workdir, run_cli


@pytest.mark.slow
def test_export_cli_from_a_workdir(tmp_path, tiny_data_dir):
  pytest.importorskip("safetensors")
  workdir = make_workdir(tmp_path / "wd", tiny_data_dir)
  out = tmp_path / "export"
  proc = run_cli(["export", "--workdir", str(workdir), "--data-dir", str(tiny_data_dir),
                  "--out", str(out), "--format", "stablehlo"] +
                 (["--format", "safetensors", "--format", "pretrained"] if _has("torch")
                  else []))
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert summary["family"] == "sample_cnn" and summary["step"] == 1
  assert summary["stablehlo_rel_err"] <= exporter.PARITY_TOLERANCE
  info = json.loads((out / "export_info.json").read_text())
  assert len(info["tag_names"]) == 24 and info["sample_rate"] == 16000
  assert (out / "model.stablehlo").stat().st_size > 0
  if _has("torch"):  # The model folder: its card and files (tests/unit/.../test_pretrained.py).
    assert summary["pretrained_rel_err"] <= exporter.PARITY_TOLERANCE
    assert summary["eval_results"] == 0  # Nothing trained: no recorded evaluation.
    assert {"README.md", "musicrep.json", "modeling_musicrep.py"} <= {
        p.name for p in out.iterdir()}

  bad = run_cli(["export", "--workdir", str(tmp_path / "nope"), "--out", str(out),
                 "--format", "stablehlo"], check=False)
  assert bad.returncode == 2 and "not a training workdir" in bad.stderr


def _has(module: str) -> bool:
  import importlib.util

  return importlib.util.find_spec(module) is not None
