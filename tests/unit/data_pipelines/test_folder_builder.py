"""The folder + CSV manifest builder: decoding, resampling, skipping, ids, splits, errors."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data import audio_io
from musicrep_jax.data_pipelines import folder_builder, manifest_builder, prepare
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.errors import UserError

TARGET_SR = 16000
# name, sample rate, channels, seconds, sine frequency, tags, artist, album, track.
GOOD_FILES = [
    ("a/one.wav", 44100, 2, 1.5, 440.0, "rock;guitar", "Ann", "First", "t1"),
    ("a/two.flac", 22050, 1, 1.25, 1000.0, "rock", "Ann", "First", "t1"),
    ("b/three.wav", 16000, 1, 1.0, 300.0, "jazz;piano", "Bob", "Second", "t2"),
    ("b/four.flac", 48000, 2, 1.1, 2000.0, "jazz", "Bob", "Second", "t3"),
    ("c/five.wav", 8000, 1, 1.3, 500.0, "", "", "", "t4"),
] + [(f"d/{i}.wav", 16000, 1, 1.0, 100.0 * (i + 1), "pop", "Cid", "Third", f"u{i % 6}")
     for i in range(10)]
BAD_FILES = {  # manifest path -> expected reason prefix.
    "bad/corrupt.wav": "corrupt or unsupported audio",
    "bad/empty.wav": "empty file",
    "bad/short.wav": "too short",
    "bad/missing.wav": "missing file",
    "bad/truncated.flac": "truncated: decoded",  # Header fine, data cut: fewer frames than declared.
}


def sine(sample_rate: int, channels: int, seconds: float, freq: float) -> np.ndarray:
  """float32 [samples, channels] sine; channel c has amplitude ``0.5 / (c + 1)``."""
  t = np.arange(int(round(seconds * sample_rate))) / sample_rate
  wave = np.sin(2 * np.pi * freq * t)[:, None] * (0.5 / np.arange(1, channels + 1))
  return wave.astype(np.float32)


def write_truncated_flac(path) -> None:
  """A FLAC whose header promises 2 s but whose data stops early: decoding it fails."""
  noise = np.random.default_rng(0).uniform(-0.5, 0.5, 32000).astype(np.float32)
  sf.write(path, noise, 16000)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 4])


def write_collection(root) -> tuple[str, str]:
  """Audio folder + manifest (no split column) -> (audio_dir, manifest path)."""
  audio_dir = root / "audio"
  for name, sr, ch, sec, freq, *_ in GOOD_FILES:
    (audio_dir / name).parent.mkdir(parents=True, exist_ok=True)
    sf.write(audio_dir / name, sine(sr, ch, sec, freq), sr)
  (audio_dir / "bad").mkdir(parents=True)
  (audio_dir / "bad/corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
  (audio_dir / "bad/empty.wav").write_bytes(b"")
  sf.write(audio_dir / "bad/short.wav", sine(16000, 1, 0.5, 440.0), 16000)
  write_truncated_flac(audio_dir / "bad/truncated.flac")
  manifest = root / "manifest.csv"
  with open(manifest, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["path", "tags", "artist", "album", "track"])
    for name, _, _, _, _, tags, artist, album, track in GOOD_FILES:
      writer.writerow([name, tags, artist, album, track])
    for i, name in enumerate(BAD_FILES):
      writer.writerow([name, "rock", "Ann", "First", f"bad{i}"])
  return str(audio_dir), str(manifest)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("folder")
  audio_dir, manifest = write_collection(root)
  out = root / "shards"
  report = prepare.prepare_folder(out, audio_dir=audio_dir, manifest=manifest,
                                  sample_rate=TARGET_SR, min_seconds=1.0, workers=2,
                                  progress=False)
  return out, report, shards_lib.open_shards(out, expected_sample_rate=TARGET_SR)


def all_records(shards) -> dict[int, dict]:
  """clip_id -> record with its split added, over every split."""
  records = {}
  for split in shards.split_sizes:
    source = shards.source(split)
    for i in range(len(source)):
      record = dict(source[i], split=split)
      records[int(record["clip_id"])] = record
  return records


def test_report_lists_skipped_files_and_counts_add_up(built):
  out, report, _ = built
  assert json.loads((out / "prepare_report.json").read_text()) == report
  reasons = {item["path"]: item["reason"] for item in report["skipped"]}
  assert set(reasons) == set(BAD_FILES)
  for path, prefix in BAD_FILES.items():
    assert reasons[path].startswith(prefix), (path, reasons[path])
  total = report["total"]
  assert total["seen"] == len(GOOD_FILES) + len(BAD_FILES)
  assert total["written"] == len(GOOD_FILES) and total["skipped"] == len(BAD_FILES)
  for split, counts in report["splits"].items():
    assert counts["seen"] == counts["written"] + counts["skipped"], split
  assert sum(c["seen"] for c in report["splits"].values()) == total["seen"]
  assert report["clips_per_second"] > 0 and report["x_realtime"] > 0


def test_audio_is_resampled_mono_int16(built):
  _, _, shards = built
  records = all_records(shards)
  assert len(records) == len(GOOD_FILES)
  for clip_id, (name, sr, channels, sec, freq, *_) in enumerate(GOOD_FILES):
    record = records[clip_id]
    audio = record["audio"]
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert record["path"] == name.encode()
    assert abs(len(audio) - round(sec * TARGET_SR)) <= 1, name
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio))))
    peak_hz = np.argmax(spectrum) * TARGET_SR / len(audio)
    assert abs(peak_hz - freq) <= 2 * TARGET_SR / len(audio), (name, peak_hz, freq)
    reference = audio_io.load_audio(os.path.join(shards.metadata["audio_dir"], name), TARGET_SR)
    np.testing.assert_allclose(audio / 32768.0, reference, atol=1.0 / 32768)
    downmixed_amplitude = np.mean(0.5 / np.arange(1, channels + 1))  # Mean of the channels.
    assert np.abs(audio).max() / 32768.0 == pytest.approx(downmixed_amplitude, rel=0.05), name


def test_tags_ids_and_hashed_splits(built):
  _, _, shards = built
  records = all_records(shards)
  assert shards.tag_names == ("guitar", "jazz", "piano", "pop", "rock")
  assert shards.metadata["artist_names"] == ["Ann", "Bob", "Cid"]
  assert shards.metadata["split_rule"] == "hash of track"
  tracks = shards.metadata["track_names"]
  for clip_id, (_, _, _, _, _, tags, artist, album, track) in enumerate(GOOD_FILES):
    record = records[clip_id]
    expected_tags = [int(t in tags.split(";")) for t in shards.tag_names]
    np.testing.assert_array_equal(record["tags"], expected_tags)
    assert record["tags"].dtype == np.uint8
    assert int(record["artist"]) == (["Ann", "Bob", "Cid"].index(artist) if artist else -1)
    assert int(record["album"]) == (["First", "Second", "Third"].index(album) if album else -1)
    assert tracks[int(record["track"])] == track
    assert record["split"] == folder_builder.hash_split(track)
  split_of_track = {}
  for record in records.values():
    assert split_of_track.setdefault(int(record["track"]), record["split"]) == record["split"]


def test_hash_split_is_stable_and_roughly_80_10_10():
  assert folder_builder.hash_split("t1") == folder_builder.hash_split("t1")
  splits = [folder_builder.hash_split(f"track{i}") for i in range(2000)]
  fractions = [splits.count(s) / len(splits) for s in manifest_builder.SPLITS]
  np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.03)


def test_split_column_with_aliases(tmp_path):
  audio_dir = tmp_path / "audio"
  audio_dir.mkdir()
  lines = ["path,split"]
  for i, split in enumerate(["train", "Valid", "dev", "val", "test", "validation"]):
    sf.write(audio_dir / f"{i}.wav", sine(8000, 1, 1.0, 200.0), 8000)
    lines.append(f"{i}.wav,{split}")
  (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
  report = prepare.prepare_folder(tmp_path / "out", audio_dir=audio_dir,
                                  manifest=tmp_path / "m.csv", sample_rate=8000, workers=1,
                                  progress=False)
  assert {s: c["written"] for s, c in report["splits"].items()} == {
      "train": 1, "validation": 4, "test": 1}
  shards = shards_lib.open_shards(tmp_path / "out")
  assert shards.split_sizes == {"train": 1, "validation": 4, "test": 1}
  assert shards.tag_names == ()
  record = shards.source("validation")[0]
  assert record["tags"].shape == (0,) and int(record["track"]) == -1
  # Preparing again into the same folder is refused; overwrite=True rebuilds.
  with pytest.raises(UserError, match="already holds a prepared dataset"):
    prepare.prepare_folder(tmp_path / "out", audio_dir=audio_dir, manifest=tmp_path / "m.csv",
                           sample_rate=8000, workers=1, progress=False)
  prepare.prepare_folder(tmp_path / "out", audio_dir=audio_dir, manifest=tmp_path / "m.csv",
                         sample_rate=16000, workers=1, progress=False, overwrite=True)
  assert shards_lib.open_shards(tmp_path / "out").sample_rate == 16000


@pytest.mark.parametrize("case, message", [
    ("no_manifest", "manifest .*missing.csv does not exist"),
    ("no_audio_dir", "audio folder .*nowhere does not exist"),
    ("no_path_column", "has no 'path' column .*file, tags"),
    ("bad_split", "Row 2 of .* has split 'training'"),
    ("nothing_usable", "None of the 1 files"),
])
def test_user_errors(tmp_path, case, message):
  audio_dir, manifest = tmp_path, tmp_path / "m.csv"
  manifest.write_text({"no_path_column": "file,tags\nx.wav,rock\n",
                       "bad_split": "path,split\nx.wav,training\n"}.get(case, "path\nx.wav\n"))
  if case == "no_manifest":
    manifest = tmp_path / "missing.csv"
  if case == "no_audio_dir":
    audio_dir = tmp_path / "nowhere"
  with pytest.raises(UserError, match=message):
    prepare.prepare_folder(tmp_path / "out", audio_dir=audio_dir, manifest=manifest,
                           workers=1, progress=False)


def test_split_whose_files_all_fail_decoding(tmp_path):
  sf.write(tmp_path / "good.wav", sine(8000, 1, 1.0, 200.0), 8000)
  write_truncated_flac(tmp_path / "cut.flac")
  (tmp_path / "m.csv").write_text("path,split\ngood.wav,train\ncut.flac,test\n")
  with pytest.raises(UserError, match="No file of split test could be decoded"):
    prepare.prepare_folder(tmp_path / "out", audio_dir=tmp_path, manifest=tmp_path / "m.csv",
                           sample_rate=8000, workers=1, progress=False)
  report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
  assert report["skipped"][0]["path"] == "cut.flac" and "error" in report
  assert report["splits"]["test"] == {"seen": 1, "written": 0, "skipped": 1}


def test_load_audio_errors(tmp_path):
  (tmp_path / "empty.wav").write_bytes(b"")
  (tmp_path / "junk.flac").write_bytes(b"not audio at all" * 10)
  for name, reason in [("empty.wav", "empty file"), ("junk.flac", "corrupt"),
                       ("absent.wav", "missing file")]:
    with pytest.raises(audio_io.AudioDecodeError, match=reason) as info:
      audio_io.load_audio(tmp_path / name, 16000)
    assert info.value.path.endswith(name)


def test_map_in_threads_keeps_order():
  assert list(audio_io.map_in_threads(lambda x: x * x, range(50), workers=3, window=4)) == [
      x * x for x in range(50)]
