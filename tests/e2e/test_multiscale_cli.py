"""Multi-level, multi-scale feature aggregation (papers 2 and 3): the three stages end to end
through `musicrep multiscale` on the embedded corpus, and paper 2's transfer through
`extract-features` and `aggregate`. (Level capture, clip aggregation, column selection:
tests/unit/systems/multiscale/test_multiscale.py.)"""

import json

import numpy as np
import pytest

from musicrep_jax import cli
from musicrep_jax.systems.multiscale import features as fx
from tests.helpers import MULTISCALE_TINY_CONFIG as TINY_CONFIG


@pytest.fixture(scope="module")
def multiscale_run(tmp_path_factory):
  """Stage 1-3 through `musicrep multiscale` on the embedded corpus (600 clips, 60 held out)."""
  workdir = tmp_path_factory.mktemp("multiscale")
  assert cli.main(["multiscale", "--config", TINY_CONFIG, "--workdir", str(workdir)]) == 0
  return workdir


@pytest.mark.slow
def test_multiscale_pipeline_end_to_end_beats_chance(multiscale_run, capsys):
  results = json.loads((multiscale_run / "results.json").read_text())
  meta = fx.read_meta(multiscale_run / "features")
  assert [e["name"] for e in meta["extractors"]] == ["frames18", "frames27"]
  assert [e["input_length"] for e in meta["extractors"]] == [9728, 14336]
  assert meta["dims"] == 96 and meta["splits"] == {"train": 480, "validation": 60, "test": 60}
  test = fx.read_features(multiscale_run / "features", "test")
  assert test["features"].shape == (60, 96) and test["labels"].shape == (60, 24)
  assert np.all(np.isfinite(test["features"])) and np.all(test["features"] >= 0)  # ReLU maxes.
  selected = results["selected"]
  assert selected["dims"] == 96 and selected["clips"] == 60
  assert selected["roc_auc"] >= 0.65, selected  # Chance is 0.5; measured 0.753.
  assert len(results["rows"]) == 1 + 6 + 2 + 2  # selected + single levels + multi-level + both.
  assert set(results["extractors"]) == {"frames18", "frames27"}
  # A finished run keeps its extractors: rerunning stages 2-3 only reproduces the result.
  workdir = multiscale_run
  mtime = (workdir / "extractors" / "frames18" / "summary.json").stat().st_mtime
  capsys.readouterr()
  assert cli.main(["multiscale", "--config", TINY_CONFIG, "--workdir", str(workdir),
                   "--config.sweep=false"]) == 0
  rerun = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert (workdir / "extractors" / "frames18" / "summary.json").stat().st_mtime == mtime
  assert rerun["roc_auc"] == pytest.approx(selected["roc_auc"], abs=1e-6)


@pytest.mark.slow
def test_transfer_extract_and_aggregate_commands_on_another_dataset(multiscale_run, tmp_path,
                                                                     capsys):
  """Paper 2's transfer: the extractors trained above, features and classifier on a corpus
  rendered with another seed, through `extract-features` and `aggregate`."""
  from musicrep_jax.data_pipelines.prepare import prepare_synthetic

  target = tmp_path / "target"
  prepare_synthetic(target, num_clips=120, seed=1, sample_rate=16000, clip_seconds=2.0,
                    progress=False)
  extractors = multiscale_run / "extractors"
  features = tmp_path / "features"
  assert cli.main(["extract-features", "--workdir", str(extractors / "frames18"),
                   "--workdir", str(extractors / "frames27"), "--data-dir", str(target),
                   "--out", str(features), "--batch-size", "16"]) == 0
  line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert line["dims"] == 96 and line["test_clips"] == 12
  meta = fx.read_meta(features)
  assert meta["data_dir"] == str(target)
  assert cli.main(["aggregate", "--features", str(features), "--config", TINY_CONFIG,
                   "--levels", "-1", "--config.classifier.trials=2"]) == 0
  line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert line["dims"] == 32 and line["clips"] == 12  # The last level of each scale: 2 x 16.
  assert 0.0 <= line["roc_auc_std"] and np.isfinite(line["roc_auc"])
  saved = json.loads((features / "results.json").read_text())
  assert len(saved["selected"]["trials"]) == 2
  assert saved["selected"]["columns"] == ["frames18/ConvBNReLU_2", "frames27/ConvBNReLU_2"]
