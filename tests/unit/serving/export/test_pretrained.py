"""Model folders (``musicrep export --format pretrained``, docs/export.md "Model folders"): the
round trip of every model family (workdir -> folder -> ``read_model_folder`` -> the same Flax
outputs), the model card against ``eval_results.json`` of a really trained run, the files'
modes, and ``modeling_musicrep.py`` run in a process where JAX and musicrep_jax cannot be
imported.

Workdirs: tests/configs/tiny.py with each family's model swapped in (tagging on the tiny 16 kHz
corpus; nothing trained), the embedding families from their packaged configs shrunk as in
tests/unit/serving/test_embed_families.py; one tiny run trained for 2 steps for the card."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from musicrep_jax.serving.export import exporter, layout, pretrained
from musicrep_jax.serving.inference import load_trained
from tests.configs import tiny as tiny_config
from tests.helpers import lazy_workdirs, make_config_workdir, save_untrained_workdir

pytest.importorskip("safetensors")
pytest.importorskip("torch")

MEL = dict(num_frames=16, n_fft=256, hop_length=128, n_mels=16)  # 2,176-sample inputs
DCNN = dict(MEL, channels=(8, 8, 16), kernel_sizes=(3, 3, 1), pool_sizes=(2, 2, 1))
BRANCH = dict(MEL, channels=(8, 8, 8, 8, 8), pool_sizes=(2, 2, 2, 1, 1))
# name -> (model name on the tiny tagging config, kwargs) or (packaged config, model overrides).
TAGGING = {
    "sample_cnn": ("sample_cnn", dict(m=2, n=4, first_filter=4, channels=(4, 4, 8, 8, 8, 8))),
    "resemul": ("resemul", dict(block="res1", m=3, n=3, channels=(4, 4, 8, 8),
                                multi_level_blocks=2)),
    "sample_level_fixed_input": ("sample_level_fixed_input", dict(
        block="basic", m=3, n=3, channels=(4, 4, 8, 8), input_samples=100, multi_level=False)),
    "mel_dcnn": ("mel_dcnn", DCNN),
    "mel_frame_cnn": ("mel_frame_cnn", dict(MEL, channels=(8, 8, 16), hidden_units=6)),
    "mel_cnn2d": ("mel_cnn2d", dict(MEL, channels=(4, 8), pools_mel_time=((2, 2), (2, 2)))),
}
CONFIGS = {
    "embedding_net": ("csn_disentangled:track,runlocal", dict(backbone="mel_dcnn",
                                                              backbone_kwargs=DCNN,
                                                              embedding_dim=12)),
    "dcue": ("dcue:runlocal", dict(BRANCH, dim=8, user_hidden=8)),
    "zero_shot": ("zero_shot:attributes,runlocal", dict(BRANCH)),
}


def _tagging_config(model: str, kwargs: dict):
  config = tiny_config.get_config()
  config.model.name = model
  config.model.kwargs = dict(kwargs)
  return config


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory, tiny_data_dir):
  def make(name, path):
    if name in TAGGING:
      return save_untrained_workdir(path, _tagging_config(*TAGGING[name]), tiny_data_dir)
    spec, kwargs = CONFIGS[name]
    return make_config_workdir(path, tiny_data_dir, spec, **kwargs)

  return lazy_workdirs(tmp_path_factory, make)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_data_dir):
  """The tiny config trained for 2 steps (validation at step 2, then the test split with the
  best checkpoint): the records the trainer really writes."""
  from musicrep_jax.training import trainer

  config = tiny_config.get_config()
  config.num_train_steps, config.eval_every, config.checkpoint_every = 2, 2, 2
  config.checkpoint.async_save = False
  workdir = tmp_path_factory.mktemp("trained") / "wd"
  summary = trainer.train(config, workdir, str(tiny_data_dir))
  return workdir, summary


def _umask() -> int:
  umask = os.umask(0)
  os.umask(umask)
  return umask


@pytest.mark.parametrize("name", sorted(TAGGING) + sorted(CONFIGS))
def test_model_folder_round_trip(workdirs, tiny_data_dir, tmp_path, name):
  """Workdir -> folder -> (config, variables, info) without the workdir -> the Flax model of
  ``info`` gives exactly the workdir model's outputs; every file has a new file's mode."""
  trained = load_trained(workdirs(name), str(tiny_data_dir))
  out = tmp_path / "folder"
  written = pretrained.write_model_folder(trained.workdir, out, data_dir=str(tiny_data_dir),
                                          trained=trained)
  assert set(written["files"]) >= {"model.safetensors", "modeling_musicrep.py", "config.json",
                                   "musicrep.json", "eval_results.json", "README.md"}
  assert all(r["ok"] for r in written["formats"]["pretrained"]["parity"].values())
  for path in out.iterdir():
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask(), path

  config, variables, info = pretrained.read_model_folder(out)
  assert config.model.name == info["family"] == exporter.model_family(trained.model)
  assert (info["sample_rate"], info["input_length"]) == (16000, trained.input_length)
  assert info["format_version"] == pretrained.FORMAT_VERSION
  assert info["tag_names"] == list(trained.tag_names)
  assert info["outputs"][-1] == info["embedding"] == "embedding"
  audio = exporter.check_batch(trained.input_length, batch=2, seed=3)
  got = exporter.flax_outputs(pretrained.flax_model(info), variables, audio)
  reference = exporter.flax_outputs(
      trained.model, layout.audio_variables(info["family"], trained.variables), audio)
  assert set(got) == set(reference)
  for key in info["outputs"]:
    np.testing.assert_array_equal(got[key], reference[key])
  # Nothing trained: no recorded evaluation, and the card says so instead of giving numbers.
  assert json.loads((out / "eval_results.json").read_text()) == []
  card = (out / "README.md").read_text()
  assert "model-index" not in card and "No evaluation was recorded" in card


def test_card_names_data_split_and_protocol_of_every_number(trained_run, tiny_data_dir,
                                                            tmp_path):
  """A really trained run: ``eval_results.json`` holds the validation numbers at the best step
  and the test numbers, and the card's front matter and table name each one's data, split and
  protocol; files are 0644 under umask 022."""
  yaml = pytest.importorskip("yaml")
  workdir, summary = trained_run
  old = os.umask(0o022)
  try:
    info = pretrained.write_model_folder(workdir, tmp_path / "folder")
  finally:
    os.umask(old)
  folder = tmp_path / "folder"
  assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
      name: 0o644 for name in info["files"]}

  results = json.loads((folder / "eval_results.json").read_text())
  assert {r["split"] for r in results} == {"validation", "test"}
  test = {r["metric"]: r["value"] for r in results if r["split"] == "test"}
  assert test == pytest.approx({k: v for k, v in summary["test"].items()
                                if isinstance(v, (int, float))})
  timing = json.loads((workdir / "timing.json").read_text())
  for r in results:
    assert r["step"] == summary["best_step"] and r["training_time_s"] == timing["train_s"]
    assert r["hardware"].startswith("cpu x") and len(r["date"]) == 10  # from run_info.json
    assert "synthetic corpus" in r["data"] and "tagging" in r["protocol"]

  card = (folder / "README.md").read_text()
  assert card.startswith("---\n")
  meta = yaml.safe_load(card.split("---\n")[1])
  assert meta["library_name"] == "musicrep-jax" and meta["license"] == "apache-2.0"
  assert meta["pipeline_tag"] == "audio-classification"
  entries = meta["model-index"][0]["results"]
  assert len(entries) == len(results)
  for entry, r in zip(entries, results):
    assert entry["dataset"]["split"] == r["split"]
    assert entry["metrics"][0] == {"type": r["metric"], "value": r["value"], "name": r["metric"]}
  body = card.split("---\n", 2)[2]
  rows = [line for line in body.splitlines() if line.startswith("| ") and "---" not in line]
  for r in results:  # One table row per number: metric, value, split, data, protocol.
    row = next(line for line in rows if line.startswith(f"| {r['metric']} | ")
               and f"| {r['split']} |" in line)
    assert r["data"] in row and r["protocol"] in row
  for section in ("## Paper", "## Architecture", "## Training data and split", "## Evaluation",
                  "## Intended use", "## Data licence", "## How to cite"):
    assert section in body
  assert "SampleCNN" in body and "arXiv:1703.01789" in body


def test_read_model_folder_refuses_other_folders(tmp_path):
  from musicrep_jax.errors import UserError

  with pytest.raises(UserError, match="not a musicrep-jax model folder"):
    pretrained.read_model_folder(tmp_path)


# Installed in the child as sitecustomize: any import of these packages fails.
_BLOCKER = """
import importlib.abc, sys

class _Blocked(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("jax", "jaxlib", "flax", "musicrep_jax"):
      raise ImportError(f"{name} is blocked in this test")
    return None

sys.meta_path.insert(0, _Blocked())
"""
_CHILD = """
import sys
for blocked in ("jax", "musicrep_jax"):
  try:
    __import__(blocked)
  except ImportError:
    pass
  else:
    raise SystemExit(f"{blocked} was importable")
import numpy as np
sys.path.insert(0, sys.argv[1])
import modeling_musicrep

model = modeling_musicrep.load(sys.argv[1])
out = modeling_musicrep.forward_numpy(model, np.load(sys.argv[2]))
np.savez(sys.argv[3], **out)
assert not any(m.split(".")[0] in ("jax", "flax", "musicrep_jax") for m in sys.modules)
print(model.family, model.sample_rate, model.input_length, len(model.tag_names))
"""


@pytest.mark.slow
def test_modeling_file_runs_without_jax(workdirs, tiny_data_dir, tmp_path):
  """The folder's ``modeling_musicrep.py`` loads ``model.safetensors`` and reproduces Flax
  (``exporter.PARITY_TOLERANCE``) in a process where jax, flax and musicrep_jax cannot be
  imported (a meta-path finder installed by sitecustomize). The model: an ``embedding_net``
  (CSN masks, projection) on a mel DCNN, so the file's own mel front end, filterbank and
  backbone defaults are used."""
  name = "embedding_net"
  trained = load_trained(workdirs(name), str(tiny_data_dir))
  folder = tmp_path / "folder"
  pretrained.write_model_folder(trained.workdir, folder, data_dir=str(tiny_data_dir),
                                trained=trained)
  blocker = tmp_path / "blocker"
  blocker.mkdir()
  (blocker / "sitecustomize.py").write_text(textwrap.dedent(_BLOCKER))
  audio = exporter.check_batch(trained.input_length, batch=3, seed=11)
  np.save(tmp_path / "audio.npy", audio)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["PYTHONPATH"] = str(blocker)
  proc = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(tmp_path / "audio.npy"),
                         str(tmp_path / "out.npz")], env=env, cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == [exporter.model_family(trained.model), "16000",
                                 str(trained.input_length), str(len(trained.tag_names))]
  reference = exporter.flax_outputs(
      trained.model, layout.audio_variables(name, trained.variables), audio)
  got = dict(np.load(tmp_path / "out.npz"))
  for key, r in exporter.parity(got, reference, tuple(reference)).items():
    assert r["ok"], (key, r)
