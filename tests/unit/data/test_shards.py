"""Synthetic shards end to end (prepare -> open_shards -> records) and the reader's errors."""

from __future__ import annotations

import json
import pathlib
import pickle
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from musicrep_jax.data_pipelines import prepare, synthetic_builder, synthetic_corpus
from musicrep_jax.data_pipelines.synthetic_corpus import CorpusConfig, SyntheticCorpus
from musicrep_jax.data import schema as shard_schema
from musicrep_jax.errors import UserError
from musicrep_jax.data.shards import open_shards

SPLITS = ("train", "validation", "test")
TINY = dict(num_clips=60, seed=3, sample_rate=16000, clip_seconds=1.0)  # >= 60 albums' worth.


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  out = tmp_path_factory.mktemp("synthetic") / "shards"
  report = prepare.prepare_synthetic(out, **TINY, workers=2, progress=False)
  return out, report, SyntheticCorpus(CorpusConfig(**TINY))


def test_records_equal_the_corpus(built):
  out, _, corpus = built
  shards = open_shards(out, expected_sample_rate=16000)
  names = shards.metadata["instrument_names"]
  for split in SPLITS:
    source = shards.source(split)
    indices = [int(i) for i in corpus.split_indices(split)]
    assert len(source) == shards.split_sizes[split] == len(indices)
    for position, index in enumerate(indices):  # Records keep the corpus order.
      record, clip = source[position], corpus.clips[index]
      assert clip.split == split
      np.testing.assert_array_equal(record["audio"],
                                    shard_schema.float_to_pcm16(corpus.render(index)))
      np.testing.assert_array_equal(record["tags"], clip.tags)
      assert record["tags"].dtype == np.uint8 and record["audio"].dtype == np.int16
      for key in ("clip_id", "track", "album", "artist", "genre", "mood"):
        assert record[key].dtype == np.int64 and int(record[key]) == int(getattr(clip, key)), key
      assert record["tempo_bpm"].dtype == np.float32
      assert float(record["tempo_bpm"]) == pytest.approx(clip.tempo_bpm, rel=1e-6)
      assert record["path"] == clip.name.encode()
      assert tuple(np.flatnonzero(record["instruments"])) == tuple(clip.instruments)
      assert record["instruments"].shape == (len(names),)


def test_report_and_metadata(built):
  out, report, corpus = built
  assert json.loads((out / "prepare_report.json").read_text()) == report
  for split in SPLITS:
    n = len(corpus.split_indices(split))
    assert report["splits"][split] == {"seen": n, "written": n, "skipped": 0}
  assert report["total"] == {"seen": 60, "written": 60, "skipped": 0}
  assert report["skipped"] == [] and report["audio_seconds"] == pytest.approx(60.0)
  shards = open_shards(out)
  assert shards.sample_rate == 16000
  assert shards.tag_names == tuple(corpus.tag_names)
  assert shards.tag_groups == {k: [int(i) for i in v] for k, v in corpus.tag_groups.items()}
  meta = shards.metadata
  assert meta["extra_fields"] == ["genre", "mood", "tempo_bpm", "instruments"]
  assert synthetic_builder.corpus_config_from_metadata(meta) == corpus.config
  assert meta["instrument_names"] == synthetic_corpus.INSTRUMENTS
  np.testing.assert_array_equal(np.load(shards.dataset_dir / "interactions.npy"),
                                corpus.interactions)
  np.testing.assert_array_equal(np.load(shards.dataset_dir / "user_factors.npy"),
                                corpus.user_factors)
  assert report["side_files"]["interactions"] == str(shards.dataset_dir / "interactions.npy")
  # The version dir itself opens the same dataset.
  assert open_shards(shards.dataset_dir).split_sizes == shards.split_sizes


def test_sources_pickle(built):
  out, _, _ = built
  shards = open_shards(out)
  source = shards.source("train")
  first = source[0]
  for copy in (pickle.loads(pickle.dumps(source)),
               pickle.loads(pickle.dumps(shards)).source("train")):
    assert len(copy) == len(source)
    np.testing.assert_array_equal(copy[0]["audio"], first["audio"])
  np.testing.assert_array_equal(source[-1]["audio"], source[len(source) - 1]["audio"])
  with pytest.raises(IndexError):
    source[len(source)]


def test_user_errors(built, tmp_path):
  out, _, _ = built
  with pytest.raises(UserError, match="nowhere does not exist"):
    open_shards(tmp_path / "nowhere")
  with pytest.raises(UserError, match="No prepared dataset found in .*musicrep prepare synthetic "
                     "--out DIR.*musicrep prepare folder"):
    open_shards(tmp_path)
  shards = open_shards(out)
  with pytest.raises(UserError, match="Split 'training' is not in .* available splits: "
                     ".*train.*validation.*test"):
    shards.source("training")
  with pytest.raises(UserError, match=r"shards in .* are at 16000 Hz but the config expects "
                     r"22050 Hz \(config.data.sample_rate\)"):
    open_shards(out, expected_sample_rate=22050)
  two = tmp_path / "two"
  shutil.copytree(out, two)
  shutil.copytree(out / "musicrep_synthetic", two / "other_set")
  with pytest.raises(UserError, match="Several prepared datasets found in .*"
                     "musicrep_synthetic/1.0.0, other_set/1.0.0"):
    open_shards(two)
  with pytest.raises(UserError, match="already holds a prepared dataset"):
    prepare.prepare_synthetic(out, **TINY, progress=False)


def test_building_and_reading_never_imports_tensorflow(tmp_path):
  script = textwrap.dedent(f"""
      import sys
      import musicrep_jax.data.shards
      assert "tensorflow_datasets" not in sys.modules, "imported at module import time"
      import soundfile, numpy as np
      from musicrep_jax.data_pipelines import prepare, synthetic_builder, synthetic_corpus
      prepare.prepare_synthetic({str(tmp_path / "syn")!r}, num_clips=60, clip_seconds=0.25,
                                progress=False)
      soundfile.write({str(tmp_path / "a.wav")!r}, np.zeros(22050, np.float32), 22050)
      open({str(tmp_path / "m.csv")!r}, "w").write("path,split\\na.wav,train\\n")
      prepare.prepare_folder({str(tmp_path / "fold")!r}, audio_dir={str(tmp_path)!r},
                             manifest={str(tmp_path / "m.csv")!r}, progress=False)
      for d in ("syn", "fold"):
        shards = musicrep_jax.data.shards.open_shards({str(tmp_path)!r} + "/" + d)
        shards.source("train")[0]
      print("TF_IMPORTED", any(m == "tensorflow" or m.startswith("tensorflow.")
                               for m in sys.modules))
  """)
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=pathlib.Path(__file__).resolve().parents[1])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "TF_IMPORTED False" in result.stdout
