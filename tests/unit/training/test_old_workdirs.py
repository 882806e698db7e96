"""Workdirs written before ``run_info.json`` existed (issue 17): they do not say what data they
were trained on, so ``eval``, ``export`` and ``embed`` without ``--data-dir`` give one line
saying to pass it (not a traceback or a shape error from Orbax). (With ``--data-dir`` such a
workdir, made by ``save_untrained_workdir``, is what tests/unit/serving/ restore throughout.)"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import cli
from musicrep_jax.data_pipelines import prepare
from tests.configs import tiny as tiny_config
from tests.helpers import save_untrained_workdir

SR = 16000


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
  """A folder of 8 one-second WAVs with two tags (the embedded corpus has more), prepared at
  16 kHz; -> (shards folder, one of the WAVs)."""
  root = tmp_path_factory.mktemp("old_workdirs")
  audio = root / "audio"
  audio.mkdir()
  rng = np.random.default_rng(0)
  rows = ["path,tags,split"]
  for i, split in enumerate(["train"] * 4 + ["validation"] * 2 + ["test"] * 2):
    sf.write(audio / f"{i}.wav", rng.uniform(-0.5, 0.5, SR).astype(np.float32), SR)
    rows.append(f"{i}.wav,{('rock', 'jazz')[i % 2]},{split}")
  (root / "tags.csv").write_text("\n".join(rows) + "\n")
  prepare.prepare_folder(root / "shards", audio_dir=audio, manifest=root / "tags.csv",
                         sample_rate=SR, workers=1, progress=False)
  return root / "shards", audio / "0.wav"


@pytest.fixture(scope="module")
def old_workdir(folder_data, tmp_path_factory):
  """An untrained tiny workdir on the two-tag folder, without ``run_info.json``, whose config
  names the embedded corpus (a small one, rendered in a second when asked for)."""
  config = tiny_config.get_config()
  config.data.synthetic.num_clips, config.data.synthetic.clip_seconds = 60, 1.0
  workdir = save_untrained_workdir(tmp_path_factory.mktemp("old") / "wd", config, folder_data[0])
  assert not (workdir / "run_info.json").exists()
  return workdir


def _one_error_line(capsys, code) -> str:
  err = capsys.readouterr().err
  assert code == 2 and "Traceback" not in err, err
  line, = [l for l in err.splitlines() if l.startswith("error:")]
  return line


def _commands(workdir, out, wav):
  return {"eval": ["eval", "--workdir", str(workdir)],
          "export": ["export", "--workdir", str(workdir), "--out", str(out / "export"),
                     "--format", "stablehlo"],
          "embed": ["embed", str(wav), "--workdir", str(workdir), "--out", str(out / "embed"),
                    "--no-progress"]}


def test_old_workdir_of_prepared_shards_asks_for_data_dir(old_workdir, folder_data, tmp_path,
                                                          capsys):
  """Its config reads prepared shards (``data.name`` is not the embedded corpus')."""
  workdir = tmp_path / "wd"
  shutil.copytree(old_workdir, workdir)
  config = json.loads((workdir / "config.json").read_text())
  config["data"]["name"] = "folder"
  (workdir / "config.json").write_text(json.dumps(config))
  for name, args in _commands(workdir, tmp_path, folder_data[1]).items():
    line = _one_error_line(capsys, cli.main(args))
    assert "no run_info.json" in line and "pass --data-dir" in line, (name, line)
    assert "config.data.name='folder'" in line, (name, line)
    print(f"{name} of an old workdir: {line}")


def test_old_workdir_whose_config_names_the_embedded_corpus_asks_for_data_dir(
    old_workdir, folder_data, tmp_path, capsys):
  """The model built on the embedded corpus (24 tags) does not fit the checkpoint (2 tags)."""
  line = _one_error_line(capsys, cli.main(_commands(old_workdir, tmp_path, folder_data[1])["eval"]))
  assert "no run_info.json" in line and "does not fit the embedded corpus" in line, line
  assert "pass --data-dir" in line, line
  print(f"eval of an old workdir trained off the embedded corpus: {line}")
