"""Paper 14's grid (``systems/paper14/grid.py``): cells, their configs and the registered runner.
(`musicrep compare-paper14` end to end from the CLI: tests/e2e/test_paper14_cli.py.)"""

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
