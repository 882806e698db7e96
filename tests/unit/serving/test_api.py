"""The Python API (``serving/api.py``, ``musicrep_jax.load``): the three-line example on a real
file gives exactly ``embed_files``' numbers (``musicrep embed`` in a fresh process:
tests/e2e/test_python_api_cli.py); an array equals the file it came from and is resampled
explicitly or refused; one input alone and inside a padded batch gives the same outputs, for
every model family; the layers are ``musicrep extract-features``' levels; a model folder gives
the workdir's numbers.

Workdirs are untrained (``tests.helpers.make_workdir`` / ``make_config_workdir``), the model
families shrunk as in tests/unit/serving/test_embed_families.py.
"""

import numpy as np
import pytest
import soundfile as sf

import musicrep_jax
from musicrep_jax.errors import UserError
from musicrep_jax.serving import api, embed, inference
from musicrep_jax.serving.inference import load_trained
from tests.helpers import make_config_workdir, make_workdir
from tests.unit.serving.test_embed import SR
from tests.unit.serving.test_embed_families import BRANCH, DCNN, FAMILIES, MEL

# One input alone vs. inside a padded batch beside other inputs (other rows, other batches, and
# batch 1 vs. 32 for the SampleCNN): rows are independent in eval mode, so equal up to float32
# rounding of XLA's batched kernels (measured on CPU: identical at one batch size; batch 1 vs 4
# within 7.6e-6).
INVARIANCE = dict(rtol=1e-5, atol=1e-6)
SMALL_BLOCKS = dict(n=3, channels=(4, 4, 8, 8), amplifying_ratio=0.5)
# Every registered family: (config, small model kwargs); None = the tiny 3^4 SampleCNN of
# tests/configs/tiny.py (243-sample segments, make_workdir).
WORKDIRS = {
    "sample_cnn": None,
    "resemul": ("resemul_mtat:runlocal", dict(SMALL_BLOCKS, block="se", multi_level_blocks=2)),
    "sample_level_fixed_input": ("samplecnn_speech_commands:runlocal",
                                 dict(SMALL_BLOCKS, input_samples=300)),
    "mel_dcnn": ("mel_dcnn_mtat:runlocal", DCNN),
    "mel_frame_cnn": ("mel_frame_cnn_mtat:runlocal", dict(MEL, num_frames=18, channels=(8,) * 3)),
    "mel_cnn2d": ("mel_cnn2d_mtat:runlocal", dict(
        n_fft=256, hop_length=128, n_mels=24, num_frames=40, channels=(4, 8, 8),
        pools_mel_time=((2, 2), (3, 4), (2, 2)))),
    "inception": ("mel_dcnn_mtat:runlocal", dict(
        model_name="inception", num_frames=16, n_fft=256, hop_length=128, n_mels=16,
        stem_features=8, num_blocks=1, stride_branches=(8, 8, 8), normal_branches=(8,) * 6,
        embed_features=8)),
    "embedding_net": FAMILIES["artist_dcnn"][:2],  # softmax head over artists (paper 4)
    "embedding_net_csn": FAMILIES["csn"][:2],  # no head (paper 13)
    "dcue": ("dcue:runlocal", dict(BRANCH, dim=8, user_hidden=8)),
    "zero_shot": ("zero_shot:attributes,runlocal", dict(BRANCH)),  # label-branch cosines
}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory, tiny_data_dir):
  made = {}

  def get(name):
    if name not in made:
      path = tmp_path_factory.mktemp(name) / "wd"
      if WORKDIRS[name] is None:
        made[name] = make_workdir(path, tiny_data_dir)
      else:
        spec, kwargs = WORKDIRS[name]
        made[name] = make_config_workdir(path, tiny_data_dir, spec, **kwargs)
    return made[name]

  return get


def _noise(samples: int, seed: int) -> np.ndarray:
  return (0.2 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


def test_every_registered_family_is_covered():
  import musicrep_jax.models  # noqa: F401
  from musicrep_jax.registry import MODELS

  assert {n.removesuffix("_csn") for n in WORKDIRS} == set(MODELS.names())


def test_the_three_line_example_equals_embed_files_exactly(workdirs, tiny_data_dir, tmp_path):
  """``load(...).tags`` of a 44.1 kHz stereo file (decoded, resampled, tiled into 6 segments with
  an end-aligned tail) is ``embed_files``' clip scores, bit for bit; so are ``scores`` and
  ``embed``; with batch 1 instead of 32 they agree within ``INVARIANCE``."""
  wav = tmp_path / "song.wav"
  rng = np.random.default_rng(0)
  sf.write(wav, 0.2 * rng.standard_normal((int(0.08 * 44100), 2)), 44100, subtype="PCM_16")

  model = musicrep_jax.load(workdirs("sample_cnn"), data_dir=str(tiny_data_dir))
  top = model.tags(str(wav), top_k=5)

  trained = load_trained(workdirs("sample_cnn"), str(tiny_data_dir))
  forward, spec = embed.make_forward(trained, 32)
  summary = embed.embed_files([wav], forward, sample_rate=SR, input_length=trained.input_length,
                              out_dir=tmp_path / "out", scores_name=spec.scores, progress=False)
  assert summary["segments"] == 6
  scores = np.load(tmp_path / "out/tag_scores.npy")[0]
  best = np.argsort(-scores, kind="stable")[:5]
  assert top == {trained.tag_names[i]: float(scores[i]) for i in best}
  assert list(top.values()) == sorted(top.values(), reverse=True)
  np.testing.assert_array_equal(model.scores(wav), scores)
  np.testing.assert_array_equal(model.embed(wav), np.load(tmp_path / "out/embeddings.npy")[0])
  assert model.family == "sample_cnn" and model.sample_rate == SR and model.scores_kind == (
      "tag_scores") and model.tag_names == trained.tag_names
  np.testing.assert_allclose(api.Model(trained, batch_size=1).scores(wav), scores, **INVARIANCE)


def test_an_array_equals_its_file_and_is_resampled_explicitly(workdirs, tiny_data_dir,
                                                              tmp_path):
  """A float WAV at 22,050 Hz and its samples as an array with ``sample_rate=22050`` go through
  the same blocks (0.3 s here), resampler and tiling: equal outputs. The same array declared at
  the model's rate is not resampled, so it differs."""
  trained = load_trained(workdirs("sample_cnn"), str(tiny_data_dir))
  model = api.Model(trained, block_seconds=0.3)
  audio = _noise(int(0.7 * 22050), seed=3)
  sf.write(tmp_path / "a.wav", audio, 22050, subtype="FLOAT")
  from_file = model.embed(tmp_path / "a.wav")
  np.testing.assert_array_equal(model.embed(audio, sample_rate=22050), from_file)
  both = model.embed([str(tmp_path / "a.wav"), audio], sample_rate=22050)
  np.testing.assert_array_equal(both, np.stack([from_file, from_file]))
  assert not np.allclose(model.embed(audio, sample_rate=SR), from_file, rtol=1e-3)
  run = model.run(audio, sample_rate=22050, per_segment=True)
  resampled = int(np.ceil(len(audio) * SR / 22050))
  length = trained.input_length
  expected = list(range(0, resampled - length + 1, length)) + [resampled - length]
  assert run.single and run.segment_starts[0].tolist() == expected


def test_inputs_that_cannot_be_used_are_one_line_errors(workdirs, tiny_data_dir, tmp_path):
  model = api.Model(load_trained(workdirs("sample_cnn"), str(tiny_data_dir)))
  audio = _noise(SR, seed=0)
  cases = [
      (lambda: model.embed(audio), "needs its sample rate: pass sample_rate="),
      (lambda: model.embed((audio * 32767).astype(np.int16), sample_rate=SR), "divide by 32768"),
      (lambda: model.embed(audio.reshape(1, -1, 1), sample_rate=SR), "are mono"),
      (lambda: model.embed(np.zeros(0, np.float32), sample_rate=SR), "is empty"),
      (lambda: model.embed(np.full(10, np.nan, np.float32), sample_rate=SR), "NaN"),
      (lambda: model.embed([]), "No inputs"),
      (lambda: model.embed(tmp_path / "a.wav", sample_rate=SR), "rate of array inputs"),
      (lambda: model.embed(tmp_path / "missing.wav"), "missing.wav: missing file."),
      (lambda: model.embed(audio, layer="fc9", sample_rate=SR), "No layer 'fc9'"),
      (lambda: model.embed(audio, layer=[], sample_rate=SR), "No layer"),
      (lambda: model.embed(audio, pooling="median", sample_rate=SR), "pooling must be"),
      (lambda: model.tags(audio, top_k=0, sample_rate=SR), "top_k must be at least 1"),
  ]
  for call, message in cases:
    with pytest.raises(UserError, match=message) as error:
      call()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", sorted(WORKDIRS))
def test_one_input_alone_or_in_a_padded_batch_gives_the_same_outputs(workdirs, tiny_data_dir,
                                                                     tmp_path, name):
  """A 22,050 Hz file (3 segments after resampling, the last end-aligned) embedded alone (rows
  0-2 of a batch of 4, one padding row), and after a 2-segment array and before a short
  (zero-padded) array: its segments at rows 2-3 and 0 of two batches, the last one padded;
  embeddings and scores agree within ``INVARIANCE``. Embedding-only families refuse ``tags`` in
  one line; every family lists its levels, whose widths ``embed(layer=...)`` gives."""
  trained = load_trained(workdirs(name), str(tiny_data_dir))
  model = api.Model(trained, batch_size=4)
  length = trained.input_length
  wav = tmp_path / "a.wav"
  sf.write(wav, _noise(int(2.6 * length * 22050 / SR), seed=1), 22050, subtype="PCM_16")
  before, after = _noise(int(1.7 * length), seed=2), _noise(length // 2, seed=4)

  alone = model.run(wav)
  batched = model.run([before, str(wav), after], sample_rate=SR, per_segment=True)
  assert [len(s) for s in batched.segment_starts] == [2, 3, 1]
  np.testing.assert_allclose(batched.embeddings[1], alone.embeddings[0], **INVARIANCE)
  np.testing.assert_allclose(batched.scores[1], alone.scores[0], **INVARIANCE)
  kind = {"embedding_net": "class_scores", "zero_shot": "label_scores",
          "sample_level_fixed_input": "logits", "embedding_net_csn": "", "dcue": ""}
  assert model.scores_kind == kind.get(name, "tag_scores")
  if model.scores_kind:
    assert alone.scores.shape[1] > 0 and len(model.tags(wav, top_k=3)) == 3
  else:
    with pytest.raises(UserError, match=f"This {model.family} model has no tag head"):
      model.tags(wav)

  layers = model.layers
  assert layers[0] == "embedding" and len(layers) >= 4, layers
  deepest = layers[-1]
  features = model.embed([before, str(wav)], layer=deepest, sample_rate=SR)
  assert features.shape == (2, model.width(deepest)) and np.all(np.isfinite(features))


def test_levels_are_extract_features_levels(workdirs, tiny_data_dir):
  """Every level of a SampleCNN, max-pooled over time per segment and averaged over the input's
  segments, is the stage-2 feature of papers 2 and 3 (``features.segment_features``)."""
  import jax

  from musicrep_jax.systems.multiscale import features

  trained = load_trained(workdirs("sample_cnn"), str(tiny_data_dir))
  model = api.Model(trained, batch_size=2)
  levels = [name for name in model.layers if name != "embedding"]
  assert levels == [f"ConvBNReLU_{i}" for i in range(trained.model.n + 2)]
  audio = _noise(2 * trained.input_length, seed=5)  # two segments, no tail
  tiles = audio.reshape(2, trained.input_length, 1)
  expected = jax.jit(lambda v, a: features.segment_features(trained.model, v, a, "max"))(
      trained.variables, tiles)
  np.testing.assert_allclose(model.embed(audio, layer=levels, sample_rate=SR),
                             np.mean(expected, axis=0), rtol=1e-5, atol=1e-6)


def test_load_reads_a_model_folder_without_the_workdir(workdirs, tiny_data_dir, tmp_path):
  """``load`` of a folder written by ``musicrep export --format pretrained``
  (``pretrained.write_model_folder``) rebuilds the model from ``musicrep.json`` with no task and
  no data, and gives the workdir's scores and embedding; a ``musicrep.json`` without the
  sample rate is a one-line error."""
  pytest.importorskip("safetensors")
  pytest.importorskip("torch")
  from musicrep_jax.serving.export import pretrained

  trained = load_trained(workdirs("sample_cnn"), str(tiny_data_dir))
  folder = tmp_path / "folder"
  pretrained.write_model_folder(None, folder, data_dir=str(tiny_data_dir), trained=trained)
  model = musicrep_jax.load(folder)
  assert model.trained.task is None and model.trained.step == trained.step
  assert (model.family, model.scores_kind, model.tag_names, model.layers) == (
      "sample_cnn", "tag_scores", trained.tag_names, api.Model(trained).layers)
  audio = _noise(SR, seed=6)
  reference = api.Model(trained).run(audio, sample_rate=SR)
  got = model.run(audio, sample_rate=SR)
  np.testing.assert_allclose(got.scores, reference.scores, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got.embeddings, reference.embeddings, rtol=1e-6, atol=1e-7)

  config, variables, info = pretrained.read_model_folder(folder)
  del info["sample_rate"]
  with pytest.raises(UserError, match="lacks sample_rate"):
    inference.trained_from_folder(folder, pretrained.flax_model(info), config, variables, info)
