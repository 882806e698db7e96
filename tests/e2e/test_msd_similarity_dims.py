"""Papers 13-14's similarity dimensions on the real-data layout: an MSD miniature (real mp3
previews of click tracks at known tempi, the MSD/Last.fm SQLite files, Lee's pickled split
lists; ``tests.helpers.msd_dims_shards``) prepared by the MSD builder carries the four tag
groups (genre, mood, instrument, era) and each preview's estimated tempo, and
``configs/csn_disentangled.py`` trains on it with paper 13's dimensions (genre, mood,
instrument tags; tempo within 5 BPM) for a few steps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from musicrep_jax import config_loading
from musicrep_jax.configs import metric_learning as metric_configs
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.training import trainer
from tests.helpers import MSD_DIMS_TRACKS, msd_dims_tid

DIMENSIONS = ("tag:genre", "tag:mood", "tag:instrument", "tempo_bpm")


def test_msd_builder_writes_four_tag_groups_and_tempo(msd_dims_shards):
  shards = shards_lib.open_shards(msd_dims_shards, expected_sample_rate=16000)
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
      i = [msd_dims_tid(k) for k in range(len(MSD_DIMS_TRACKS))].index(names[int(record["track"])])
      _, tags, bpm = MSD_DIMS_TRACKS[i]
      assert abs(float(record["tempo_bpm"]) - bpm) <= 2.0, (i, float(record["tempo_bpm"]), bpm)
      carried = {shards.tag_names[k] for k in np.flatnonzero(record["tags"])}
      assert carried == set(tags)
      for group, tag in zip(("genre", "mood", "instrument", "era"), tags):
        assert shards.tag_names.index(tag) in shards.tag_groups[group]
      seen += 1
  assert seen == len(MSD_DIMS_TRACKS)


@pytest.mark.slow
def test_csn_disentangled_trains_on_msd_genre_mood_instrument_tempo(msd_dims_shards, tmp_path):
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
  summary = trainer.train(c, tmp_path / "run", data_dir=str(msd_dims_shards))
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
