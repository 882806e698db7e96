"""``musicrep embed`` on the models whose point is the embedding: which output is the embedding
and which scores each family has (``serving.inference.output_spec``, one table for all), checked
against the model itself on a decoded file; and the export of the same restored workdirs.

Workdirs come from the packaged configs (``tests.helpers.make_config_workdir``, nothing
trained) shrunk to a 16-frame mel front end on the tiny 16 kHz corpus."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from musicrep_jax.data.audio_io import load_audio
from musicrep_jax.errors import UserError
from musicrep_jax.serving import embed, inference
from musicrep_jax.serving.inference import load_trained
from musicrep_jax.tasks.metric_learning import MetricLearningTask
from tests.helpers import make_config_workdir, make_workdir
from tests.unit.serving.test_embed import SR, _write

MEL = dict(num_frames=16, n_fft=256, hop_length=128, n_mels=16)  # 2,176-sample inputs
DCNN = dict(MEL, channels=(8, 8, 16), kernel_sizes=(3, 3, 1), pool_sizes=(2, 2, 1))
BRANCH = dict(MEL, channels=(8, 8, 8, 8, 8), pool_sizes=(2, 2, 2, 1, 1))
# name -> (config, model overrides, expected (embedding output, scores file, constants)).
FAMILIES = {
    "artist_dcnn": ("artist_dcnn:runlocal", dict(backbone_kwargs=DCNN),
                    ("embedding", "class_scores", ())),
    "csn": ("csn_disentangled:track,runlocal",
            dict(backbone="mel_dcnn", backbone_kwargs=DCNN, embedding_dim=12),
            ("embedding", "", ("masks",))),
    "dcue": ("dcue:runlocal", dict(BRANCH, dim=8, user_hidden=8), ("embedding", "", ())),
    "zero_shot": ("zero_shot:attributes,runlocal", dict(BRANCH),
                  ("embedding", "label_scores", ())),
}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory, tiny_data_dir):
  made = {}

  def get(name):
    if name not in made:
      spec, kwargs, _ = FAMILIES[name]
      made[name] = make_config_workdir(tmp_path_factory.mktemp(name) / "wd", tiny_data_dir,
                                       spec, **kwargs)
    return made[name]

  return get


def test_every_registered_family_has_one_embedding_output():
  import musicrep_jax.models  # noqa: F401
  from musicrep_jax.registry import MODELS

  assert set(inference.EMBEDDING_OUTPUTS) == set(MODELS.names())
  with pytest.raises(UserError, match="has no embedding output"):
    inference.embedding_output("no_such_model")


def test_sample_cnn_keeps_its_tag_scores(tiny_data_dir, tmp_path):
  trained = load_trained(make_workdir(tmp_path / "wd", tiny_data_dir), str(tiny_data_dir))
  spec = inference.output_spec(trained)
  assert (spec.family, spec.embedding, spec.scores) == ("sample_cnn", "embedding", "tag_scores")
  assert spec.score_names == trained.tag_names and inference.audio_outputs(trained.model) == (
      "logits", "embedding")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_embed_gives_the_model_embedding_of_each_family(workdirs, tiny_data_dir, tmp_path, name):
  """Per family: the spec from the one table, and ``embed_files``' clip embedding and scores
  equal the model's own outputs averaged over the file's segments."""
  trained = load_trained(workdirs(name), str(tiny_data_dir))
  spec = inference.output_spec(trained)
  assert (spec.embedding, spec.scores, spec.constants) == FAMILIES[name][2]
  forward, spec = embed.make_forward(trained, 4)
  wav = _write(tmp_path / "a.wav", 0.5, SR)
  summary = embed.embed_files([wav], forward, sample_rate=SR, input_length=trained.input_length,
                              out_dir=tmp_path / "out", batch_size=4, scores_name=spec.scores,
                              output_names=spec.score_names, progress=False)
  assert (summary["ok"], summary["scores"]) == (1, spec.scores or None)

  audio = load_audio(wav, SR)
  length = trained.input_length
  starts = list(range(0, len(audio) - length + 1, length))
  if starts[-1] + length < len(audio):
    starts.append(len(audio) - length)
  tiles = jnp.asarray(np.stack([audio[s:s + length] for s in starts])[..., None])
  out = trained.task.forward(trained.model, trained.variables, {"audio": tiles}, train=False)
  embeddings = np.load(tmp_path / "out/embeddings.npy")
  np.testing.assert_allclose(embeddings[0], np.mean(out["embedding"], 0), rtol=1e-4, atol=1e-5)
  files = {p.name for p in (tmp_path / "out").iterdir()}
  if name == "artist_dcnn":  # Paper 4: softmax over the artists of the dense head.
    assert isinstance(trained.task, MetricLearningTask) and trained.task.int_head
    np.testing.assert_allclose(np.load(tmp_path / "out/class_scores.npy")[0],
                               np.mean(jax.nn.softmax(out["logits"]), 0), rtol=1e-4, atol=1e-6)
  elif name == "zero_shot":  # Cosines with the label branch, for the tags with attributes.
    scores = np.load(tmp_path / "out/label_scores.npy")
    assert scores.shape == (1, len(spec.score_names)) and 0 < len(spec.score_names) < len(
        trained.tag_names)
    assert np.all(np.abs(scores) <= 1.0 + 1e-6)
  elif name == "csn":  # Masks once; no head, no scores file.
    np.testing.assert_array_equal(np.load(tmp_path / "out/masks.npy"), out["masks"])
    assert len(spec.subspaces) == trained.model.num_subspaces == 4
  if not spec.scores:
    assert not any(f.endswith("scores.npy") or f == "logits.npy" for f in files), files


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_restored_workdir_of_each_family_exports_with_parity(workdirs, tiny_data_dir,
                                                               tmp_path, name):
  """The restored state (DCUE with its user branch, zero-shot with its label branch) exports
  its audio side; the file is world-readable like any new file."""
  pytest.importorskip("safetensors")
  pytest.importorskip("torch")
  from musicrep_jax.serving.export import exporter, safetensors_io

  trained = load_trained(workdirs(name), str(tiny_data_dir))
  info = exporter.export_model(trained.model, trained.variables, tmp_path,
                               sample_rate=trained.sample_rate,
                               formats=("safetensors", "stablehlo"))
  assert info["outputs"][-1] == info["embedding"] == inference.EMBEDDING_OUTPUTS[info["family"]]
  for entry in info["formats"].values():
    assert all(r["ok"] for r in entry["parity"].values()), entry
  _, tensors = safetensors_io.read(tmp_path / "model.safetensors")
  assert not any(n.startswith(("user_", "label_")) for n in tensors)
  umask = os.umask(0)
  os.umask(umask)
  assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
