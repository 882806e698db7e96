"""The multiscale system's orchestration (``systems/multiscale/pipeline.py``): the registered
runner, the target shards of stages 2-3, the report, the stage-2 and stage-3 entry points of the
commands, and extractors restored by the one restore path."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from musicrep_jax.errors import UserError
from musicrep_jax.registry import RUNNERS
from musicrep_jax.systems.multiscale import classifier, features, pipeline
from musicrep_jax.training import checkpoints
from tests.helpers import MULTISCALE_TINY_CONFIG, make_workdir


def test_the_multiscale_runner_reads_the_target_data_dir_from_the_config(monkeypatch):
  calls = []
  monkeypatch.setattr(pipeline, "run_multiscale", lambda *a: calls.append(a) or {})
  assert RUNNERS.get("multiscale") is pipeline.run
  config = ml_collections.ConfigDict(dict(runner="multiscale"))
  pipeline.run(config, workdir="/w", data_dir="/d")
  config.target_data_dir = "/t"
  pipeline.run(config, workdir="/w", data_dir=None)
  assert calls == [(config, "/w", "/d", None), (config, "/w", None, "/t")]


def test_a_config_without_extractors_is_not_a_multiscale_config(tmp_path):
  config = ml_collections.ConfigDict(dict(config_file="configs/demo.py"))
  with pytest.raises(UserError, match="configs/demo.py has no `extractors`"):
    pipeline.run_multiscale(config, tmp_path)
  assert not any(tmp_path.iterdir())


def test_target_shards_of_stages_2_and_3(tiny_data_dir):
  config = pipeline.load_config(MULTISCALE_TINY_CONFIG, ["--config.target_synthetic_seed=-1"])
  first = next(iter(config.extractors.values()))
  shards = pipeline.target_shards(config, first, None, str(tiny_data_dir))
  assert shards.data_dir == tiny_data_dir  # Transfer: the target dataset.
  shards = pipeline.target_shards(config, first, str(tiny_data_dir), None)
  assert shards.data_dir == tiny_data_dir  # Otherwise the extractors' training data.
  config.transfer = True
  with pytest.raises(UserError, match="needs --target-data-dir"):
    pipeline.target_shards(config, first, str(tiny_data_dir), None)


def _row(name, roc_auc):
  return {"name": name, "roc_auc": roc_auc, "pr_auc": 0.5, "roc_auc_std": 0.0, "dims": 3,
          "clips": 4, "split": "test", "trials": [{}], "val_loss": 0.7}


def test_report_writes_the_results_and_prints_the_table(tmp_path, capsys):
  results = {"selected": _row("selected", 0.8), "rows": [_row("selected", 0.8), _row("b", 0.6)]}
  summary = pipeline.report(results, tmp_path / "sub" / "results.json")
  assert json.loads((tmp_path / "sub" / "results.json").read_text()) == results
  assert summary == {"roc_auc": 0.8, "pr_auc": 0.5, "roc_auc_std": 0.0, "dims": 3, "clips": 4,
                     "split": "test", "results": str(tmp_path / "sub" / "results.json")}
  printed = capsys.readouterr().out
  assert "| selected | 3 | 0.8000 |" in printed and "| b | 3 | 0.6000 |" in printed


def test_aggregate_replaces_the_selection_and_writes_next_to_the_features(monkeypatch,
                                                                         tmp_path):
  seen = []

  def run_table(features_dir, config, *, sweep, progress):
    seen.append((features_dir, config.selection.scales, config.selection.levels, sweep))
    return {"selected": _row("selected", 0.9), "rows": [_row("selected", 0.9)]}

  monkeypatch.setattr(classifier, "run_table", run_table)
  config = pipeline.load_config(MULTISCALE_TINY_CONFIG)
  summary = pipeline.aggregate(tmp_path, config, levels="-1", sweep=True)
  assert seen == [(tmp_path, "all", "-1", True)]
  assert summary["results"] == str(tmp_path / "results.json") and summary["roc_auc"] == 0.9


def test_extract_needs_one_name_per_workdir(tmp_path):
  with pytest.raises(UserError, match=r"one --name per --workdir \(2\), got 1"):
    pipeline.extract(["a", "b"], tmp_path, names=["x"])


def test_extractors_are_restored_in_float32_by_the_one_restore_path(tmp_path, tiny_data_dir):
  workdir = make_workdir(tmp_path / "scale1", tiny_data_dir)
  config = json.loads((workdir / "config.json").read_text())
  config["compute_dtype"] = "bfloat16"
  (workdir / "config.json").write_text(json.dumps(config))
  extractor = features.load_extractor(workdir, data_dir=str(tiny_data_dir))
  assert (extractor.name, extractor.workdir, extractor.step) == ("scale1", workdir, 1)
  assert extractor.model.dtype == jnp.float32 and extractor.input_length == 243
  assert extractor.model.num_outputs == 24  # From the training data's tags.
  saved = checkpoints.load_state_as_numpy(workdir / "best" / "1" / "state")
  jax.tree.map(np.testing.assert_array_equal, extractor.variables,
               {"params": saved["params"], "batch_stats": saved["batch_stats"]})
  levels = features.describe_levels(extractor.model, extractor.variables)
  assert [l.channels for l in levels] == [8, 8, 8, 16, 16, 16]
