"""`musicrep compare` end to end (issue 16, item 6): demo:runlocal and resemul_mtat:runlocal over
two seeds on the test shards, shrunk to six steps of 3^4 models (their own `@` overrides); the
table, CSV, JSON and plot; the curves.png each training
writes (issue 20, item 5) and `musicrep plot` over two workdirs; the refusal to mix hardware in
one table, and its override on a rerun that reuses every finished run."""

import csv
import json
import math
import pathlib
import platform

import jax
import pytest

from tests.helpers import run_cli

PNG = b"\x89PNG\r\n\x1a\n"
DEMO = "demo:runlocal@model.kwargs.n=4@model.kwargs.channels=(8,8,8,16,16,16)"
RESEMUL = "resemul_mtat:runlocal@model.kwargs.n=4@model.kwargs.channels=(8,8,16,16,16)"
SMALL = ["--config.num_train_steps=6", "--config.log_every=2", "--config.eval_every=3",
         "--config.checkpoint_every=6", "--config.batch_size=8",
         "--config.data.segments_per_clip=1", "--config.progress_bar=false"]


def _png_size(path) -> tuple:
  data = path.read_bytes()
  assert data[:8] == PNG and len(data) > 5_000, path
  return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_compare_two_configs_over_two_seeds(tmp_path, tiny_data_dir):
  out = tmp_path / "cmp"
  args = ["compare", DEMO, RESEMUL, "--seeds", "2", "--out", str(out), "--data-dir",
          str(tiny_data_dir), "--target", "roc_auc=0.3", *SMALL]
  summary = json.loads(run_cli(args).stdout.strip().splitlines()[-1])
  assert (summary["runs"], summary["configs"], summary["trained"]) == (4, 2, 4)

  with open(out / "compare.csv") as f:
    rows = list(csv.DictReader(f))
  assert [(r["config"], r["seed"]) for r in rows] == [
      (DEMO, "0"), (DEMO, "1"), (RESEMUL, "0"), (RESEMUL, "1")]
  for row in rows:
    steps_per_s = float(row["steps_per_s"])
    assert int(row["steps"]) == 6 and int(row["batch_size"]) == 8
    assert math.isfinite(steps_per_s) and steps_per_s > 0
    assert float(row["samples_per_s"]) == pytest.approx(8 * steps_per_s)
    assert float(row["compile_s"]) > 0 and float(row["train_s"]) > 0
    assert float(row["peak_rss_mb"]) > 100  # JAX alone takes more.
    assert 0.0 <= float(row["val_roc_auc"]) <= 1.0 and 0.0 <= float(row["test_roc_auc"]) <= 1.0
    assert (row["platform"], row["device_kind"], row["device_count"]) == ("cpu", "cpu", "1")
    assert (row["python"], row["jax"]) == (platform.python_version(), jax.__version__)
  assert rows[0]["workdir"] != rows[1]["workdir"]
  seeds = {json.loads((tmp_path / "cmp" / "runs" / r["run"] / "config.json").read_text())["seed"]
           for r in rows}
  assert seeds == {0, 1}

  report = json.loads((out / "compare.json").read_text())
  assert [(e["config"], e["seeds"]) for e in report["summary"]] == [(DEMO, 2), (RESEMUL, 2)]
  assert all(math.isfinite(e["steps_per_s_ci"]) for e in report["summary"])
  table = (out / "compare.md").read_text()
  assert "Mean ± 95 % t-interval over seeds" in table and "- Hardware: cpu x1" in table
  assert sum(line.startswith(f"| {DEMO} |") for line in table.splitlines()) == 3  # Mean + 2.
  width, height = _png_size(out / "compare.png")
  assert width > height > 100

  # Each training wrote its curves.png at evaluations; `musicrep plot` overlays two runs.
  workdirs = [str(out / "runs" / r["run"]) for r in rows[::2]]
  for workdir in workdirs:
    _png_size(pathlib.Path(workdir) / "curves.png")
  plotted = json.loads(run_cli(["plot", *workdirs, "--out", str(tmp_path / "two.png"),
                                "--metric", "loss", "--metric", "roc_auc"]
                               ).stdout.strip().splitlines()[-1])
  assert (plotted["runs"], plotted["metrics"]) == (2, "loss,roc_auc")
  _png_size(tmp_path / "two.png")

  # A row from other hardware in --out: a new run is refused before it trains (one line) ...
  report["runs"].append(dict(report["runs"][0], workdir="/elsewhere/run", cpu="Other CPU 9000"))
  (out / "compare.json").write_text(json.dumps(report))
  refused = run_cli([*args[:3], "--seeds", "3", *args[5:]], check=False)
  assert refused.returncode == 2 and "Traceback" not in refused.stderr
  error, = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
  assert "different hardware" in error and "Other CPU 9000" in error
  assert "--allow-mixed-hardware" in error
  assert not (out / "runs" / rows[0]["run"].replace("seed0", "seed2")).exists()
  # ... and allowed with --allow-mixed-hardware; a rerun trains nothing: every finished run is
  # reused and its row read again from its records.
  mixed = json.loads(run_cli([*args, "--allow-mixed-hardware"]).stdout.strip().splitlines()[-1])
  assert (mixed["trained"], mixed["reused"], mixed["runs"]) == (0, 4, 5)
  assert "MIXED" in (out / "compare.md").read_text()
  with open(out / "compare.csv") as f:
    again = list(csv.DictReader(f))
  assert again[0]["cpu"] == "Other CPU 9000" and again[1:] == rows
