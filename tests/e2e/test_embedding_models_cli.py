"""``musicrep embed`` and ``musicrep export`` in fresh processes on an ``embedding_net`` workdir
(paper 4's artist DCNN, shrunk; nothing trained): embeddings and class scores, skipped files
reported, exit 2 with one ``error:`` line when nothing was embedded, and a world-readable
safetensors export. (Per family, in-process: tests/unit/serving/test_embed_families.py.)"""

import csv
import json
import os

import numpy as np
import pytest

from tests.helpers import make_config_workdir, run_cli
from tests.unit.serving.test_embed import SR, _write
from tests.unit.serving.test_embed_families import FAMILIES


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_data_dir):
  spec, kwargs, _ = FAMILIES["artist_dcnn"]
  return make_config_workdir(tmp_path_factory.mktemp("artist") / "wd", tiny_data_dir, spec,
                             **kwargs)


@pytest.mark.slow
def test_embed_cli_on_an_embedding_net_workdir(workdir, tiny_data_dir, tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  _write(folder / "a.wav", 1.0, SR)
  _write(folder / "b.flac", 0.6, 22050, channels=2, seed=1)
  (folder / "c.m4a").write_bytes(bytes(64))
  common = ["--workdir", str(workdir), "--data-dir", str(tiny_data_dir), "--no-progress"]
  proc = run_cli(["embed", str(folder), "--out", str(tmp_path / "out")] + common)
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert (summary["files"], summary["ok"], summary["skipped"], summary["failed"]) == (3, 2, 1, 0)
  assert summary["scores"] == "class_scores" and summary["embedding_dim"] == 16
  assert "skipped " in proc.stderr and "c.m4a: unsupported format .m4a" in proc.stderr
  assert np.load(tmp_path / "out/embeddings.npy").shape == (2, 16)
  scores = np.load(tmp_path / "out/class_scores.npy")
  np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-5)  # softmax over the artists
  rows = list(csv.DictReader(open(tmp_path / "out/index.csv")))
  assert [r["status"] for r in rows] == ["ok", "ok", "skipped"]
  assert json.loads((tmp_path / "out/embed_info.json").read_text())["model"] == "embedding_net"

  nothing = run_cli(["embed", str(folder / "c.m4a"), "--out", str(tmp_path / "none")] + common,
                    check=False)
  assert nothing.returncode == 2, nothing.stderr[-2000:]
  errors = [line for line in nothing.stderr.splitlines() if line.startswith("error:")]
  assert errors == [f"error: None of the 1 files was embedded (1 skipped, 0 failed; reasons in "
                    f"{tmp_path / 'none'}/index.csv)."], nothing.stderr[-2000:]
  assert "Traceback" not in nothing.stderr


@pytest.mark.slow
def test_export_cli_on_an_embedding_net_workdir(workdir, tiny_data_dir, tmp_path):
  pytest.importorskip("safetensors")
  pytest.importorskip("torch")
  out = tmp_path / "export"
  proc = run_cli(["export", "--workdir", str(workdir), "--data-dir", str(tiny_data_dir),
                  "--out", str(out), "--format", "safetensors", "--format", "stablehlo"])
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert summary["family"] == "embedding_net"
  info = json.loads((out / "export_info.json").read_text())
  assert info["outputs"] == ["logits", "embedding"] and info["embedding"] == "embedding"
  umask = os.umask(0)
  os.umask(umask)
  for name in ("model.safetensors", "model.stablehlo", "export_info.json"):
    assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
