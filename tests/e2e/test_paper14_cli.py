"""`musicrep compare-paper14` end to end from the CLI at tiny size on the real-data layout (the
MSD miniature of ``msd_dims_shards``: real mp3 previews, paper 14's genre / mood / instrument /
era tag groups, estimated tempi): every one of the 8 cells trains on it, the table with the
paper's four tasks as columns, the CSV, the plot, the same report gathered (--gather) from the
finished cells, and the benchmark reusing the cells.
(The grid's cells, configs and runner: tests/unit/systems/paper14/test_grid.py.)"""

import csv
import json
import math

import pytest

from musicrep_jax.systems.paper14 import grid
from tests.helpers import run_cli

DIMS = '"tag:genre","tag:mood","tag:instrument","tag:era"'
# The tiny cells are the runlocal ones (tempo in era's place: the embedded corpus has no era),
# here with the paper's four tag dimensions of the MSD miniature.
MSD_ARGS = [f"--config.task.kwargs.labels=({DIMS})", f"--config.task.kwargs.eval_labels=({DIMS})",
            "--config.data.sample_rate=16000"]


@pytest.mark.slow
def test_compare_paper14_cli_writes_table_and_plots(msd_dims_shards, tmp_path):
  out = tmp_path / "cmp"
  proc = run_cli(["compare-paper14", "--out", str(out), "--size", "tiny", "--steps", "8",
                  "--evals", "2", "--data-dir", str(msd_dims_shards)] + MSD_ARGS, timeout=900)
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert summary["cells"] == len(grid.GRID) == 8
  for cell in grid.GRID:  # Every cell trained on the MSD miniature.
    info = json.loads((out / "runs" / "-".join(cell) / "run_info.json").read_text())
    assert info["data_dir"] == str(msd_dims_shards), (cell, info.get("data_dir"))
  header = (out / "table.md").read_text().splitlines()
  columns = next(line for line in header if line.startswith("| model"))
  for task in ("time:", "retrieval: R@1", "tagging: ROC-AUC", "triplet: overall"):
    assert task in columns
  with open(out / "table.csv") as f:
    rows = list(csv.DictReader(f))
  assert [(r["model"], r["disentangled"]) for r in rows] == [
      ("triplet", "no"), ("triplet", "yes"), ("triplet + track", "yes"), ("proxy", "no"),
      ("proxy", "yes"), ("classification + no L2", "no"), ("classification", "no"),
      ("classification", "yes")]
  for row in rows:
    for key in ("R@1", "R@8", "roc_auc", "overall_triplet_acc", "train_s", "compile_s"):
      assert math.isfinite(float(row[key])), (row["model"], key, row[key])
    assert 0.0 <= float(row["R@1"]) <= float(row["R@8"]) <= 1.0
    assert float(row["compile_s"]) > 0 and float(row["train_s"]) > 0
    assert math.isfinite(float(row["overall_sub_triplet_acc"])) == (row["disentangled"] == "yes")
  baseline = rows[6]
  assert float(baseline["time_ratio"]) == 1.0 and float(baseline["step_time_ratio"]) == 1.0
  png = (out / "plots" / "metric_vs_time.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
  results = json.loads((out / "results.json").read_text())
  for cell in results:
    assert len(cell["curves"]["target"]["seconds"]) == 2
    assert cell["curves"]["target"]["seconds"] == sorted(cell["curves"]["target"]["seconds"])
  # The report gathered from the finished cells, without training, is the same.
  proc = run_cli(["compare-paper14", "--out", str(tmp_path / "gathered"), "--gather", str(out)])
  assert json.loads(proc.stdout.strip().splitlines()[-1])["cells"] == 8 and "===" not in proc.stdout
  assert (tmp_path / "gathered" / "table.md").read_text() == (out / "table.md").read_text()
  assert "### The poster's orderings, checked" in (out / "table.md").read_text()
  # The benchmark reuses the finished cells and writes its section and plot.
  from musicrep_jax.bench import paper14_bench

  doc = tmp_path / "benchmarks.md"
  doc.write_text("# Benchmarks\n\nkept text\n")
  bench_args = ["--out", str(out), "--size", "tiny", "--steps", "8", "--evals", "2",
                "--data-dir", str(msd_dims_shards), "--write-doc", "--doc", str(doc)] + MSD_ARGS
  assert paper14_bench.main(bench_args)["cells"] == 8
  paper14_bench.main(bench_args)
  text = doc.read_text()
  assert "kept text" in text and text.count(f"bench:{paper14_bench.SECTION}:begin") == 1
  assert "| classification | yes | no |" in text and "- Machine: " in text
  assert (tmp_path / "plots" / paper14_bench.PLOT_NAME).read_bytes() == png
