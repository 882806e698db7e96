"""Paper 14's grid (``systems/paper14/grid.py``): cells, their configs and the registered runner.
(`musicrep compare-paper14` end to end from the CLI: tests/e2e/test_paper14_cli.py.)"""

import json
import shutil

import ml_collections
import pytest

from musicrep_jax.errors import UserError
from musicrep_jax.registry import RUNNERS
from musicrep_jax.systems.paper14 import grid


def test_parse_cells_keeps_the_order_and_names_unknown_cells():
  assert grid.parse_cells(None) == grid.parse_cells("") == grid.GRID
  assert grid.parse_cells("proxy:plain, triplet:plain") == (("proxy", "plain"),
                                                            ("triplet", "plain"))
  with pytest.raises(UserError, match="--cells: 'proxy:nope' is not a cell"):
    grid.parse_cells("proxy:nope")
  with pytest.raises(UserError, match="config.cells: 'x'"):
    grid.parse_cells("x", key="config.cells")


def test_cell_config_spreads_the_evaluations_over_the_steps():
  config = grid.cell_config("proxy", "disentangled", "tiny", 12, 2, ["--config.seed=7"])
  assert config.num_train_steps == 12 and config.seed == 7
  assert config.eval_every == config.checkpoint_every == 6 and config.log_every <= 6
  assert config.task.kwargs.approach == "proxy" and config.task.kwargs.disentangled
  assert not config.progress_bar
  with pytest.raises(UserError, match="size='huge'"):
    grid.cell_config("proxy", "plain", "huge", None, 8)


def test_the_paper14_runner_passes_the_config_settings_to_compare(monkeypatch):
  calls = []
  monkeypatch.setattr(grid, "compare", lambda out, **kwargs: calls.append((out, kwargs)) or {})
  assert RUNNERS.get("paper14") is grid.run
  config = ml_collections.ConfigDict(dict(runner="paper14", size="tiny", cells="proxy:plain",
                                          steps=12, evals=2, cell_overrides=["seed=3"]))
  grid.run(config, workdir="/w", data_dir="/d")
  assert calls == [("/w", dict(data_dir="/d", size="tiny", cells="proxy:plain", steps=12,
                                 evals=2, target=grid.DEFAULT_TARGET,
                                 fraction=grid.DEFAULT_FRACTION, overrides=("seed=3",),
                                 backbone=None))]
  calls.clear()
  grid.run(ml_collections.ConfigDict(dict(runner="paper14")), workdir="/w", data_dir=None)
  assert calls[0][1]["size"] == "runlocal" and calls[0][1]["cells"] is None
  assert calls[0][1]["steps"] is None and calls[0][1]["evals"] == grid.DEFAULT_EVALS
  with pytest.raises(UserError, match="config.fraction"):
    grid.run(ml_collections.ConfigDict(dict(fraction=1.5)), workdir="/w", data_dir=None)


def test_sizes_and_backbones_of_the_command_are_the_grids():
  from musicrep_jax.commands import compare_paper14
  from musicrep_jax.configs import metric_learning

  assert compare_paper14.SIZES == grid.SIZES
  assert compare_paper14.BACKBONES == metric_learning.BACKBONES


def test_the_paper_size_is_the_paper_config_and_needs_data(tmp_path):
  config = grid.cell_config("triplet", "disentangled", "paper", None, 8, (), "mel_dcnn")
  assert config.task.kwargs.labels == ("tag:genre", "tag:mood", "tag:instrument", "tag:era")
  assert config.model.kwargs.backbone == "mel_dcnn" and config.num_train_steps == 200_000
  assert config.eval_every == 25_000 and config.progress_bar
  with pytest.raises(UserError, match="--size paper trains on prepared MSD-layout shards"):
    grid.compare(tmp_path / "out", size="paper", cells="proxy:plain")
  assert not (tmp_path / "out").exists()


def _bytes(folder):
  return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file()}


def test_cells_are_reused_resumed_refused_and_gathered(tmp_path, capsys):
  """One tiny cell of 4 steps: rerun -> reused untouched; another config, data or schedule ->
  one line; without its summary (interrupted after its last checkpoint) -> resumed, not retrained;
  gathered from two outputs -> the same report, a cell finished twice refused."""
  a, b = tmp_path / "a", tmp_path / "b"
  cell = dict(size="tiny", cells="proxy:plain", steps=4, evals=2)
  first = grid.compare(a, **cell)
  assert first["cells"] == 1 and "=== proxy-plain (4 steps) ===" in capsys.readouterr().out
  workdir = a / "runs" / "proxy-plain"
  before = _bytes(workdir)
  grid.compare(a, **cell)  # Finished: reused, nothing trained or written in the cell.
  assert "===" not in capsys.readouterr().out and _bytes(workdir) == before
  with pytest.raises(UserError, match="holds a finished run of another config.*seed"):
    grid.compare(a, overrides=["--config.seed=5"], **cell)
  with pytest.raises(UserError, match="finished cell trained on the embedded corpus, not /"):
    grid.compare(a, data_dir=str(tmp_path / "shards"), **cell)
  (workdir / "summary.json").unlink()  # Interrupted after its last checkpoint.
  with pytest.raises(UserError, match="interrupted cell with num_train_steps=4, eval_every=2, "
                                      "not num_train_steps=6, eval_every=3"):
    grid.compare(a, **dict(cell, steps=6))
  grid.compare(a, **cell)  # Resumes at step 4: no step trained again.
  assert "=== proxy-plain" in capsys.readouterr().out
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_steps = [r["step"] for r in records if r["split"] == "train"]
  assert train_steps == sorted(set(train_steps)) and max(train_steps) == 4
  assert json.loads((workdir / "summary.json").read_text())["step"] == 4
  table = (a / "table.md").read_text()
  b.joinpath("runs").mkdir(parents=True)
  gathered = grid.gather([a, b], tmp_path / "g")
  assert gathered["cells"] == 1 and (tmp_path / "g" / "table.md").read_text() == table
  assert "| retrieval: classification needs the L2 normalisation (R@1) | held | not checked |" \
      in table
  shutil.copytree(workdir, b / "runs" / "proxy-plain")
  with pytest.raises(UserError, match="proxy:plain is finished in both"):
    grid.gather([a, b], tmp_path / "g")
  with pytest.raises(UserError, match="no runs/ folder"):
    grid.gather([a, tmp_path], tmp_path / "g")
