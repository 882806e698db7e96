"""DCASE 2017 Task 4 (paper 6's journal-code task) on a miniature copy in the official layout:
real wav files (44.1 kHz stereo, written with soundfile), the three tab-separated weak-label lists,
a missing and a corrupt file. Checks the journal split rule, the multi-hot labels, the paper's
counts checked before anything is decoded (and ``--allow-count-mismatch``), then prepares through
the CLI and trains the paper-6 config (narrowed) for a few steps with the F1 evaluator."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import cli
from musicrep_jax.data import audio_io
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.data_pipelines import dataset_layouts
from musicrep_jax.data_pipelines import dcase2017_task4_builder as task4
from musicrep_jax.errors import UserError

RATE, SECONDS = 44100, 1.5
# Most labels from five classes, so that 10 % per class holds out one or two rows (19 rows of
# "Car" -> round(1.9) = 2, 11 of the others -> 1).
MAIN = task4.CLASSES[:5]


def clip_name(i: int) -> str:
  return f"v_id{i:03d}_{10 * i:.3f}_{10 * i + 10:.3f}.wav"  # A YouTube id with an underscore.


def labels_of(i: int) -> tuple[str, ...]:
  extra = (task4.CLASSES[11],) if i % 3 == 0 else ()  # "Car": 2nd label of every 3rd clip.
  return (MAIN[i % 5],) + extra


DEV_TRAINING = list(range(0, 48))
DEV_TESTING = list(range(48, 56))
EVALUATION = list(range(56, 62))
MISSING = 7  # Listed in the training list, not on disk.
CORRUPT = 58  # An evaluation clip with garbage bytes.


def write_task4(root) -> None:
  """The official layout: three lists at the root, the audio in the three set folders."""
  rng = np.random.default_rng(0)
  t = np.arange(int(RATE * SECONDS)) / RATE
  for name, clips in (("training", DEV_TRAINING), ("testing", DEV_TESTING),
                      ("evaluation", EVALUATION)):
    list_name, folder = task4.SETS[name]
    (root / folder).mkdir(parents=True)
    lines = []
    for i in clips:
      lines += [f"{clip_name(i)}\t{10 * i:.3f}\t{10 * i + 10:.3f}\t{label}"
                for label in labels_of(i)]
      path = root / folder / f"Y{clip_name(i)}"
      if i == CORRUPT:
        path.write_bytes(rng.bytes(4000))
      elif i != MISSING:
        wave = 0.2 * np.sin(2 * np.pi * (200 + 7 * i) * t)
        sf.write(path, np.stack([wave, 0.5 * wave], axis=1).astype(np.float32), RATE)
    (root / list_name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def task4_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("dcase2017_task4")
  write_task4(root)
  return root


def test_journal_split_labels_and_layout(task4_dir):
  manifest = task4.MusicrepDcase2017Task4.read_layout(str(task4_dir), "journal")
  assert manifest.tag_names == task4.CLASSES
  rows = {r.path.split("/")[-1]: r for r in manifest.rows}
  assert len(rows) == 62
  validation = {int(p[5:8]) for p, r in rows.items() if r.split == "validation"}
  assert {int(p[5:8]) for p, r in rows.items() if r.split == "test"} == set(EVALUATION)
  # Per class, round(0.1 n) of its n development rows are held out, a clip with all its labels:
  # 19 "Car" rows (the 2nd label of every 3rd clip) -> 2, 11 rows of each main class -> 1; the
  # draws may coincide on a two-label clip, so 5..7 clips.
  development = DEV_TRAINING + DEV_TESTING
  held = {c: sum(c in labels_of(i) for i in validation) for c in MAIN + (task4.CLASSES[11],)}
  assert all(held[c] >= 1 for c in MAIN) and held[task4.CLASSES[11]] >= 2
  assert 5 <= len(validation) <= 7 and validation <= set(development)
  for name, r in rows.items():
    i = int(name[5:8])
    assert r.tags == tuple(c for c in task4.CLASSES if c in labels_of(i))
    assert manifest.id_names["track"][r.track] == f"v_id{i:03d}"
  # The rule, not luck: another seed holds out other clips, and the split is deterministic.
  again = task4.MusicrepDcase2017Task4.read_layout(str(task4_dir), "journal")
  assert [r.split for r in again.rows] == [r.split for r in manifest.rows]
  other = task4.MusicrepDcase2017Task4.read_layout(str(task4_dir), "journal", validation_seed=7)
  assert [r.split for r in other.rows] != [r.split for r in manifest.rows]


def test_journal_validation_is_pandas_sample_per_class():
  """``DataFrame.sample(frac=0.1, random_state=123)`` draws ``RandomState(123).choice(n,
  round(0.1 n), replace=False)`` row positions; written out here for two classes."""
  rows = [(f"a{i}", "Car") for i in range(25)] + [(f"b{i}", "Bus") for i in range(14)]
  want = {f"a{i}" for i in np.random.RandomState(123).permutation(25)[:2]}  # round(2.5) = 2
  want |= {f"b{i}" for i in np.random.RandomState(123).permutation(14)[:1]}
  assert task4.journal_validation(rows) == want


def test_raw_subfolder_layout_of_the_journal_code(task4_dir, tmp_path):
  """tae-jun/sampleaudio keeps the same lists and folders under raw/."""
  shutil.copytree(task4_dir, tmp_path / "raw")
  manifest = task4.MusicrepDcase2017Task4.read_layout(str(tmp_path), "journal")
  assert len(manifest.rows) == 62
  on_disk = [os.path.exists(r.full_path) for r in manifest.rows]
  assert sum(on_disk) == 61 and all(r.full_path.startswith(str(tmp_path / "raw"))
                                    for r in manifest.rows)


def test_layout_errors(task4_dir, tmp_path):
  with pytest.raises(UserError, match="groundtruth_weak_label_training_set.csv was not found"):
    task4.MusicrepDcase2017Task4.read_layout(str(tmp_path), "journal")
  bad = tmp_path / "bad.csv"
  bad.write_text("x_0.000_10.000.wav\t0.000\t10.000\tTractor\n")
  with pytest.raises(UserError, match="Line 1 .* 'Tractor', not one of the 17"):
    task4.read_weak_labels(str(bad))
  bad.write_text("x_0.000_10.000.wav 0.000 10.000 Car\n")
  with pytest.raises(UserError, match="Line 1 .* 1 tab-separated field"):
    task4.read_weak_labels(str(bad))


def test_cli_counts_checked_before_decoding_then_allow_count_mismatch(task4_dir, tmp_path, capsys,
                                                                      monkeypatch):
  out = tmp_path / "shards"
  prepare = ["prepare", "dcase2017_task4", "--manual-dir", str(task4_dir), "--out", str(out),
             "--workers", "2"]
  decoded = []
  real_load = audio_io.load_audio
  monkeypatch.setattr(audio_io, "load_audio", lambda *a: decoded.append(a) or real_load(*a))
  assert cli.main(prepare) == 2  # The paper's 46,042 / 5,618 / 1,103 are not there.
  err = capsys.readouterr().err
  assert "train: " in err and "the paper's split has 46,042" in err and "1,103" in err
  assert "--allow-count-mismatch" in err and decoded == []
  assert cli.main(prepare + ["--allow-count-mismatch"]) == 0
  assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["written"] == 60
  assert len(decoded) == 60  # Each usable file once (the header probe rejects the corrupt one).
  report = json.loads((out / "prepare_report.json").read_text())
  assert any("the paper's split has 46,042" in w for w in report["warnings"])
  assert report["seen"] == 62
  assert {s["reason"].split()[0] for s in report["skipped"]} == {"missing", "corrupt"}
  shards = shards_lib.open_shards(out, expected_sample_rate=22050)
  assert tuple(shards.tag_names) == task4.CLASSES
  assert shards.split_sizes["test"] == len(EVALUATION) - 1
  record = shards.source("test")[0]
  i = int(record["path"].decode().split("/")[-1][5:8])
  assert [task4.CLASSES[k] for k in np.flatnonzero(record["tags"])] == list(labels_of(i))
  assert len(record["audio"]) == int(SECONDS * 22050)
  peak = np.abs(record["audio"]).max() / 32768.0  # Mono = mean of 0.2 and 0.1 amplitudes.
  assert peak == pytest.approx(0.15, abs=0.01)


@pytest.mark.slow
def test_paper6_config_trains_on_the_miniature_task4(task4_dir, tmp_path, capsys):
  """Paper 6's config (Task 4 by default), narrowed to 5 blocks on 2,187-sample segments with 4
  channels: 4 SGD steps, then validation and test with both evaluators, through the CLI."""
  out, workdir = tmp_path / "shards", tmp_path / "run"
  dataset_layouts.prepare_layout(task4.MusicrepDcase2017Task4, out, manual_dir=str(task4_dir),
                                 expected_counts=None, workers=2, progress=False)
  overrides = ["--config.model.kwargs.init_features=4", "--config.model.kwargs.n=5",
               "--config.model.kwargs.input_samples=2187", "--config.batch_size=4",
               "--config.num_train_steps=4", "--config.eval_every=4", "--config.log_every=2",
               "--config.data.num_workers=0", "--config.progress_bar=false"]
  assert cli.main(["train", "--config", "configs/samplecnn_dcase2017.py:basic", "--data-dir",
                   str(out), "--workdir", str(workdir), *overrides]) == 0
  trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert trained["split"] == "test" and trained["clips"] == len(EVALUATION) - 1
  assert trained["compilations"] == 1
  for key in ("f1", "precision", "recall", "roc_auc", "pr_auc", "loss"):
    assert np.isfinite(trained[key]), (key, trained)
  for key in ("f1", "precision", "recall"):
    assert 0.0 <= trained[key] <= 1.0, (key, trained)
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert any(r.get("split") == "validation" and "f1" in r for r in rows)
