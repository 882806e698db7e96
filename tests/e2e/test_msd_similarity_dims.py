"""Papers 13-14's similarity dimensions on the real-data layout: an MSD miniature (real mp3
previews of click tracks at known tempi, the MSD/Last.fm SQLite files, Lee's pickled split
lists) prepared by the MSD builder carries the four tag groups (genre, mood, instrument, era)
and each preview's estimated tempo, and ``configs/csn_disentangled.py`` trains on it with paper
13's dimensions (genre, mood, instrument tags; tempo within 5 BPM) for a few steps."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import config_loading
from musicrep_jax.configs import metric_learning as metric_configs
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.data_pipelines import dataset_layouts, msd_builder
from musicrep_jax.training import trainer
from tests.helpers import click_track, write_msd_databases

# (split list, Last.fm tags (value 100) of genre, mood, instrument, era, tempo in BPM). The first
# NUM_TRAIN ids of the train list are train, the rest validation. Train has >= 2 classes per
# dimension (8 tempo bins); validation and test each hold a pair sharing every dimension's
# class (tempo within 5 BPM) and a clip differing from it.
TRACKS = [
    ("train", ("rock", "happy", "guitar", "80s"), 72.0),
    ("train", ("jazz", "sad", "female vocalists", "90s"), 84.5),
    ("train", ("House", "Mellow", "male vocalists", "00s"), 97.0),
    ("train", ("Hip-Hop", "happy", "guitar", "90s"), 109.5),
    ("train", ("rock", "sad", "male vocalists", "00s"), 122.0),
    ("train", ("jazz", "Mellow", "guitar", "80s"), 134.5),
    ("train", ("House", "happy", "female vocalists", "00s"), 147.0),
    ("train", ("Hip-Hop", "sad", "male vocalists", "80s"), 159.5),
    ("train", ("rock", "Mellow", "guitar", "90s"), 91.0),  # Validation from here.
    ("train", ("rock", "Mellow", "guitar", "90s"), 92.0),
    ("train", ("jazz", "happy", "female vocalists", "00s"), 171.0),
    ("test", ("House", "sad", "male vocalists", "80s"), 118.0),
    ("test", ("House", "sad", "male vocalists", "80s"), 120.0),
    ("test", ("Hip-Hop", "Mellow", "guitar", "00s"), 66.0),
]
NUM_TRAIN = 8
PREVIEW_SECONDS = 8.0
DIMENSIONS = ("tag:genre", "tag:mood", "tag:instrument", "tempo_bpm")


def tid(i: int) -> str:
  return f"TRAAAA{i:02d}128F00000{i % 10}"


def write_msd_copy(root) -> None:
  """track_metadata.db, lastfm_tags.db (their real schemas), the split pickles and previews."""
  write_msd_databases(root, [(tid(i), str(1000001 + 1111 * i), f"album{i // 2}", f"AR{i // 3}",
                              {name: 100 for name in names})
                             for i, (_, names, _) in enumerate(TRACKS)])
  for i, (_, _, bpm) in enumerate(TRACKS):
    path = root / "audio" / msd_builder.preview_path(str(1000001 + 1111 * i))
    path.parent.mkdir(parents=True, exist_ok=True)
    clicks = click_track(bpm, 22050, PREVIEW_SECONDS, seed=i)
    tone = 0.1 * np.sin(2 * np.pi * (200.0 + 60 * (i % 4)) * np.arange(len(clicks)) / 22050)
    sf.write(path, np.stack([clicks + tone, clicks - tone], 1), 22050, format="MP3")
  for name, split in [("filtered_list_train.cP", "train"), ("filtered_list_test.cP", "test")]:
    with open(root / name, "wb") as f:
      pickle.dump([tid(i) for i, t in enumerate(TRACKS) if t[0] == split], f, protocol=2)


@pytest.fixture(scope="module")
def msd_shards(tmp_path_factory):
  root = tmp_path_factory.mktemp("msd_dims")
  write_msd_copy(root)
  out = root / "out"
  report = dataset_layouts.prepare_layout(
      msd_builder.MusicrepMsd, out, manual_dir=root, sample_rate=16000,
      layout_options={"num_train": NUM_TRAIN},
      expected_counts={"train": NUM_TRAIN, "validation": 3, "test": 3}, workers=2,
      progress=False)
  assert report["written"] == len(TRACKS) and report["params"]["tempo"] is True
  return out


def test_msd_builder_writes_four_tag_groups_and_tempo(msd_shards):
  shards = shards_lib.open_shards(msd_shards, expected_sample_rate=16000)
  sizes = {g: len(c) for g, c in shards.tag_groups.items()}
  assert sizes == {"genre": 28, "mood": 12, "instrument": 5, "era": 5}
  assert shards.metadata["extra_fields"] == ["tempo_bpm"]
  assert "onset-autocorrelation" in shards.metadata["tempo"]
  names = shards.metadata["track_names"]
  seen = 0
  for split, size in shards.split_sizes.items():
    source = shards.source(split)
    for j in range(size):
      record = source[j]
      i = [tid(k) for k in range(len(TRACKS))].index(names[int(record["track"])])
      _, tags, bpm = TRACKS[i]
      assert abs(float(record["tempo_bpm"]) - bpm) <= 2.0, (i, float(record["tempo_bpm"]), bpm)
      carried = {shards.tag_names[k] for k in np.flatnonzero(record["tags"])}
      assert carried == set(tags)
      for group, tag in zip(("genre", "mood", "instrument", "era"), tags):
        assert shards.tag_names.index(tag) in shards.tag_groups[group]
      seen += 1
  assert seen == len(TRACKS)


@pytest.mark.slow
def test_csn_disentangled_trains_on_msd_genre_mood_instrument_tempo(msd_shards, tmp_path):
  """A few steps of paper 13's system (tiny widths) on the MSD miniature: every P x K block,
  tempo included, gives a finite loss, and evaluation reports the four dimensions and era."""
  c = config_loading.load_config_file(
      config_loading.resolve_config_spec("csn_disentangled:runlocal"))
  metric_configs.metric_tiny(c, num_train_steps=4)
  c.data.sample_rate = 16000
  c.data.num_workers = 0
  c.task.kwargs.labels = DIMENSIONS
  c.task.kwargs.eval_labels = DIMENSIONS + ("tag:era",)
  c.task.kwargs.classes_per_batch = c.task.kwargs.samples_per_class = 2
  c.batch_size = len(DIMENSIONS) * 4
  c.log_every = 1
  c.eval_every = c.checkpoint_every = 4
  summary = trainer.train(c, tmp_path / "run", data_dir=str(msd_shards))
  lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  rows = [json.loads(line) for line in lines]
  losses = [r["loss"] for r in rows if r.get("split") == "train"]
  assert len(losses) == 4 and all(math.isfinite(x) and x > 0 for x in losses), losses
  test = summary["test"]
  assert summary["step"] == 4 and test["clips"] == 3
  # Held-out retrieval and triplets per tag dimension, on the complete space and (genre, mood,
  # instrument: trained subspaces) on the dimension's own subspace.
  for label in DIMENSIONS[:3] + ("tag:era",):
    assert math.isfinite(test[f"{label}/map"]) and math.isfinite(test[f"{label}/triplet_acc"])
  for label in DIMENSIONS[:3]:
    assert math.isfinite(test[f"{label}/sub_triplet_acc"]), label
  assert "tempo_bpm/triplet_acc" in test and math.isfinite(test["loss"])
