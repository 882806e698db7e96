"""The `musicrep` CLI: clear one-sentence errors, NaN stop, training on a folder with bad files,
and the README's first command (the demo) learning on the embedded corpus."""

import csv
import json
import pathlib

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import cli
from tests.helpers import TINY_CONFIG, run_cli


def _train(tmp_path, data_dir, *extra):
  return cli.main(["train", "--config", TINY_CONFIG, "--workdir", str(tmp_path / "wd"),
                   "--data-dir", str(data_dir), *extra])


def _error_line(capsys) -> str:
  err = capsys.readouterr().err
  assert "Traceback" not in err
  lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
  assert len(lines) == 1, err
  return lines[0]


def test_unknown_config_key_is_one_sentence(tmp_path, tiny_data_dir, capsys):
  assert _train(tmp_path, tiny_data_dir, "--config.optimizer.lerning_rate=0.1") == 2
  line = _error_line(capsys)
  assert "Unknown config key 'optimizer.lerning_rate'" in line and "learning_rate" in line


def test_bad_config_value_names_the_key(tmp_path, tiny_data_dir, capsys):
  assert _train(tmp_path, tiny_data_dir, "--config.batch_size=-4") == 2
  assert "config.batch_size must be a positive number" in _error_line(capsys)
  assert _train(tmp_path, tiny_data_dir, "--config.batch_size=abc") == 2
  assert "--config.batch_size=abc" in _error_line(capsys)


def test_missing_data_dir_is_one_sentence(tmp_path, capsys):
  assert _train(tmp_path, tmp_path / "nowhere") == 2
  line = _error_line(capsys)
  assert "nowhere" in line and "does not exist" in line


def test_sample_rate_mismatch_is_caught(tmp_path, tiny_data_dir, capsys):
  assert _train(tmp_path, tiny_data_dir, "--config.data.sample_rate=22050") == 2
  line = _error_line(capsys)
  assert "16000" in line and "22050" in line


def test_eval_of_a_non_workdir_is_one_sentence(tmp_path, capsys):
  assert cli.main(["eval", "--workdir", str(tmp_path)]) == 2
  assert "not a training workdir" in _error_line(capsys)


def test_nan_loss_stops_the_run_with_the_step(tmp_path, tiny_data_dir, capsys):
  assert _train(tmp_path, tiny_data_dir, "--config.optimizer.learning_rate=1e30",
                "--config.optimizer.schedule=constant") == 2
  line = _error_line(capsys)
  assert "NaN or infinite at step" in line and "learning_rate" in line
  # No checkpoint holds the diverged parameters.
  assert not any((tmp_path / "wd" / "checkpoints").glob("*/commit_success.txt"))


def _tone(freq, seconds, rate, stereo=False):
  t = np.arange(int(seconds * rate)) / rate
  x = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
  return np.stack([x, x], axis=1) if stereo else x


def test_folder_with_corrupt_empty_and_short_files_builds_reports_and_trains(tmp_path, capsys):
  audio = tmp_path / "audio"
  audio.mkdir()
  rows = []
  rng = np.random.default_rng(0)
  for i in range(24):
    freq, tag = (220.0, "low") if i % 2 else (1760.0, "high")
    rate = (16000, 22050, 44100)[i % 3]
    name = f"song{i:02d}.{'flac' if i % 4 == 0 else 'wav'}"
    sf.write(audio / name, _tone(freq * (1 + 0.05 * rng.random()), 2.0, rate, stereo=i % 5 == 0),
             rate)
    rows.append({"path": name, "tags": tag, "artist": f"a{i % 6}", "track": f"t{i}"})
  (audio / "corrupt.wav").write_bytes(rng.bytes(3000))
  (audio / "empty.wav").write_bytes(b"")
  sf.write(audio / "short.wav", _tone(440.0, 0.2, 16000), 16000)
  for name in ("corrupt.wav", "empty.wav", "short.wav"):
    rows.append({"path": name, "tags": "low", "artist": "a0", "track": name})
  manifest = tmp_path / "manifest.csv"
  with open(manifest, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["path", "tags", "artist", "track"])
    writer.writeheader()
    writer.writerows(rows)

  out = tmp_path / "shards"
  assert cli.main(["prepare", "folder", "--audio-dir", str(audio), "--manifest", str(manifest),
                   "--out", str(out), "--sample-rate", "16000"]) == 0
  report = json.loads((out / "prepare_report.json").read_text())
  skipped = {pathlib.Path(s["path"]).name for s in report["skipped"]}
  assert skipped == {"corrupt.wav", "empty.wav", "short.wav"}
  assert report["seen"] == 27 and report["written"] == 24 and report["seen"] == (
      report["written"] + len(report["skipped"]))

  # Whatever the hash split gave each split, a tiny run trains and evaluates on the rest.
  assert _train(tmp_path, out, "--config.num_train_steps=6", "--config.eval_every=6",
                "--config.checkpoint_every=6", "--config.batch_size=8") == 0
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert summary["step"] == 6


@pytest.mark.slow
def test_readme_demo_learns_well_above_chance(tmp_path):
  """The README's first command: `--config demo` (the packaged configs/demo.py) on the embedded
  corpus, then `musicrep eval`."""
  workdir = tmp_path / "demo"
  proc = run_cli(["train", "--config", "demo", "--workdir", str(workdir)],
                 timeout=1200)
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["split"] == "test" and result["compilations"] == 1
  assert result["roc_auc"] >= DEMO_MIN_ROC_AUC, result
  assert result["pr_auc"] >= DEMO_MIN_PR_AUC, result
  assert "Held-out test split" in proc.stdout and "TensorBoard" in proc.stdout
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))

  evaluated = run_cli(["eval", "--workdir", str(workdir), "--split", "test"])
  again = json.loads(evaluated.stdout.strip().splitlines()[-1])
  assert again["clips"] == result["clips"]
  assert abs(again["roc_auc"] - result["roc_auc"]) < 1e-6


# Chance is 0.5 ROC-AUC and the tag frequency (~0.2) PR-AUC. Set from measured demo runs.
DEMO_MIN_ROC_AUC = 0.75
DEMO_MIN_PR_AUC = 0.40
