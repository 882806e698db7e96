"""``musicrep_jax.hear``: the HEAR 2021 common API, checked by the rules ``hear-validator``
(hearvalidator 2021.0.2, ``ValidateModel``) applies, since the validator itself needs TensorFlow:
a torch module with an allowed ``sample_rate`` and int embedding sizes; timestamp embeddings of
4 x 2.0 s of uniform noise in [-1, 1] as float32 ``[4, T, size]`` with timestamps ``[4, T]`` at
regular intervals (no deviation over 1 ms from the mean interval; the mean at most 50 ms);
scene embeddings of 8 x 3.74 s as float32 ``[8, size]``. Beyond the validator: the timestamps
are the same for every sound and centred on the windows, whose embeddings are the model's, and
the scene embedding is ``Model.embed``'s."""

import numpy as np
import pytest

from musicrep_jax import hear
from musicrep_jax.errors import UserError
from tests.helpers import make_workdir
from tests.unit.serving.test_embed import MODEL

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_data_dir):
  workdir = make_workdir(tmp_path_factory.mktemp("hear") / "wd", tiny_data_dir, **MODEL)
  return hear.load_model(str(workdir), data_dir=str(tiny_data_dir))


def test_the_validators_rules(model):
  assert isinstance(model, torch.nn.Module)
  assert model.sample_rate in (16000, 22050, 44100, 48000)
  assert isinstance(model.scene_embedding_size, int)
  assert isinstance(model.timestamp_embedding_size, int)

  audio = torch.rand((4, int(2.0 * model.sample_rate))) * 2 - 1
  embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
  assert embeddings.dtype == torch.float32 and embeddings.ndim == 3 and timestamps.ndim == 2
  assert embeddings.shape[0] == 4 and embeddings.shape[:2] == timestamps.shape
  assert embeddings.shape[2] == model.timestamp_embedding_size
  diff = torch.diff(timestamps)
  assert diff.float().mean() <= 50.0
  assert torch.all(torch.abs(diff - diff.float().mean()) < 1e-3)

  scene = hear.get_scene_embeddings(torch.rand((8, int(3.74 * model.sample_rate))) * 2 - 1, model)
  assert scene.dtype == torch.float32 and scene.shape == (8, model.scene_embedding_size)


def test_windows_are_centred_on_the_timestamps(model):
  """2.01 s at 16 kHz with the 50 ms hop: 41 windows centred on 0, 50, ..., 2000 ms (the
  6,561-sample window's centre is half a sample after its middle sample); window k is the
  model's embedding of the zero-padded audio around ``k * hop``. Numpy in, numpy out."""
  inner = model.model
  length, hop = inner.input_length, model.hop
  assert (model.sample_rate, hop, length % 2) == (16000, 800, 1)
  audio = (0.2 * np.random.default_rng(0).standard_normal((2, 32160))).astype(np.float32)
  embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
  assert isinstance(embeddings, np.ndarray) and embeddings.shape == (2, 41, inner.embedding_size)
  expected_ms = (np.arange(41) * 800 + 0.5) / 16.0
  np.testing.assert_allclose(timestamps, np.stack([expected_ms] * 2), rtol=0, atol=1e-3)

  trained = inner.trained
  padded = np.pad(audio[1], (length // 2, length))
  for k in (0, 7, 40):
    window = padded[k * hop:k * hop + length][None, :, None]
    out = trained.model.apply(trained.variables, window, train=False)
    np.testing.assert_allclose(embeddings[1, k], out["embedding"][0], rtol=1e-4, atol=1e-5)

  scene = hear.get_scene_embeddings(audio, model)
  np.testing.assert_array_equal(scene, inner.embed(audio, sample_rate=16000))


def test_other_model_rates_map_to_a_hear_rate(model):
  """A model at 12 kHz (the 2-D mel baseline) is offered at 16 kHz and resampled explicitly;
  the hop is counted at the model's rate; bad input is a one-line error."""

  class TwelveK:
    sample_rate = 12000

    def width(self, layer=None):
      return 5

  wrapped = hear.HearModel(TwelveK(), hop_ms=25)
  assert (wrapped.sample_rate, wrapped.hop, wrapped.scene_embedding_size) == (16000, 300, 5)
  with pytest.raises(UserError, match=r"float \[n_sounds, n_samples\]"):
    hear.get_scene_embeddings(np.zeros(100, np.float32), model)
