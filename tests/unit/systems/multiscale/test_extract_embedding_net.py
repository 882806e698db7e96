"""``musicrep extract-features`` on an ``embedding_net`` workdir (papers 4, 9, 13; issue 18
item 5): the levels are the backbone's conv layers, and the clip features equal the backbone's
own conv outputs, max-pooled per segment and averaged per clip. Nothing trained (a tiny
untrained workdir of the packaged ``artist_dcnn:runlocal`` config)."""

import json

import numpy as np

from musicrep_jax.data.schema import pcm16_to_float
from musicrep_jax.data.shards import open_shards
from musicrep_jax.systems.multiscale import features, pipeline
from tests.helpers import make_config_workdir

MEL = dict(num_frames=16, n_fft=256, hop_length=128, n_mels=16)  # 2,176-sample inputs
DCNN = dict(MEL, channels=(8, 8, 16), kernel_sizes=(3, 3, 1), pool_sizes=(2, 2, 1))


def test_extract_features_of_an_embedding_net_are_its_backbone_levels(tmp_path, tiny_data_dir):
  workdir = make_config_workdir(tmp_path / "wd", tiny_data_dir, "artist_dcnn:runlocal",
                                backbone_kwargs=DCNN)
  summary = pipeline.extract([str(workdir)], tmp_path / "out", data_dir=str(tiny_data_dir),
                             splits=["validation"], batch_size=16, max_segments=2)
  meta = json.loads((tmp_path / "out" / features.FEATURES_JSON).read_text())
  levels = meta["extractors"][0]["levels"]
  assert [l["name"] for l in levels] == [f"backbone/ConvBNReLU_{i}" for i in range(3)]
  assert [l["channels"] for l in levels] == [8, 8, 16] and summary["dims"] == 32
  got = np.load(tmp_path / "out" / "validation_features.npy")
  ids = np.load(tmp_path / "out" / "validation_clip_ids.npy")
  assert got.shape == (summary["validation_clips"], 32) and np.isfinite(got).all()

  # The first clip by hand: its two segments through the model, each level max-pooled.
  extractor = features.load_extractor(workdir, data_dir=str(tiny_data_dir))
  length = extractor.input_length
  source = open_shards(tiny_data_dir).source("validation")
  record = next(source[i] for i in range(len(source)) if int(source[i]["clip_id"]) == ids[0])
  audio = np.asarray(record["audio"]).reshape(-1)
  segments = np.stack([pcm16_to_float(audio[s:s + length]) for s in (0, length)])[..., None]
  outputs = features.level_outputs(extractor.model, extractor.variables, segments)
  want = np.concatenate([np.asarray(x).max(axis=1) for _, x in outputs], -1).mean(0)
  np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)
