"""Truncated audio (issue 17: "prepare accepts truncated MP3s without a warning"): a WAV or FLAC
whose data end before its header says, or an MP3 cut in the middle, is refused by
``audio_io.load_audio`` with the decoded and declared durations, and ``musicrep prepare``
skips it with one warning line per file and counts it in the summary (seen / written / skipped
/ truncated). The files are real: written by soundfile, then cut."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import cli
from musicrep_jax.data import audio_io

SR = 16000
HAS_MP3 = "MP3" in sf.available_formats()
FORMATS = {"wav": ("WAV", None), "flac": ("FLAC", None)}
if HAS_MP3:
  FORMATS["mp3"] = ("MP3", "MPEG_LAYER_III")


def _write(path, seconds: float = 2.0, seed: int = 0):
  fmt, subtype = FORMATS[path.suffix[1:]]
  noise = np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * SR), 2))
  sf.write(path, noise.astype(np.float32), SR, format=fmt, subtype=subtype)
  return path


def _cut(path, fraction: float = 0.5):
  data = path.read_bytes()
  path.write_bytes(data[:int(len(data) * fraction)])
  return path


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_cut_files_are_truncated_whole_files_decode(tmp_path, suffix):
  whole = _write(tmp_path / f"whole.{suffix}")
  assert abs(len(audio_io.load_audio(whole, SR)) - 2 * SR) <= audio_io.TRUNCATION_SLACK_FRAMES
  cut = _cut(_write(tmp_path / f"cut.{suffix}"))
  with pytest.raises(audio_io.TruncatedAudioError) as error:
    audio_io.load_audio(cut, SR)
  assert error.value.reason.startswith("truncated: decoded "), error.value.reason
  assert "of the 2.00 s its header declares" in error.value.reason
  decoded = float(error.value.reason.split("decoded ")[1].split(" s")[0])
  assert 0.3 < decoded < 1.7, error.value.reason  # About half of the file.


def test_wav_chunks_after_the_data_and_streamed_sizes_are_not_truncation(tmp_path):
  """A LIST chunk after ``data`` is not missing audio; a ``data`` size of 0xFFFFFFFF (written by
  a stream that did not know the length) declares nothing."""
  path = _write(tmp_path / "tail.wav")
  path.write_bytes(path.read_bytes() + b"LIST" + struct.pack("<I", 4) + b"INFO")
  assert len(audio_io.load_audio(path, SR)) == 2 * SR
  data = bytearray(_write(tmp_path / "streamed.wav").read_bytes())
  at = data.index(b"data") + 4
  data[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)
  (tmp_path / "streamed.wav").write_bytes(bytes(data))
  assert len(audio_io.load_audio(tmp_path / "streamed.wav", SR)) == 2 * SR


def test_prepare_warns_once_per_truncated_file_and_counts_them(tmp_path, capsys):
  audio = tmp_path / "audio"
  audio.mkdir()
  rows = ["path,tags,split"]
  for i, suffix in enumerate(sorted(FORMATS)):
    _write(audio / f"whole.{suffix}", seed=i)
    _cut(_write(audio / f"cut.{suffix}", seed=10 + i))
    rows += [f"whole.{suffix},rock,train", f"cut.{suffix},jazz,train"]
  (tmp_path / "tags.csv").write_text("\n".join(rows) + "\n")
  out = tmp_path / "out"
  code = cli.main(["prepare", "folder", "--audio-dir", str(audio), "--manifest",
                   str(tmp_path / "tags.csv"), "--sample-rate", str(SR), "--out", str(out)])
  stdout = capsys.readouterr().out
  assert code == 0
  n = len(FORMATS)
  warnings = [l for l in stdout.splitlines() if l.startswith("warning:")]
  assert sorted(w.split()[1] for w in warnings) == sorted(f"cut.{s}" for s in FORMATS), warnings
  assert all(" is truncated: decoded " in w and w.endswith("; skipped.") for w in warnings)
  assert f"{2 * n} file(s) seen, {n} written, {n} skipped ({n} truncated)" in stdout, stdout
  report = json.loads((out / "prepare_report.json").read_text())
  assert report["truncated"] == n and report["total"]["skipped"] == n
  assert {s["path"] for s in report["skipped"]} == {f"cut.{s}" for s in FORMATS}
  assert all(s["reason"].startswith("truncated: decoded ") for s in report["skipped"])
  print("\n".join(warnings))
