"""Paper 10's zero-shot label sets from miniature copies in the datasets' real layouts (papers.md
11.1, 11.7): MSD with Last.fm tags (SQLite files of the published schemas, mp3 previews) and FMA
genres with OpenMIC-2018 instrument judgements (FMA's three-header-row tracks.csv, genres.csv,
OpenMIC's npz and class-map.json, FMA-large mp3s). Audio is real mp3 written with soundfile,
as both datasets ship it. Splits are checked against the hash rule computed here from
``stable_bucket``; counts are checked before decoding."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from musicrep_jax.configs import zero_shot as zero_shot_config
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.data import audio_io
from musicrep_jax.data_pipelines import fma_openmic_builder as fma
from musicrep_jax.data_pipelines import msd_builder, msd_zsl_builder
from musicrep_jax.data_pipelines.manifest_builder import stable_bucket
from musicrep_jax.errors import UserError
from musicrep_jax.training import trainer
from tests.helpers import run_cli, write_msd_databases
from tests.unit.data_pipelines.test_real_datasets import build, records_by_path, write_mp3


def split_of(key: str) -> str:
  bucket = stable_bucket(key)
  return "train" if bucket < 80 else "validation" if bucket < 90 else "test"


# MSD: (msd id, 7digital id or "", {tag: Last.fm value}). Tracks carrying a tag above 50:
# rock on A, B, F (3); jazz on B, C, G (3); pop on A, D (2); Mellow on C, rare on D (1 each).
MSD_TRACKS = [
    ("TRAAAAA128F000001", "1234501", {"rock": 100, "pop": 80}),
    ("TRAAAAB128F000002", "2234502", {"rock": 90, "jazz": 60}),
    ("TRAAAAC128F000003", "3234503", {"jazz": 70, "Mellow": 55}),
    ("TRAAAAD128F000004", "4234504", {"pop": 51, "rare": 99}),
    ("TRAAAAE128F000005", "5234505", {"rock": 30}),  # No tag above 50: not in the set.
    ("TRAAAAF128F000006", "", {"rock": 60}),  # No 7digital id: skipped.
    ("TRAAAAG128F000007", "7234507", {"jazz": 90}),  # Its preview is missing.
]


@pytest.fixture(scope="module")
def msd_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("msd_zsl")
  write_msd_databases(root, [(tid, id7d, f"album{i}", f"AR{i // 2}", values)
                             for i, (tid, id7d, values) in enumerate(MSD_TRACKS)])
  for i, (tid, id7d, _) in enumerate(MSD_TRACKS):
    if id7d and tid != "TRAAAAG128F000007":
      write_mp3(root / msd_builder.preview_path(id7d), 1.5, 22050, 300.0 + 40 * i)
  return root


def test_msd_most_frequent_tags_cli_split_and_skips(msd_dir, tmp_path):
  proc = run_cli(["prepare", "msd_zsl", "--out", str(tmp_path / "out"), "--manual-dir",
                  str(msd_dir), "--num-tags", "3", "--min-seconds", "1", "--sample-rate",
                  "16000", "--workers", "2"])
  assert json.loads(proc.stdout.strip().splitlines()[-1])["builder"] == "msd_zsl"
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=16000)
  assert shards.tag_names == ("jazz", "pop", "rock")  # Top 3 (jazz / rock tie), sorted.
  records = records_by_path(shards)
  carried = {0: {"rock", "pop"}, 1: {"rock", "jazz"}, 2: {"jazz"}, 3: {"pop"}}
  assert set(records) == {msd_builder.preview_path(MSD_TRACKS[i][1]) for i in carried}
  for i, tags in carried.items():
    record = records[msd_builder.preview_path(MSD_TRACKS[i][1])]
    assert record["split"] == split_of(MSD_TRACKS[i][0])
    assert {shards.tag_names[j] for j in np.flatnonzero(record["tags"])} == tags
  report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
  assert {s["path"]: s["reason"] for s in report["skipped"]} == {
      "TRAAAAF128F000006 (no 7digital id)": "no 7digital id in track_metadata.db",
      msd_builder.preview_path("7234507"): "missing file"}


def test_msd_tag_choice_rules_and_counts(msd_dir, tmp_path, monkeypatch):
  read = msd_zsl_builder.MusicrepMsdZsl.read_layout
  vectors = tmp_path / "glove.txt"  # GloVe format; no vector for "jazz" or "rare".
  vectors.write_text("rock 1 0\npop 0 1\nmellow 1 1\n")
  assert read(str(msd_dir), "zsl", num_tags=3, word_vectors=str(vectors)).tag_names == (
      "Mellow", "pop", "rock")
  tag_list = tmp_path / "tags.txt"
  tag_list.write_text("rare\npop\n")
  manifest = read(str(msd_dir), "zsl", tag_list=str(tag_list))
  assert manifest.tag_names == ("pop", "rare")
  assert sorted(manifest.id_names["track"][r.track] for r in manifest.rows) == [
      MSD_TRACKS[0][0], MSD_TRACKS[3][0]]
  # The paper's 406,409 tracks are checked for a 1,126-tag set, before decoding, all splits
  # together; other tag counts are not checked. Here 4 usable files, checked against 5.
  assert msd_zsl_builder.MusicrepMsdZsl.paper_counts("zsl", manifest) is None
  assert msd_zsl_builder.MusicrepMsdZsl.default_min_seconds("zsl") == 29.0
  decoded = []
  monkeypatch.setattr(audio_io, "load_audio", lambda *a: decoded.append(a))
  with pytest.raises(UserError, match="all: 4 usable files, the paper's split has 5"):
    build(msd_zsl_builder.MusicrepMsdZsl, tmp_path / "out", msd_dir, sample_rate=16000,
          layout_options={"num_tags": 3}, min_seconds=1.0, expected_counts={"all": 5})
  assert decoded == []  # Checked before decoding.
  with pytest.raises(UserError, match="lastfm_tags.db was not found"):
    read(str(tmp_path), "zsl")


# FMA: track id -> (genre ids of track.genres, {instrument: OpenMIC confidence} or None when the
# track is not in OpenMIC). Genres: 12 Rock, 15 Electronic, 21 Hip-Hop, 7 Folk, 1 Avant-Garde.
FMA_TRACKS = {
    2: ([21], {"piano": 0.9, "voice": 0.2}),
    5: ([12, 15], {"guitar": 0.7, "drums": 0.5}),  # 0.5 is not > 0.5: drums judged absent.
    9: ([12], {"voice": 0.8}),
    24: ([15, 21], {"piano": 0.1}),
    20: ([21], {"bass": 0.6}),  # Its mp3 is missing.
    6: ([7], {}),  # Folk: in OpenMIC but nothing judged -> the genre and the track are dropped.
    7: ([], {"organ": 0.9}),  # No genre: dropped.
    999: ([1], None),  # Not in OpenMIC: dropped.
}
GENRE_TITLES = {1: "Avant-Garde", 7: "Folk", 12: "Rock", 15: "Electronic", 21: "Hip-Hop"}


@pytest.fixture(scope="module")
def fma_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("fma")
  (root / "fma_metadata").mkdir()
  with open(root / "fma_metadata" / "tracks.csv", "w", newline="", encoding="utf-8") as f:
    out = csv.writer(f)
    out.writerow(["", "album", "artist", "set", "track", "track"])
    out.writerow(["", "id", "id", "subset", "genres", "title"])
    out.writerow(["track_id", "", "", "", "", ""])
    for tid, (genres, _) in FMA_TRACKS.items():
      out.writerow([tid, tid // 3, tid // 5, "large", str(genres), f"Song {tid}\nline two"])
  with open(root / "fma_metadata" / "genres.csv", "w", newline="", encoding="utf-8") as f:
    out = csv.writer(f)
    out.writerow(["genre_id", "#tracks", "parent", "title", "top_level"])
    for gid, title in GENRE_TITLES.items():
      out.writerow([gid, 10, 0, title, gid])
  in_openmic = [t for t, (_, judged) in FMA_TRACKS.items() if judged is not None]
  column = {name: 19 - i for i, name in enumerate(fma.INSTRUMENTS)}  # Not alphabetical.
  y_true = np.full((len(in_openmic), 20), 0.5, np.float32)
  y_mask = np.zeros((len(in_openmic), 20), bool)
  for row, tid in enumerate(in_openmic):
    for name, confidence in FMA_TRACKS[tid][1].items():
      y_true[row, column[name]], y_mask[row, column[name]] = confidence, True
  (root / "openmic-2018").mkdir()
  np.savez(root / "openmic-2018" / "openmic-2018.npz", X=np.zeros((len(in_openmic), 2, 3)),
           Y_true=y_true, Y_mask=y_mask,
           sample_key=np.array([f"{t:06d}_{1000 * t}" for t in in_openmic]))
  (root / "openmic-2018" / "class-map.json").write_text(json.dumps(column))
  for i, tid in enumerate(FMA_TRACKS):
    if tid != 20:
      write_mp3(root / "fma_large" / fma.audio_path(tid), 1.5, 22050, 250.0 + 30 * i, channels=2)
  return root


def test_fma_openmic_genres_instruments_split_and_attribute_config(fma_dir, tmp_path):
  with pytest.raises(UserError, match="all: 4 usable files, the paper's split has 19,466"):
    build(fma.MusicrepFmaOpenmic, tmp_path / "strict", fma_dir, sample_rate=16000)
  report = build(fma.MusicrepFmaOpenmic, tmp_path / "out", fma_dir, sample_rate=16000,
                 strict_counts=False)
  assert any("all: 4 usable files" in w for w in report["warnings"])
  assert any("3 genres have instrument judgements; the paper has 157" in w
             for w in report["warnings"])
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=16000)
  present, absent = fma.instrument_tags()
  assert shards.tag_names == ("Rock", "Electronic", "Hip-Hop") + present + absent
  expected = {
      2: {"Hip-Hop", "instrument---piano", "no_instrument---voice"},
      5: {"Rock", "Electronic", "instrument---guitar", "no_instrument---drums"},
      9: {"Rock", "instrument---voice"},
      24: {"Electronic", "Hip-Hop", "no_instrument---piano"}}
  records = records_by_path(shards)
  assert set(records) == {fma.audio_path(t) for t in expected}
  for tid, tags in expected.items():
    record = records[fma.audio_path(tid)]
    assert record["split"] == split_of(str(tid))
    assert {shards.tag_names[j] for j in np.flatnonzero(record["tags"])} == tags, tid
  assert {s["path"]: s["reason"] for s in report["skipped"]} == {
      fma.audio_path(20): "missing file"}
  # zero_shot:fma turns the instrument tags into 40-d genre vectors (papers.md 11.1).
  config = zero_shot_config.get_config("fma")
  assert zero_shot_config.OPENMIC_INSTRUMENTS == fma.INSTRUMENTS
  assert config.task.kwargs.attribute_tags == present
  side = trainer.make_task(config).bind(shards).data
  assert side.vectors.shape == (len(shards.tag_names), 40)
  assert list(side.seen | side.unseen) == [True] * 3 + [False] * 40
  assert (side.seen.sum(), side.unseen.sum()) == (2, 1)  # int(0.8 * 3) seen.
  hip_hop = side.vectors[2]  # Training clip 2: piano present, voice judged absent.
  assert hip_hop[fma.INSTRUMENTS.index("piano")] > 0 and hip_hop[20 + 19] > 0
  assert np.sum(hip_hop > 0) == 2


def test_fma_layout_errors_are_user_errors(fma_dir, tmp_path):
  with pytest.raises(UserError, match="tracks.csv was not found"):
    fma.MusicrepFmaOpenmic.read_layout(str(tmp_path), "zsl")
  bad = tmp_path / "bad"
  (bad / "fma_metadata").mkdir(parents=True)
  for name in ("tracks.csv", "genres.csv"):
    (bad / "fma_metadata" / name).write_text((fma_dir / "fma_metadata" / name).read_text())
  (bad / "openmic-2018.npz").write_bytes(b"not a zip")
  (bad / "class-map.json").write_text(json.dumps({n: i for i, n in enumerate(fma.INSTRUMENTS)}))
  with pytest.raises(UserError, match="is not OpenMIC-2018's npz"):
    fma.MusicrepFmaOpenmic.read_layout(str(bad), "zsl")
