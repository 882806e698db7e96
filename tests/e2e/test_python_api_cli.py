"""The Python API against the CLI in fresh processes: the README's three lines on a real audio
file get exactly the scores and embedding ``musicrep embed`` writes; ``musicrep --version``;
``import musicrep_jax`` does not import JAX. (In-process: tests/unit/serving/test_api.py.)"""

import json
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
import soundfile as sf

import musicrep_jax
from tests.helpers import REPO, make_workdir, run_cli
from tests.unit.serving.test_embed import MODEL


@pytest.mark.slow
def test_the_readme_example_gets_the_scores_of_musicrep_embed(tiny_data_dir, tmp_path):
  """A 44.1 kHz stereo PCM WAV of 1.9 s (resampled to the model's 16 kHz, tiled into four
  6,561-sample segments and an end-aligned tail): ``musicrep_jax.load(workdir).tags(path)``
  is the top five of ``tag_scores.npy`` with the same values, and ``scores`` / ``embed`` equal
  the CLI's arrays exactly (same batch size, same code)."""
  workdir = make_workdir(tmp_path / "wd", tiny_data_dir, **MODEL)
  song = tmp_path / "song.wav"
  rng = np.random.default_rng(0)
  sf.write(song, 0.2 * rng.standard_normal((int(1.9 * 44100), 2)), 44100, subtype="PCM_16")
  proc = run_cli(["embed", str(song), "--workdir", str(workdir), "--data-dir",
                  str(tiny_data_dir), "--out", str(tmp_path / "out"), "--no-progress"])
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert (summary["ok"], summary["segments"], summary["scores"]) == (1, 5, "tag_scores")

  model = musicrep_jax.load(workdir, data_dir=str(tiny_data_dir))
  top = model.tags(str(song), top_k=5)

  scores = np.load(tmp_path / "out/tag_scores.npy")[0]
  names = json.loads((tmp_path / "out/embed_info.json").read_text())["output_names"]
  assert top == {names[i]: float(scores[i]) for i in np.argsort(-scores, kind="stable")[:5]}
  np.testing.assert_array_equal(model.scores(song), scores)
  np.testing.assert_array_equal(model.embed(song), np.load(tmp_path / "out/embeddings.npy")[0])


@pytest.mark.slow
def test_version_and_a_light_import():
  proc = run_cli(["--version"])
  assert proc.stdout.strip() == f"musicrep {metadata.version('musicrep-jax')}"
  probe = ("import sys, musicrep_jax; print(callable(musicrep_jax.load), "
           "sorted(m for m in ('jax', 'flax', 'numpy') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                       check=True).stdout.split(maxsplit=1)
  assert out == ["True", "[]\n"]
