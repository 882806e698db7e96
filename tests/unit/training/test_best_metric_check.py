"""``config.checkpoint.best_metric`` must be a metric the run's evaluators report (issue 17): a
name they do not report is refused before the workdir is written, with one line listing the
names they do report (it used to fail after the first evaluation)."""

from __future__ import annotations

from musicrep_jax import cli
from tests.helpers import TINY_CONFIG


def test_unreported_best_metric_is_refused_before_the_workdir_is_written(tiny_data_dir,
                                                                          tmp_path, capsys):
  workdir = tmp_path / "wd"
  code = cli.main(["train", "--config", TINY_CONFIG, "--workdir", str(workdir), "--data-dir",
                   str(tiny_data_dir), "--config.checkpoint.best_metric=rocauc"])
  err = capsys.readouterr().err
  assert code == 2 and "Traceback" not in err, err
  line, = [l for l in err.splitlines() if l.startswith("error:")]
  assert "config.checkpoint.best_metric='rocauc' is not a metric" in line, line
  # The tagging evaluator's names, from trainer.reported_metrics.
  assert "choose one of clips, loss, " in line and "pr_auc, roc_auc." in line, line
  assert "evaluators (tagging)" in line, line
  assert not workdir.exists()
