"""The MSD artist split (papers 4, 8, 9) and Tagtraum (paper 2) builders on miniature copies in
the datasets' own layouts: real mp3 previews written with soundfile in MSD's
``<d0>/<d1>/<7digital id>.clip.mp3`` tree, the split lists as the repositories ship them (a
pickled ``msd-artist-list.pkl``, Python-2 pickled ``train_list.cP`` / ``test_list.cP``), tagtraum's
``.cls`` annotations and MSD's ``track_metadata.db`` schema. Checked: labels, the split of every
record, skipped files, and the split sizes before decoding (the paper's rule for the artist
split; the paper's numbers for tagtraum)."""

from __future__ import annotations

import json
import pickle
import sqlite3

import numpy as np
import pytest

from musicrep_jax import cli
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.data_pipelines import msd_artist_builder, msd_builder, tagtraum_builder
from musicrep_jax.errors import UserError
from tests.unit.data_pipelines.test_real_datasets import build, records_by_path, write_mp3

SR = 16000


def write_track_metadata(path, rows) -> None:
  """MSD's ``songs`` table with ``(track_id, 7digital id, artist_id, release)`` rows."""
  db = sqlite3.connect(path)
  db.execute("CREATE TABLE songs (track_id text PRIMARY KEY, title text, song_id text, "
             "release text, artist_id text, artist_mbid text, artist_name text, duration real, "
             "artist_familiarity real, artist_hotttnesss real, year int, track_7digitalid int, "
             "shs_perf int, shs_work int)")
  for tid, id7d, artist, release in rows:
    db.execute("INSERT INTO songs (track_id, track_7digitalid, artist_id, release) "
               "VALUES (?, ?, ?, ?)", (tid, id7d, artist, release))
  db.commit()
  db.close()


# ---------------------------------------------------------------------------- MSD artist split

ARTISTS = 3  # In the list; the builds use the first 2 (whose 40 previews all exist).


def artist_id7d(artist: int, song: int) -> str:
  return f"{artist}{song:02d}{artist * 7 + song:03d}"  # e.g. "101008": 6 digits, unique.


@pytest.fixture(scope="module")
def artist_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("msd_artist")
  lines = [f"{artist_id7d(a, s)}/{a}/{s}" for a in range(1, ARTISTS + 1)
           for s in np.random.default_rng(a).permutation(np.arange(1, 21))]
  (root / "msd-artist-split").mkdir()
  with open(root / "msd-artist-split" / "msd-artist-list.pkl", "wb") as f:
    pickle.dump(lines, f)
  for a in (1, 2):
    for s in range(1, 21):
      write_mp3(root / "audio" / msd_builder.preview_path(artist_id7d(a, s)), 1.0, 22050,
                200.0 + 100 * a + 5 * s)
  # Artist 1's previews are in the MSD metadata (track id and album), artist 2's are not.
  write_track_metadata(root / "track_metadata.db", [
      (f"TRART1SONG{s:02d}", int(artist_id7d(1, s)), "ARONE", f"album{s % 2}")
      for s in range(1, 21)])
  return root


def test_msd_artist_split_songs_and_artists_with_the_papers_counts(artist_dir, tmp_path):
  """Two artists through `musicrep prepare msd_artist`: 30 / 6 / 4 previews, the rule's counts
  (15 / 3 / 2 per artist) checked."""
  assert cli.main(["prepare", "msd_artist", "--manual-dir", str(artist_dir), "--out",
                   str(tmp_path / "out"), "--sample-rate", str(SR), "--min-seconds", "0.5",
                   "--num-artists", "2", "--workers", "2"]) == 0
  report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
  assert report["written"] == 40 and not report["skipped"]
  assert {s: c["written"] for s, c in report["splits"].items()} == {
      "train": 30, "validation": 6, "test": 4}
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=SR)
  assert shards.tag_names == () and shards.metadata["artist_names"] == ["1", "2"]
  records = records_by_path(shards)
  tracks, albums = shards.metadata["track_names"], shards.metadata["album_names"]
  for a in (1, 2):
    for s in range(1, 21):
      record = records[msd_builder.preview_path(artist_id7d(a, s))]
      assert record["split"] == ("train" if s <= 15 else "validation" if s <= 18 else "test")
      assert int(record["artist"]) == a - 1
      track = tracks[int(record["track"])]
      if a == 1:  # From track_metadata.db.
        assert track == f"TRART1SONG{s:02d}"
        assert albums[int(record["album"])] == f"ARONE/album{s % 2}"
      else:
        assert track == artist_id7d(a, s) and int(record["album"]) == -1
      assert abs(len(record["audio"]) - SR) < 0.02 * SR  # 1 s at 22.05 kHz -> 16 kHz.


def test_msd_artist_counts_fail_before_decoding_and_bad_lists(artist_dir, tmp_path, monkeypatch):
  """Artist 3's previews are missing: the paper's counts for 3 artists fail before any
  decoding; malformed lists are one-line errors."""
  from musicrep_jax.data import audio_io

  calls = []
  monkeypatch.setattr(audio_io, "load_audio", lambda *a: calls.append(a))
  with pytest.raises(UserError, match=r"train: 30 usable files, the paper's split has 45"):
    build(msd_artist_builder.MusicrepMsdArtist, tmp_path / "out", artist_dir,
          layout_options={"num_artists": 3}, min_seconds=0.5)
  assert calls == []  # Nothing was decoded.
  with pytest.raises(UserError, match=r"fewer than the 80 of 4 artist\(s\)"):
    msd_artist_builder.MusicrepMsdArtist.read_layout(str(artist_dir), "park", num_artists=4)
  bad = tmp_path / "bad"
  bad.mkdir()
  for lines, message in [(["1001/1/1", "1002/x/2"] + [f"10{i:02d}/1/{i}" for i in range(3, 21)],
                          r"Line 2 .* not '<7digital id>"),
                         ([f"{i}/1/{min(i, 19)}" for i in range(1, 21)],
                          r"Artist 1 .* has the songs \[1, 2, .*19, 19\]")]:
    with open(bad / "msd-artist-list.pkl", "wb") as f:
      pickle.dump(lines, f)
    with pytest.raises(UserError, match=message):
      msd_artist_builder.MusicrepMsdArtist.read_layout(str(bad), "park", num_artists=1)


# ----------------------------------------------------------------------------------- Tagtraum

# (track id, 7digital id or "", list, genre or None). Train list = first 4, validation = rest.
TAGTRAUM = [
    ("TRTAG000001", "3100001", "train", "Rock"),
    ("TRTAG000002", "3100002", "train", "Jazz"),
    ("TRTAG000003", "3100003", "train", "Rap"),
    ("TRTAG000004", "3100004", "train", None),      # No CD2C annotation: skipped.
    ("TRTAG000005", "3100005", "validation", "Rock"),
    ("TRTAG000006", "", "validation", "Jazz"),      # No 7digital id: skipped.
    ("TRTAG000007", "3100007", "test", "Rap"),
    ("TRTAG000008", "3100008", "test", "Rock"),
]
GENRES = ("Electronic", "Jazz", "Rap", "Rock")  # "Electronic" only annotates an unlisted track.


@pytest.fixture(scope="module")
def tagtraum_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tagtraum")
  lines = ["# tagtraum MSD genre annotations, CD2C", "# TRACK_ID\tGENRE"]
  lines += [f"{tid}\t{genre}" for tid, _, _, genre in TAGTRAUM if genre]
  lines.append("TRUNLISTED01\tElectronic")
  (root / "msd_tagtraum_cd2c.cls").write_text("\n".join(lines) + "\n")
  (root / "TAGTRAUM_split").mkdir()
  for name, lists in (("train_list.cP", ("train", "validation")), ("test_list.cP", ("test",))):
    with open(root / "TAGTRAUM_split" / name, "wb") as f:
      pickle.dump([t[0] for t in TAGTRAUM if t[2] in lists], f, protocol=2)
  write_track_metadata(root / "track_metadata.db", [
      (tid, int(id7d or -1), f"AR{i // 3}", f"rel{i}") for i, (tid, id7d, _, _) in
      enumerate(TAGTRAUM)])
  for i, (_, id7d, _, _) in enumerate(TAGTRAUM):
    if id7d:
      write_mp3(root / "7digital" / msd_builder.preview_path(id7d), 1.0, 22050, 300.0 + 50 * i,
                channels=2)
  return root


def test_tagtraum_cd2c_one_hot_genres_split_and_skips(tagtraum_dir, tmp_path):
  report = build(tagtraum_builder.MusicrepTagtraum, tmp_path / "out", tagtraum_dir,
                 sample_rate=SR, min_seconds=0.5, layout_options={"num_train": 4},
                 expected_counts={"train": 3, "validation": 1, "test": 2})
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=SR)
  assert shards.tag_names == GENRES
  records = records_by_path(shards)
  usable = [t for t in TAGTRAUM if t[1] and t[3]]
  assert set(records) == {msd_builder.preview_path(t[1]) for t in usable}
  for tid, id7d, split, genre in usable:
    record = records[msd_builder.preview_path(id7d)]
    assert record["split"] == split and shards.metadata["track_names"][
        int(record["track"])] == tid
    assert record["tags"].tolist() == [int(g == genre) for g in GENRES]  # One-hot.
  reasons = {item["path"]: item["reason"] for item in report["skipped"]}
  assert reasons == {msd_builder.preview_path("3100004"): tagtraum_builder.NO_GENRE,
                     "TRTAG000006 (no 7digital id)": "no 7digital id in track_metadata.db"}


def test_tagtraum_paper_counts_and_layout_errors(tagtraum_dir, tmp_path):
  manifest = tagtraum_builder.MusicrepTagtraum.read_layout(str(tagtraum_dir), "lee", num_train=4)
  assert tagtraum_builder.MusicrepTagtraum.paper_counts("lee", manifest) == {
      "train": 141372, "validation": 2, "test": 37817}
  with pytest.raises(UserError, match=r"train: 3 usable files, the paper's split has 141,372"):
    build(tagtraum_builder.MusicrepTagtraum, tmp_path / "out", tagtraum_dir,
          layout_options={"num_train": 4}, min_seconds=0.5)
  with pytest.raises(UserError, match="The tagtraum genre annotations was not found"):
    tagtraum_builder.MusicrepTagtraum.read_layout(str(tmp_path), "lee")
  (tmp_path / "msd_tagtraum_cd2c.cls").write_text("# header\nTRONLYID\n")
  with pytest.raises(UserError, match=r"Line 2 .* not '<track id>"):
    tagtraum_builder.read_annotations(str(tmp_path / "msd_tagtraum_cd2c.cls"))
