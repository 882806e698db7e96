"""The writing commands with a ``gs://`` output, against the GCS API emulator on 127.0.0.1
(``gcs_emulator`` in tests/conftest.py): ``export --out``, ``embed --out``, ``word2vec --out``,
``extract-features --out`` then ``aggregate --features``, and ``ivector fit|eval --workdir``.
Each writes locally and copies up with ``storage.local_dir``; each result equals the same
command's local run. The model is an untrained tiny workdir (``tests.helpers.make_workdir``), so
nothing here trains a network. (Training into gs://: tests/e2e/test_gcs_workdir.py.)
"""

import io
import json

import numpy as np
import pytest

from musicrep_jax import cli, storage
from musicrep_jax.serving.export import exporter
from tests.helpers import MULTISCALE_TINY_CONFIG, REPO, make_workdir
from tests.unit.serving.test_embed import MODEL, SR, _write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_data_dir):
  return make_workdir(tmp_path_factory.mktemp("gcs_commands") / "wd", tiny_data_dir, **MODEL)


def _main(args, capsys, stderr: list | None = None) -> dict:
  """Runs ``musicrep ARGS`` in this process; its JSON line (its stderr appended to ``stderr``)."""
  capsys.readouterr()
  assert cli.main([str(a) for a in args]) == 0
  out, err = capsys.readouterr()
  assert "gs:" not in {p.name for p in REPO.iterdir()}, "a gs:// path became a local folder"
  if stderr is not None:
    stderr.append(err)
  return json.loads(out.strip().splitlines()[-1])


def _files(remote: str) -> list[str]:
  """The files under ``remote``, relative (a copy down: epath has no recursive glob on GCS)."""
  with storage.local_dir(remote, download=True, upload=False) as copy:
    return sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())


def _npy(path) -> np.ndarray:
  return np.load(io.BytesIO(path.read_bytes()))


def test_export_uploads_checked_files_equal_to_a_local_export(
    gcs_emulator, workdir, tiny_data_dir, tmp_path, capsys):
  del gcs_emulator
  pytest.importorskip("torch")
  pytest.importorskip("safetensors")
  args = ["export", "--workdir", workdir, "--data-dir", tiny_data_dir, "--format", "safetensors",
          "--format", "stablehlo", "--out"]
  remote = "gs://bucket/cmd/export"
  summary = _main(args + [remote], capsys)
  local = _main(args + [tmp_path / "export"], capsys)
  assert summary["out"] == remote
  for fmt in ("safetensors", "stablehlo"):  # The parity check ran before the upload.
    assert summary[f"{fmt}_rel_err"] == local[f"{fmt}_rel_err"] <= exporter.PARITY_TOLERANCE
  assert _files(remote) == ["export_info.json", "model.safetensors", "model.stablehlo"]
  info = json.loads((storage.as_path(remote) / "export_info.json").read_text())
  assert set(info["formats"]) == {"safetensors", "stablehlo"}
  for entry in info["formats"].values():
    assert all(r["ok"] for r in entry["parity"].values())
  # The same weights and header (the metadata's key order varies from one write to the next).
  from safetensors.numpy import load

  got = load((storage.as_path(remote) / "model.safetensors").read_bytes())
  want = load((tmp_path / "export" / "model.safetensors").read_bytes())
  assert sorted(got) == sorted(want) and len(got) > 10
  for name, array in want.items():
    np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_embed_to_a_bucket_equals_a_local_embed(gcs_emulator, workdir, tiny_data_dir, tmp_path,
                                                capsys):
  del gcs_emulator
  _write(tmp_path / "a.wav", 1.0, SR)
  _write(tmp_path / "b.wav", 0.7, 22050, seed=1)  # Resampled.
  (tmp_path / "c.m4a").write_bytes(b"not audio")  # Skipped, reported from the remote index.
  args = ["embed", tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.m4a", "--workdir",
          workdir, "--data-dir", tiny_data_dir, "--no-progress", "--out"]
  remote = "gs://bucket/cmd/emb"
  stderr = []
  summary = _main(args + [remote], capsys, stderr)
  local = _main(args + [tmp_path / "emb"], capsys)
  assert summary["out"] == remote and (summary["ok"], summary["skipped"]) == (2, 1)
  assert {k: v for k, v in summary.items() if k not in ("out", "wall_s", "realtime_x")} == {
      k: v for k, v in local.items() if k not in ("out", "wall_s", "realtime_x")}
  assert f"skipped {tmp_path / 'c.m4a'}: " in stderr[0]  # Read back from the uploaded index.
  assert _files(remote) == sorted(p.name for p in (tmp_path / "emb").iterdir())
  root = storage.as_path(remote)
  for name in ("embeddings.npy", "tag_scores.npy"):
    np.testing.assert_array_equal(_npy(root / name), np.load(tmp_path / "emb" / name))
  assert (root / "index.csv").read_text() == (tmp_path / "emb" / "index.csv").read_text()
  assert json.loads((root / "embed_info.json").read_text())["out"] == remote


def test_word2vec_to_a_bucket_equals_a_local_run(gcs_emulator, tmp_path, capsys):
  del gcs_emulator
  tiny = ["--config", "word2vec:runlocal", "--config.skipgram.epochs=1",
          "--config.music.repeats=1", "--config.general_text=none",
          "--config.music.corpus.num_clips=120", "--config.progress_bar=false"]
  remote = "gs://bucket/cmd/w2v"
  summary = _main(["word2vec", *tiny, "--out", remote], capsys)
  local = _main(["word2vec", *tiny, "--out", tmp_path / "w2v"], capsys)
  assert summary["vectors"] == f"{remote}/vectors.txt"
  assert summary["vocab_size"] == local["vocab_size"] > 0
  assert _files(remote) == ["summary.json", "vectors.txt"]
  root = storage.as_path(remote)
  assert (root / "vectors.txt").read_text() == (tmp_path / "w2v" / "vectors.txt").read_text()
  assert json.loads((root / "summary.json").read_text())["vectors"] == f"{remote}/vectors.txt"


def test_extract_features_and_aggregate_in_a_bucket_equal_local_ones(
    gcs_emulator, workdir, tiny_data_dir, tmp_path, capsys):
  del gcs_emulator
  remote, local = "gs://bucket/cmd/features", tmp_path / "features"
  for out in (remote, local):
    _main(["extract-features", "--workdir", workdir, "--data-dir", tiny_data_dir, "--out", out,
           "--batch-size", "16", "--max-segments", "2"], capsys)
  assert _files(remote) == sorted(p.name for p in local.iterdir())
  for name in ("train_features.npy", "test_labels.npy"):
    np.testing.assert_array_equal(_npy(storage.as_path(remote) / name), np.load(local / name))
  agg = ["aggregate", "--config", MULTISCALE_TINY_CONFIG, "--scales", "all", "--levels", "-1",
         "--config.classifier.trials=1", "--features"]
  summary = _main(agg + [remote], capsys)
  reference = _main(agg + [local], capsys)
  assert summary["results"] == f"{remote}/results.json"
  assert summary["roc_auc"] == pytest.approx(reference["roc_auc"], abs=1e-6)
  saved = json.loads((storage.as_path(remote) / "results.json").read_text())
  assert saved["selected"]["roc_auc"] == summary["roc_auc"]
  assert _files(remote) == sorted(p.name for p in local.iterdir())  # + results.json in both.
  assert "results.json" in _files(remote)


def test_ivector_fit_into_a_bucket_and_eval_from_it(gcs_emulator, tiny_data_dir, capsys):
  del gcs_emulator
  remote = "gs://bucket/cmd/ivector"
  small = ["--config.hybrid.enabled=false", "--config.ubm.num_components=4",
           "--config.ubm.num_iterations=1", "--config.ubm.iterations_per_split=1",
           "--config.tv.ivector_dim=4", "--config.tv.num_iterations=1",
           "--config.progress_bar=false"]
  fit = _main(["ivector", "fit", "--config", "configs/ivector_hybrid.py:runlocal", "--workdir",
               remote, "--data-dir", tiny_data_dir, *small], capsys)
  assert fit["workdir"] == remote
  assert _files(remote) == ["ivector/backend_ivector.npz", "ivector/history.json",
                            "ivector/tv.npz", "ivector/ubm.npz", "ivector_config.json",
                            "results.json"]
  again = _main(["ivector", "eval", "--workdir", remote, "--data-dir", tiny_data_dir], capsys)
  for key in ("ivector_accuracy", "clips", "chance"):
    assert again[key] == pytest.approx(fit[key], abs=1e-6), key


def test_compare_paper14_reads_a_finished_cell_and_writes_its_report_into_a_bucket(
    gcs_emulator, capsys):
  """A finished cell in the bucket (what the trainer leaves: summary.json, metrics.jsonl,
  timing.json; training into gs:// itself: tests/e2e/test_gcs_workdir.py) is reused, read from
  the bucket, and the tables, plot and results.json are uploaded."""
  del gcs_emulator
  remote = "gs://bucket/cmd/paper14"
  cell = storage.as_path(remote) / "runs" / "classification-plain"
  records = [{"split": "train", "step": s, "steps_per_s": 10.0, "loss": 1.0} for s in (1, 2, 4)]
  records += [{"split": "validation", "step": s, "overall/triplet_acc": a, "roc_auc": a}
              for s, a in ((2, 0.6), (4, 0.8))]
  records.append({"split": "test", "step": 4, "roc_auc": 0.75, "overall/triplet_acc": 0.7,
                  "overall/recall@1": 0.5})
  (cell / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  (cell / "timing.json").write_text(json.dumps({"train_s": 0.3, "compile_s": 2.0, "eval_s": 0.5,
                                                "steps": 4}))
  (cell / "summary.json").write_text("{}")
  summary = _main(["compare-paper14", "--out", remote, "--size", "tiny", "--cells",
                   "classification:plain"], capsys)
  assert summary == {"out": remote, "cells": 1, "table": f"{remote}/table.md",
                     "plot": f"{remote}/plots/metric_vs_time.png"}
  assert _files(remote) == ["plots/metric_vs_time.png", "results.json",
                            "runs/classification-plain/metrics.jsonl",
                            "runs/classification-plain/summary.json",
                            "runs/classification-plain/timing.json", "table.csv", "table.md"]
  rows = json.loads((storage.as_path(remote) / "results.json").read_text())
  assert [r["name"] for r in rows] == ["classification-plain"]
  assert (rows[0]["steps"], rows[0]["roc_auc"], rows[0]["R@1"]) == (4, 0.75, 0.5)
  assert "| classification |" in (storage.as_path(remote) / "table.md").read_text()


def test_multiscale_writes_extractors_features_and_results_into_a_bucket(
    gcs_emulator, tiny_data_dir, capsys):
  """Papers 2/3 end to end into gs:// (two extractors shrunk to 4 steps on the tiny shards):
  stage 1 through the trainer, stage 2's features and stage 3's results.json through
  ``storage.local_dir``."""
  del gcs_emulator
  remote = "gs://bucket/cmd/multiscale"
  small = [f"--config.extractors.{name}.{key}={value}" for name in ("frames18", "frames27")
           for key, value in (("num_train_steps", 4), ("eval_every", 4),
                              ("checkpoint_every", 4), ("log_every", 4), ("batch_size", 4))]
  summary = _main(["multiscale", "--config", MULTISCALE_TINY_CONFIG, "--workdir", remote,
                   "--data-dir", tiny_data_dir, "--config.classifier.max_epochs=3",
                   "--config.sweep=false", "--config.extraction.max_segments=1", *small], capsys)
  assert summary["results"] == f"{remote}/results.json" and summary["dims"] == 96
  for name in ("results.json", "features/features.json", "features/test_features.npy",
               "extractors/frames18/summary.json", "extractors/frames27/config.json"):
    assert (storage.as_path(remote) / name).is_file(), name
  results = json.loads((storage.as_path(remote) / "results.json").read_text())
  assert set(results["extractors"]) == {"frames18", "frames27"}
  assert _npy(storage.as_path(remote) / "features" / "test_features.npy").shape == (12, 96)
