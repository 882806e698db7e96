"""`musicrep compare`'s pieces (``systems/compare.py``, ``training/run_record.py``): targets,
config specs with their own overrides, the t-interval, one run's row from its records, the
per-config summary, reuse of finished runs and the refusal to mix hardware. (The command end
to end: tests/e2e/test_compare_cli.py.)"""

import json
import math

import pytest
from scipy import stats

from musicrep_jax import config_loading
from musicrep_jax.errors import UserError
from musicrep_jax.systems import compare
from musicrep_jax.training import run_record


def test_parse_target_infers_the_direction_from_the_metric():
  assert compare.parse_target("roc_auc=0.8") == {"metric": "roc_auc", "value": 0.8,
                                                 "mode": "max", "text": "roc_auc>=0.8"}
  assert compare.parse_target("loss=0.2")["mode"] == "min"
  assert compare.parse_target("overall/triplet_acc>=0.7")["metric"] == "overall/triplet_acc"
  assert compare.parse_target("roc_auc<=0.5")["mode"] == "min"
  assert compare.parse_target(None) is None
  for bad in ("roc_auc", "roc_auc=high", "=0.5", "roc_auc=nan"):
    with pytest.raises(UserError, match="--target"):
      compare.parse_target(bad)


def test_specs_carry_their_own_overrides_and_name_their_workdirs():
  assert compare.parse_spec("demo:runlocal@batch_size=16@config.seed=3") == (
      "demo:runlocal", ["--config.batch_size=16", "--config.seed=3"])
  with pytest.raises(UserError, match="is not KEY=VALUE"):
    compare.parse_spec("demo@batch_size")
  assert compare.run_name("demo:runlocal", [], 1) == "demo-runlocal-seed1"
  assert compare.run_name("configs/x.py", [], 0) == "x-seed0"
  a = compare.run_name("demo", ["--config.batch_size=16"], 0)
  assert a.startswith("demo-") and a.endswith("-seed0")
  assert a == compare.run_name("demo", ["--config.batch_size=16"], 0)
  assert a != compare.run_name("demo", ["--config.batch_size=8"], 0)


def test_t_interval_is_students():
  values = [2.0, 3.0, 7.0]
  mean, half = compare.t_interval(values)
  low, high = stats.t.interval(0.95, 2, loc=4.0, scale=stats.sem(values))
  assert mean == pytest.approx(4.0) and half == pytest.approx((high - low) / 2)
  assert compare.t_interval([5.0, float("nan")])[0] == 5.0
  assert math.isnan(compare.t_interval([5.0])[1])
  assert all(math.isnan(x) for x in compare.t_interval([]))


def test_only_trainer_configs_are_compared():
  assert compare.run_config("demo:runlocal", ["--config.batch_size=4"], 7).seed == 7
  with pytest.raises(UserError, match="runs the 'word2vec' runner"):
    compare.run_config("word2vec:runlocal", [], 0)


def _finished_run(workdir, config, records, timing, hardware=None):
  workdir.mkdir(parents=True)
  (workdir / "config.json").write_text(config_loading.to_json(config))
  (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  (workdir / "timing.json").write_text(json.dumps(timing))
  summary = {"peak_rss_mb": 900.0, "device_peak_mb": float("nan"),
             "hardware": hardware or {"platform": "cpu", "device_kind": "cpu",
                                      "device_count": 1, "process_count": 1, "cpu": "X",
                                      "cpus": 2},
             "software": {"python": "3.11", "jax": "0.7"}}
  (workdir / run_record.SUMMARY).write_text(json.dumps(summary))


def test_run_row_reads_throughput_time_to_target_and_memory(tmp_path):
  config = compare.run_config("demo:runlocal", ["--config.batch_size=8"], 0)
  records = [{"split": "train", "step": s, "loss": 1.0, "steps_per_s": 4.0} for s in (1, 5, 9)]
  records += [{"split": "validation", "step": s, "roc_auc": a} for s, a in ((5, 0.6), (9, 0.8))]
  records.append({"split": "test", "step": 9, "roc_auc": 0.75})
  _finished_run(tmp_path / "w", config, records,
                {"train_s": 2.0, "compile_s": 3.0, "eval_s": 1.0, "checkpoint_s": 0.5,
                 "steps": 9, "train_steps": 8})
  row = compare.run_row(tmp_path / "w", compare.parse_target("roc_auc=0.7"), "roc_auc")
  assert (row["steps_per_s"], row["samples_per_s"]) == (4.0, 32.0)
  assert (row["steps_to_target"], row["s_to_target"]) == (9.0, 2.0)  # 8 steps at 4/s.
  assert (row["val_roc_auc"], row["test_roc_auc"], row["peak_rss_mb"]) == (0.8, 0.75, 900.0)
  assert row["cpu"] == "X" and row["jax"] == "0.7"
  assert row["curves"]["roc_auc"]["validation"] == [[5.0, 9.0], [1.0, 2.0], [0.6, 0.8]]


def test_summary_and_table_give_mean_and_interval_per_config():
  rows = [{"config": c, "overrides": "", "seed": s, "steps_per_s": v, "s_to_target": t,
           "platform": "cpu", "device_kind": "cpu", "device_count": 1, "cpu": "X", "cpus": 2}
          for c, s, v, t in (("a", 0, 1.0, 5.0), ("a", 1, 3.0, float("nan")),
                             ("b", 0, 10.0, 1.0))]
  summary = compare.summarize(rows, ["steps_per_s", "s_to_target"])
  assert [(e["config"], e["seeds"], e["reached"]) for e in summary] == [("a", 2, 1), ("b", 1, 1)]
  assert summary[0]["steps_per_s"] == 2.0 and summary[0]["s_to_target"] == 5.0
  assert summary[0]["steps_per_s_ci"] == pytest.approx(stats.t.ppf(0.975, 1) * 1.0)
  table = compare.markdown(rows, summary, compare.parse_target("roc_auc=0.5"), "roc_auc")
  assert "| a | 2 | 2 ± 12.706 |" in table and "| 1/2 |" in table
  assert "- Hardware: cpu x1 (X, 2 CPUs)" in table


def test_finished_runs_are_reused_only_with_their_config(tmp_path):
  config = compare.run_config("demo:runlocal", [], 0)
  workdir = tmp_path / "w"
  assert not run_record.check_finished(workdir, config)
  _finished_run(workdir, config, [], {})
  config.progress_bar = False  # How it prints: not a difference.
  assert run_record.check_finished(workdir, config)
  other = compare.run_config("demo:runlocal", ["--config.batch_size=4"], 0)
  with pytest.raises(UserError, match=r"finished run of another config \(batch_size: 32 -> 4\)"):
    run_record.check_finished(workdir, other)


def test_rows_from_different_hardware_are_refused(tmp_path):
  row = {"platform": "cpu", "device_kind": "cpu", "device_count": 1, "cpu": "X", "cpus": 2}
  compare._refuse_mixed([row, dict(row)], tmp_path)
  with pytest.raises(UserError, match=r"different hardware \(cpu x1 \(X, 2 CPUs\); "
                                      r"cpu x1 \(X, 4 CPUs\)\).*--allow-mixed-hardware"):
    compare._refuse_mixed([row, dict(row, cpus=4)], tmp_path)
  assert compare.read_rows(tmp_path) == []
  (tmp_path / "compare.json").write_text("{")
  with pytest.raises(UserError, match="compare.json is unreadable"):
    compare.read_rows(tmp_path)
