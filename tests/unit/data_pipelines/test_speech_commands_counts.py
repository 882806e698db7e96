"""Speech Commands' split sizes checked before decoding (papers.md 1.1: v0.02's official split,
84,843 / 9,981 / 11,005): a copy with v0.02's 35 word folders (real wav files written with
soundfile) is checked against them, a v0.01 copy is not, a miniature copy against the counts it is
given; ``strict_counts=False`` (``--allow-count-mismatch``) builds with a warning."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data import audio_io
from musicrep_jax.data_pipelines import speech_commands_builder as scb
from musicrep_jax.errors import UserError
from tests.unit.data_pipelines.test_speech_dcase_builders import write_speech_commands

V1_WORDS = ("bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house",
            "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six",
            "stop", "three", "tree", "two", "up", "wow", "yes", "zero")
V2_WORDS = tuple(sorted(V1_WORDS + scb.V2_ONLY_WORDS))


def write_copy(root, words) -> None:
  """One 0.25-s utterance per word by speaker aa11 (train), plus one validation (bb22) and one
  test (cc33) utterance of the first word; a background-noise file of 2.5 s."""
  rng = np.random.default_rng(0)
  for word in words:
    (root / word).mkdir(parents=True)
    sf.write(root / word / "aa11_nohash_0.wav", rng.uniform(-.1, .1, 4000).astype(np.float32),
             16000)
  for speaker in ("bb22", "cc33"):
    sf.write(root / words[0] / f"{speaker}_nohash_0.wav",
             rng.uniform(-.1, .1, 4000).astype(np.float32), 16000)
  (root / "validation_list.txt").write_text(f"{words[0]}/bb22_nohash_0.wav\n")
  (root / "testing_list.txt").write_text(f"{words[0]}/cc33_nohash_0.wav\n")
  (root / "_background_noise_").mkdir()
  sf.write(root / "_background_noise_" / "noise.wav",
           rng.uniform(-.1, .1, 40000).astype(np.float32), 16000)


def prepare(root, out, **kwargs):
  return scb.prepare_speech_commands(out, manual_dir=str(root), sample_rate=16000, workers=2,
                                     progress=False, **kwargs)


def test_a_v002_copy_is_checked_against_the_official_split_before_decoding(tmp_path,
                                                                           monkeypatch):
  root = tmp_path / "speech_commands_v0.02"
  write_copy(root, V2_WORDS)
  calls = []
  monkeypatch.setattr(audio_io, "load_audio", lambda *a: calls.append(a))
  with pytest.raises(UserError) as error:
    prepare(root, tmp_path / "a")
  message = str(error.value)
  assert "train: 35 usable files, the paper's split has 84,843" in message
  assert "validation: 1 usable files, the paper's split has 9,981" in message
  assert "test: 1 usable files, the paper's split has 11,005" in message
  assert "--allow-count-mismatch" in message and calls == []  # Nothing decoded.
  monkeypatch.undo()
  report = prepare(root, tmp_path / "b", strict_counts=False)
  assert any("the paper's split has 84,843" in w for w in report["warnings"])
  assert {s: c["written"] for s, c in report["splits"].items()} == {
      "train": 35, "validation": 1, "test": 1}
  # classes=12: the silence chunks of each split are added to the official counts.
  manifest = scb.read_speech_commands(str(root), "12")
  silence = {s: sum("#" in r.path and r.split == s for r in manifest.rows)
             for s in scb.V2_COUNTS}
  assert sum(silence.values()) == 2  # 2.5 s of noise: two whole 1-s chunks.
  assert scb.paper_counts(manifest) == {s: n + silence[s] for s, n in scb.V2_COUNTS.items()}


def test_v001_copies_are_unchecked_and_given_counts_are_checked(tmp_path):
  root = tmp_path / "speech_commands_v0.01"
  write_copy(root, V1_WORDS)
  assert scb.paper_counts(scb.read_speech_commands(str(root))) is None
  mini = tmp_path / "mini"
  expected = write_speech_commands(mini)
  counts = {s: sum(v == s for v in expected.values()) for s in ("train", "validation", "test")}
  with pytest.raises(UserError, match=f"train: {counts['train']} usable files, the paper's "
                                      f"split has {counts['train'] + 1}"):
    prepare(mini, tmp_path / "wrong", expected_counts=dict(counts, train=counts["train"] + 1))
  report = prepare(mini, tmp_path / "right", expected_counts=counts)
  assert report["written"] == len(expected) and not report["warnings"]
