"""MTAT, MSD, GTZAN and MTG-Jamendo builders on miniature copies in each dataset's real layout.

Every copy is generated here: real mp3 (and wav/au) files written with soundfile, the index
files in their published formats (MTAT's tab-separated annotations, Python-2 pickled split
lists, the MSD/Last.fm SQLite schemas, Jamendo's tsvs), plus broken files. The tests check the
labels, the split of every record, the counts and their check, the report of skipped files, the
sample-rate configs, and that a killed build resumes without decoding finished files again.
"""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data import audio_io
from musicrep_jax.data_pipelines import dataset_layouts, gtzan_builder, jamendo_builder
from musicrep_jax.data_pipelines import msd_builder, mtat_builder
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.errors import UserError
from tests.helpers import run_cli, write_msd_databases

MTAT_TAGS = ["guitar", "classical", "slow", "techno", "rock", "piano", "weird", "choral"]
# Miniature MTAT: (clip_id, folder, song, seconds, tags). Tag frequencies make the top 4
# unambiguous: guitar 7, rock 6, slow 5, piano 4, then classical 2, techno/weird/choral 1.
MTAT_CLIPS = [
    ("1", "0", "ann-first-01-alpha", 2.0, ["guitar", "rock"]),
    ("2", "0", "ann-first-01-alpha", 2.0, ["guitar", "slow"]),
    ("3", "3", "bob-second-02-beta", 2.0, ["piano", "slow", "classical"]),
    ("4", "5", "bob-second-03-gamma", 2.0, ["weird"]),  # No top-4 tag: not in the lee split.
    ("5", "a", "cid-third-01-delta", 2.0, ["rock", "guitar"]),
    ("6", "b", "cid-third-02-eps", 1.0, ["rock"]),  # Shorter than the miniature 1.5 s rule.
    ("7", "c", "dan-fourth-01-zeta", 2.0, ["guitar", "piano"]),
    ("8", "c", "dan-fourth-01-zeta", 2.0, ["slow", "rock"]),
    ("9", "c", "dan-fourth-02-eta", 2.0, []),  # No tag at all.
    ("10", "d", "eve-fifth-01-theta", 2.0, ["guitar", "piano", "techno"]),
    ("11", "e", "eve-fifth-02-iota", 2.0, ["rock", "slow", "choral"]),
    ("12", "f", "fay-sixth-01-kappa", 2.0, ["guitar", "piano", "classical"]),
    ("13", "f", "fay-sixth-01-kappa", 2.0, ["guitar", "rock", "slow"]),
    ("14", "9", "gus-seventh-01-lambda", 2.0, ["guitar"]),  # Written as a corrupt mp3.
]
MTAT_TOP4 = ("guitar", "rock", "slow", "piano")
CORRUPT_CLIP = "14"
BROKEN_ID = "35644"  # One of the three empty files of the official archive.


def tone(seconds: float, sample_rate: int, freq: float, channels: int = 1) -> np.ndarray:
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  wave = 0.3 * np.sin(2 * np.pi * freq * t)
  return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def write_mp3(path, seconds: float, sample_rate: int = 16000, freq: float = 440.0,
              channels: int = 1) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  sf.write(path, tone(seconds, sample_rate, freq, channels), sample_rate, format="MP3")


def mtat_path(clip) -> str:
  clip_id, folder, song, _, _ = clip
  return f"{folder}/{song}-{int(clip_id) * 29}-{int(clip_id) * 29 + 29}.mp3"


@pytest.fixture(scope="module")
def mtat_dir(tmp_path_factory):
  """A miniature MagnaTagATune copy: annotations_final.csv and mp3 folders (under mp3/)."""
  root = tmp_path_factory.mktemp("mtat")
  header = ["clip_id", *MTAT_TAGS, "mp3_path"]
  lines = ["\t".join(f'"{h}"' for h in header)]
  for clip in MTAT_CLIPS:
    clip_id, _, _, seconds, tags = clip
    cells = [clip_id, *("1" if t in tags else "0" for t in MTAT_TAGS), mtat_path(clip)]
    lines.append("\t".join(f'"{c}"' for c in cells))
    if clip_id == CORRUPT_CLIP:
      (root / "mp3" / mtat_path(clip)).parent.mkdir(parents=True, exist_ok=True)
      (root / "mp3" / mtat_path(clip)).write_bytes(np.random.default_rng(0).bytes(3000))
    else:
      write_mp3(root / "mp3" / mtat_path(clip), seconds, freq=200.0 + 50 * int(clip_id))
  broken = mtat_builder.KNOWN_BROKEN[BROKEN_ID]
  (root / "mp3" / broken).parent.mkdir(parents=True, exist_ok=True)
  (root / "mp3" / broken).write_bytes(b"")  # 0 bytes, as in the official archive.
  lines.append("\t".join(f'"{c}"' for c in [BROKEN_ID, "1", *["0"] * 7, broken]))
  (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")
  return root


def mtat_expected(variant: str) -> dict[str, tuple[str, tuple[str, ...]]]:
  """mp3_path -> (split, top-4 tags) of the clips that should be written."""
  out = {}
  for clip in MTAT_CLIPS:
    clip_id, folder, _, seconds, tags = clip
    top = tuple(t for t in MTAT_TOP4 if t in tags)
    if clip_id == CORRUPT_CLIP or (variant == "lee" and (not top or seconds < 1.5)):
      continue
    out[mtat_path(clip)] = (mtat_builder.FOLDER_SPLITS[folder], top)
  return out


def split_counts(expected: dict) -> dict[str, int]:
  counts = {"train": 0, "validation": 0, "test": 0}
  for split, _ in expected.values():
    counts[split] += 1
  return counts


def records_by_path(shards) -> dict[str, dict]:
  out = {}
  for split in shards.split_sizes:
    source = shards.source(split)
    for i in range(len(source)):
      record = source[i]
      out[record["path"].decode()] = dict(record, split=split)
  return out


def build(builder_cls, out, manual_dir, **kwargs):
  kwargs.setdefault("workers", 2)
  kwargs.setdefault("progress", False)
  return dataset_layouts.prepare_layout(builder_cls, out, manual_dir=manual_dir, **kwargs)


def check_records(shards, expected: dict, sample_rate: int) -> None:
  """Every expected clip is written once, in its split, with its multi-hot tags."""
  records = records_by_path(shards)
  assert set(records) == set(expected)
  for path, (split, tags) in expected.items():
    record = records[path]
    assert record["split"] == split, path
    assert [shards.tag_names[i] for i in np.flatnonzero(record["tags"])] == sorted(
        tags, key=shards.tag_names.index), path
  assert shards.sample_rate == sample_rate


def test_mtat_lee_split_labels_counts_and_broken_files(mtat_dir, tmp_path):
  expected = mtat_expected("lee")
  report = build(mtat_builder.MusicrepMtat, tmp_path / "out", mtat_dir, variant="lee",
                 sample_rate=22050, min_seconds=1.5, layout_options={"num_tags": 4},
                 expected_counts=split_counts(expected))
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=22050)
  assert shards.tag_names == MTAT_TOP4
  assert shards.dataset_dir.parts[-2] == "lee_22050hz"
  check_records(shards, expected, 22050)
  reasons = {item["path"]: item["reason"] for item in report["skipped"]}
  assert reasons[mtat_builder.KNOWN_BROKEN[BROKEN_ID]] == mtat_builder.BROKEN_REASON
  assert reasons[mtat_path(MTAT_CLIPS[13])].startswith("corrupt or unsupported audio")
  assert reasons[mtat_path(MTAT_CLIPS[5])].startswith("too short")
  assert len(reasons) == 3
  assert {s: c["written"] for s, c in report["splits"].items()} == split_counts(expected)
  # 16 kHz mp3 upsampled to 22.05 kHz; ids come from the mp3 names.
  records = records_by_path(shards)
  first = records[mtat_path(MTAT_CLIPS[0])]
  assert abs(len(first["audio"]) - 2.0 * 22050) < 0.02 * 22050
  assert first["track"] == records[mtat_path(MTAT_CLIPS[1])]["track"]
  assert shards.metadata["artist_names"][int(first["artist"])] == "ann"
  assert not os.path.exists(tmp_path / "out" / "musicrep_mtat" / "lee_22050hz" /
                            ".decode_cache-1.0.0")  # Removed after success.


def test_mtat_full_split_at_16k(mtat_dir, tmp_path):
  expected = mtat_expected("full")
  build(mtat_builder.MusicrepMtat, tmp_path / "out", mtat_dir, variant="full",
        sample_rate=16000, min_seconds=0.9, layout_options={"num_tags": 4},
        expected_counts=split_counts(expected))
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=16000)
  check_records(shards, expected, 16000)
  record = records_by_path(shards)[mtat_path(MTAT_CLIPS[8])]
  assert record["tags"].sum() == 0  # Untagged clips stay in the full split.
  audio = record["audio"].astype(np.float64)
  peak_hz = np.argmax(np.abs(np.fft.rfft(audio * np.hanning(len(audio))))) * 16000 / len(audio)
  assert abs(peak_hz - 650.0) < 5  # The clip's tone survives mp3 round trip and decoding.


def test_mtat_lee_lists_override_the_derived_split(mtat_dir, tmp_path):
  """Lee's Python-2 pickled lists (``.npy`` names) decide the split when given."""
  lists = {"train": [MTAT_CLIPS[0], MTAT_CLIPS[6]], "validation": [MTAT_CLIPS[9]],
           "test": [MTAT_CLIPS[2], MTAT_CLIPS[12]]}
  for split, clips in lists.items():
    names = [mtat_path(c).replace(".mp3", ".npy") for c in clips]
    with open(tmp_path / mtat_builder.LIST_FILES[split], "wb") as f:
      pickle.dump(names, f, protocol=0)
  report = build(mtat_builder.MusicrepMtat, tmp_path / "out", mtat_dir, variant="lee",
                 layout_options={"num_tags": 4, "lists": str(tmp_path)},
                 expected_counts={"train": 2, "validation": 1, "test": 2})
  shards = shards_lib.open_shards(tmp_path / "out")
  records = records_by_path(shards)
  assert {p: r["split"] for p, r in records.items()} == {
      mtat_path(c): s for s, clips in lists.items() for c in clips}
  assert report["skipped"] == [] and "Lee's lists" in shards.metadata["split_rule"]


def test_count_mismatch_fails_before_decoding_or_warns(mtat_dir, tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(audio_io, "load_audio", lambda *a: calls.append(a))
  wrong = {"train": 99, "validation": None, "test": None}
  train = split_counts(mtat_expected("lee"))["train"]
  with pytest.raises(UserError, match=f"train: {train} usable files, the paper's split has 99"):
    build(mtat_builder.MusicrepMtat, tmp_path / "a", mtat_dir, min_seconds=1.5,
          layout_options={"num_tags": 4}, expected_counts=wrong)
  assert calls == []  # Nothing was decoded.
  monkeypatch.undo()
  report = build(mtat_builder.MusicrepMtat, tmp_path / "b", mtat_dir, min_seconds=1.5,
                 layout_options={"num_tags": 4}, expected_counts=wrong, strict_counts=False)
  assert any("the paper's split has 99" in w for w in report["warnings"])
  assert report["splits"]["train"]["written"] == train


def test_killed_build_resumes_from_the_decode_cache(mtat_dir, tmp_path, monkeypatch):
  real_load = audio_io.load_audio
  calls = []

  def dies_on_the_fifth(path, rate):
    calls.append(path)
    if len(calls) == 5:
      raise KeyboardInterrupt("killed")
    return real_load(path, rate)

  monkeypatch.setattr(audio_io, "load_audio", dies_on_the_fifth)
  kwargs = dict(variant="full", sample_rate=16000, workers=1, min_seconds=0.9,
                layout_options={"num_tags": 4}, expected_counts=None)
  with pytest.raises(KeyboardInterrupt):
    build(mtat_builder.MusicrepMtat, tmp_path / "out", mtat_dir, **kwargs)
  cache = tmp_path / "out" / "musicrep_mtat" / "full_16000hz" / ".decode_cache-1.0.0"
  assert len(list(cache.glob("*.npy"))) == 4
  assert not list(cache.parent.glob("1.0.0"))  # No dataset was published.
  first_run = list(calls)
  calls.clear()
  monkeypatch.setattr(audio_io, "load_audio", lambda path, rate: (calls.append(path),
                                                                  real_load(path, rate))[1])
  report = build(mtat_builder.MusicrepMtat, tmp_path / "out", mtat_dir, **kwargs)
  assert not set(first_run[:4]) & set(calls)  # Finished files were not decoded again.
  assert len(calls) == report["total"]["seen"] - 2 - 4  # Less the 2 unprobed, the 4 cached.
  assert any("4 file(s) came from its decode cache" in w for w in report["warnings"])
  expected = mtat_expected("full")
  check_records(shards_lib.open_shards(tmp_path / "out"), expected, 16000)
  assert not cache.exists()


# MSD: (msd id, 7digital id or "", split list, {tag: Last.fm value}); num_train = 3.
MSD_TRACKS = [
    ("TRAAAAA128F000001", "1234501", "train", {"rock": 100, "pop": 20}),
    ("TRAAAAB128F000002", "2234502", "train", {"jazz": 80, "Mellow": 60}),
    ("TRAAAAC128F000003", "3234503", "train", {"rock": 51, "00s": 50}),  # 50 is not > 50.
    ("TRAAAAD128F000004", "4234504", "train", {"House": 90}),  # 4th of the train list: valid.
    ("TRAAAAE128F000005", "", "train", {"rock": 100}),  # No 7digital id: valid, skipped.
    ("TRAAAAF128F000006", "6234506", "test", {"happy": 70, "sad": 70}),
    ("TRAAAAG128F000007", "7234507", "test", {}),
    ("TRAAAAH128F000008", "8234508", "test", {"jazz": 99}),  # Its preview is missing.
]


@pytest.fixture(scope="module")
def msd_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("msd")
  songs = [(tid, id7d, f"album{i // 2}", f"AR{i // 3}", values)
           for i, (tid, id7d, _, values) in enumerate(MSD_TRACKS)]
  write_msd_databases(root, songs + [("TRZZZ", "999", None, None, None)])  # TRZZZ: unlisted.
  for i, (tid, id7d, _, _) in enumerate(MSD_TRACKS):
    if id7d and tid != "TRAAAAH128F000008":
      write_mp3(root / "audio" / msd_builder.preview_path(id7d), 1.5, 22050, 300.0 + i * 40,
                channels=2)
  for name, which in [("filtered_list_train.cP", "train"), ("filtered_list_test.cP", "test")]:
    (root / "MSD_split").mkdir(exist_ok=True)
    with open(root / "MSD_split" / name, "wb") as f:
      pickle.dump([t[0] for t in MSD_TRACKS if t[2] == which], f, protocol=2)
  return root


def test_msd_split_tags_and_missing_previews(msd_dir, tmp_path):
  report = build(msd_builder.MusicrepMsd, tmp_path / "out", msd_dir, sample_rate=16000,
                 layout_options={"num_train": 3},
                 expected_counts={"train": 3, "validation": 1, "test": 2})
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=16000)
  assert list(shards.tag_names) == dataset_layouts.packaged_list("msd_50_tags.txt")
  assert len(shards.tag_names) == 50
  records = records_by_path(shards)
  expected_split = {0: "train", 1: "train", 2: "train", 3: "validation", 5: "test", 6: "test"}
  assert set(records) == {msd_builder.preview_path(MSD_TRACKS[i][1]) for i in expected_split}
  track_names = shards.metadata["track_names"]
  for i, split in expected_split.items():
    tid, id7d, _, values = MSD_TRACKS[i]
    record = records[msd_builder.preview_path(id7d)]
    assert record["split"] == split and track_names[int(record["track"])] == tid
    got = {shards.tag_names[j] for j in np.flatnonzero(record["tags"])}
    assert got == {t for t, v in values.items() if v > 50}, tid
    assert abs(len(record["audio"]) - 1.5 * 16000) < 0.02 * 16000  # Stereo 22.05k -> mono 16k.
  reasons = {item["path"]: item["reason"] for item in report["skipped"]}
  assert reasons == {"TRAAAAE128F000005 (no 7digital id)": "no 7digital id in track_metadata.db",
                     msd_builder.preview_path("8234508"): "missing file"}


def test_msd_missing_index_file_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="Lee's MSD train list was not found"):
    build(msd_builder.MusicrepMsd, tmp_path / "out", tmp_path)
  assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def gtzan_dir(tmp_path_factory):
  """Kaggle layout (genres_original/, .wav) with blues as .au and the corrupt jazz.00054.wav;
  only two listed files per split and genre exist."""
  root = tmp_path_factory.mktemp("gtzan") / "genres_original"
  written = {}
  for split, name in gtzan_builder.LIST_FILES.items():
    for genre in gtzan_builder.GENRES:
      listed = [p for p in dataset_layouts.packaged_list(name) if p.startswith(genre + "/")][:2]
      for i, path in enumerate(listed):
        if genre == "blues":
          path = path.replace(".wav", ".au")
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / path, tone(1.2, 8000, 220.0 * (i + 1)), 8000)
        written[path] = split
  (root / gtzan_builder.KAGGLE_BROKEN).write_bytes(b"RIFF\x00\x00junk" * 20)
  return root.parent, written


def test_gtzan_fault_filtered_split(gtzan_dir, tmp_path):
  manual_dir, written = gtzan_dir
  counts = {s: list(written.values()).count(s) for s in ("train", "validation", "test")}
  report = build(gtzan_builder.MusicrepGtzan, tmp_path / "out", manual_dir, sample_rate=16000,
                 expected_counts=counts)
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=16000)
  assert shards.tag_names == gtzan_builder.GENRES
  check_records(shards, {p: (s, (p.split("/")[0],)) for p, s in written.items()}, 16000)
  reasons = {item["path"]: item["reason"] for item in report["skipped"]}
  assert reasons.pop(gtzan_builder.KAGGLE_BROKEN) == gtzan_builder.BROKEN_REASON
  assert set(reasons.values()) == {"missing file"} and len(reasons) == 930 - len(written) - 1
  # The paper's counts, less the corrupt Kaggle file, are what a complete copy is checked against.
  manifest = gtzan_builder.MusicrepGtzan.read_layout(str(manual_dir), "fault_filtered")
  assert gtzan_builder.MusicrepGtzan.paper_counts("fault_filtered", manifest) == {
      "train": 442, "validation": 197, "test": 290}


def test_gtzan_shipped_lists_are_the_papers():
  lists = {s: dataset_layouts.packaged_list(n) for s, n in gtzan_builder.LIST_FILES.items()}
  assert {s: len(v) for s, v in lists.items()} == {"train": 443, "validation": 197, "test": 290}
  assert len(dataset_layouts.splits_from_lists(lists)) == 930  # Disjoint.


JAMENDO = {  # split -> [(track, artist, album, path, tags)]
    "train": [("track_0000001", "artist_01", "album_01", "01/1.mp3", ["genre---rock"]),
              ("track_0000102", "artist_01", "album_02", "02/102.mp3",
               ["genre---rock", "instrument---guitar", "mood/theme---happy"])],
    "validation": [("track_0000203", "artist_02", "album_03", "03/203.mp3", ["genre---jazz"])],
    "test": [("track_0000304", "artist_03", "album_04", "04/304.mp3",
              ["genre---jazz", "mood/theme---happy"]),
             ("track_0000405", "artist_03", "album_04", "05/405.mp3", ["genre---pop"])],
}


def test_jamendo_tsvs_cli(tmp_path):
  manual_dir = tmp_path / "jamendo"
  splits_dir = manual_dir / "data" / "splits" / "split-2"
  splits_dir.mkdir(parents=True)
  for split, rows in JAMENDO.items():
    lines = ["TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"]
    lines += ["\t".join([t, a, al, p, "200.0", *tags]) for t, a, al, p, tags in rows]
    (splits_dir / f"autotagging_top50tags-{split}.tsv").write_text("\n".join(lines) + "\n")
    for i, (_, _, _, path, _) in enumerate(rows):
      if path != "05/405.mp3":  # Missing from the copy.
        write_mp3(manual_dir / "audio" / path.replace(".mp3", ".low.mp3"), 1.2, 16000, 500.0)
  proc = run_cli(["prepare", "jamendo", "--out", str(tmp_path / "out"), "--manual-dir",
                  str(manual_dir), "--split", "split2", "--low-quality", "--sample-rate",
                  "16000", "--workers", "2"])
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert summary["dataset"] == "musicrep_jamendo" and summary["builder"] == "jamendo"
  report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
  assert [s["path"] for s in report["skipped"]] == ["05/405.low.mp3"]
  shards = shards_lib.open_shards(tmp_path / "out")
  assert shards.dataset_dir.parts[-2] == "split2_16000hz"
  expected = {p.replace(".mp3", ".low.mp3"): (s, tuple(tags))
              for s, rows in JAMENDO.items() for _, _, _, p, tags in rows if p != "05/405.mp3"}
  check_records(shards, expected, 16000)
  assert shards.tag_names == ("genre---jazz", "genre---pop", "genre---rock",
                              "instrument---guitar", "mood/theme---happy")
  records = records_by_path(shards)
  assert shards.metadata["album_names"][int(records["04/304.low.mp3"]["album"])] == "album_04"


def test_shared_helpers():
  matrix = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0], [1, 0, 0]])
  assert dataset_layouts.top_n_tags(matrix, ["a", "b", "c"], 2) == ("a", "b")
  assert dataset_layouts.top_n_tags(matrix[:, 1:], ["b", "c"], 2) == ("b", "c")
  with pytest.raises(UserError, match="'x' is listed in both the train and the test"):
    dataset_layouts.splits_from_lists({"train": ["x", "y"], "test": ["x"]})
  with pytest.raises(UserError, match="must be one of 22050, 16000"):
    dataset_layouts.prepare_layout(gtzan_builder.MusicrepGtzan, "/nowhere", manual_dir="/",
                                   sample_rate=44100)


@pytest.mark.parametrize("lee_order", [True, False])
def test_mtat_warns_when_top50_differs_from_lees_list(tmp_path, lee_order):
  """With 50 tags, the derived tag list is compared with the shipped top50_tags.txt."""
  paper = dataset_layouts.packaged_list("mtat_top50_tags.txt")
  names = paper + ["rare"]
  counts = np.arange(len(names), 0, -1) if lee_order else np.arange(1, len(names) + 1)
  lines = ["\t".join(f'"{h}"' for h in ["clip_id", *names, "mp3_path"])]
  for clip in range(int(counts.max())):
    cells = [str(clip), *("1" if clip < c else "0" for c in counts), f"0/x-y-{clip}-0-29.mp3"]
    lines.append("\t".join(f'"{c}"' for c in cells))
  (tmp_path / "annotations_final.csv").write_text("\n".join(lines) + "\n")
  builder = mtat_builder.MusicrepMtat(manual_dir=tmp_path, data_dir=tmp_path / "out")
  assert builder.builder_config.name == "lee_22050hz"
  assert (builder.info.metadata["tag_names"] == paper) == lee_order
  assert any("differ from Lee's top50_tags.txt" in w for w in builder.warnings) != lee_order
