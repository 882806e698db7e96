"""Speech Commands and DCASE 2017 Task 1 builders on miniature copies of the datasets' own layouts
(generated audio): classes, labels, splits, counts, skipped files and layout errors; and one
end-to-end CLI run (prepare + train + eval) on the miniature Speech Commands copy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data_pipelines import dcase2017_builder, manifest_builder, speech_commands_builder
from musicrep_jax import cli
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.errors import UserError

SR = 22050

# ------------------------------------------------------------------------ Speech Commands layout

WORDS = ("cat", "no", "yes")  # "cat" is not one of the ten commands: _unknown_ with classes=12.
SPEAKERS = ("aa11", "bb22", "cc33", "dd44")
VALIDATION_SPEAKER, TEST_SPEAKER = "cc33", "dd44"
SHORT = "yes/aa11_nohash_1.wav"  # 0.6 s: kept (min_seconds 0), zero-padded by the pipeline.
CORRUPT = "no/bb22_nohash_1.wav"
MISSING = "cat/dd44_nohash_7.wav"  # Listed in testing_list.txt, not on disk.
NOISE_SECONDS = 3.5  # -> 3 whole 1-s silence chunks.


def tone(seconds: float, freq: float, sample_rate: int = 16000, channels: int = 1):
  t = np.arange(int(round(seconds * sample_rate))) / sample_rate
  wave = 0.3 * np.sin(2 * np.pi * freq * t)
  return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


def write_speech_commands(root) -> dict:
  """A miniature Speech Commands copy; returns {relative path: split} of the usable files."""
  expected = {}
  for w, word in enumerate(WORDS):
    (root / word).mkdir(parents=True)
    for s, speaker in enumerate(SPEAKERS):
      for n in range(2):
        path = f"{word}/{speaker}_nohash_{n}.wav"
        seconds = 0.6 if path == SHORT else 1.0
        sf.write(root / path, tone(seconds, 200.0 * (w + 1) + 20 * s + 5 * n), 16000)
        split = {VALIDATION_SPEAKER: "validation", TEST_SPEAKER: "test"}.get(speaker, "train")
        expected[path] = split
  (root / CORRUPT).write_bytes(np.random.default_rng(0).bytes(3000))
  del expected[CORRUPT]
  listed = sorted(expected) + [MISSING]
  for name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
    lines = [p for p in listed if p.split("/")[1].startswith(
        VALIDATION_SPEAKER if split == "validation" else TEST_SPEAKER)]
    (root / name).write_text("\n".join(lines) + "\n")
  (root / "_background_noise_").mkdir()
  noise = np.random.default_rng(1).uniform(-0.2, 0.2, int(NOISE_SECONDS * 16000))
  sf.write(root / "_background_noise_" / "white_noise.wav", noise.astype(np.float32), 16000)
  (root / "_background_noise_" / "README.md").write_text("noise")
  return expected


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("speech_commands_v0.02")
  return root, write_speech_commands(root)


def split_records(shards) -> dict:
  """{split: [record, ...]} of every split."""
  return {s: [shards.source(s)[i] for i in range(n)] for s, n in shards.split_sizes.items()}


def test_speech_commands_all_words(speech_dir, tmp_path):
  root, expected = speech_dir
  report = speech_commands_builder.prepare_speech_commands(
      tmp_path / "out", manual_dir=str(root), workers=2, progress=False)
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=SR)
  assert shards.tag_names == WORDS
  assert shards.metadata["single_label"] and shards.metadata["background_noise"] == "excluded"
  records = split_records(shards)
  got = {r["path"].decode(): s for s, recs in records.items() for r in recs}
  assert got == expected
  for recs in records.values():
    for r in recs:
      path = r["path"].decode()
      assert r["tags"].tolist() == [int(w == path.split("/")[0]) for w in WORDS]
      speaker = shards.metadata["artist_names"][int(r["artist"])]
      assert speaker == speech_commands_builder.speaker_of(path)
      assert len(r["audio"]) == (round(0.6 * SR) if path == SHORT else SR)
  reasons = {item["path"]: item["reason"] for item in report["skipped"]}
  assert reasons[MISSING] == "missing file" and reasons[CORRUPT].startswith("corrupt")
  assert report["splits"]["test"]["skipped"] == 1 and report["splits"]["train"]["skipped"] == 1
  assert report["seen"] == report["written"] + 2 == len(expected) + 2
  assert not report["warnings"]


def test_speech_commands_twelve_classes_with_silence(speech_dir, tmp_path):
  root, expected = speech_dir
  speech_commands_builder.prepare_speech_commands(
      tmp_path / "out", manual_dir=str(root), classes="12", workers=2, progress=False)
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=SR)
  names = shards.tag_names
  assert names[:2] == ("_silence_", "_unknown_") and names[2:] == speech_commands_builder.COMMANDS
  records = [r for recs in split_records(shards).values() for r in recs]
  silence = [r for r in records if r["path"].decode().startswith("_background_noise_")]
  assert len(silence) == int(NOISE_SECONDS)
  assert all(len(r["audio"]) == SR and int(r["artist"]) == -1 for r in silence)
  noise = sf.read(root / "_background_noise_" / "white_noise.wav")[0]
  assert np.std(silence[0]["audio"] / 32768.0) == pytest.approx(np.std(noise), rel=0.1)
  for r in records:
    path = r["path"].decode()
    label = names[int(np.argmax(r["tags"]))]
    word = path.split("/")[0]
    want = "_silence_" if word == "_background_noise_" else (
        word if word in speech_commands_builder.COMMANDS else "_unknown_")
    assert r["tags"].sum() == 1 and label == want, path
  assert len(records) == len(expected) + int(NOISE_SECONDS)


def remove_testing_list(root):
  os.remove(root / "testing_list.txt")


def list_one_file_twice(root):
  for name in ("testing_list.txt", "validation_list.txt"):
    (root / name).write_text("yes/aa11_nohash_0.wav\n")


def remove_every_wav(root):
  for word in WORDS:
    for name in os.listdir(root / word):
      os.remove(root / word / name)


@pytest.mark.parametrize("change, message", [
    (remove_testing_list, "testing_list.txt is missing"),
    (list_one_file_twice, "in both"),
    (remove_every_wav, "No <word>/\\*.wav"),
])
def test_speech_commands_layout_errors(tmp_path, change, message):
  root = tmp_path / "sc"
  root.mkdir()
  write_speech_commands(root)
  change(root)
  with pytest.raises(UserError, match=message):
    speech_commands_builder.read_speech_commands(str(root))
  assert not (tmp_path / "out").exists()


def test_speech_commands_argument_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    speech_commands_builder.read_speech_commands(str(tmp_path / "nowhere"))
  with pytest.raises(UserError, match="classes must be one of"):
    speech_commands_builder.read_speech_commands(str(tmp_path), classes="10")


# ----------------------------------------------------------------------------- DCASE 2017 layout

SCENES = ("beach", "bus", "cafe/restaurant")
LOCATIONS = {"a001": "beach", "a002": "beach", "b001": "bus", "b002": "bus", "c001":
             "cafe/restaurant", "c002": "cafe/restaurant", "a003": "beach", "b003": "bus"}
EVALUATE_LOCATIONS = ("a003", "b003")
DCASE_CORRUPT = "audio/a001_2_4.wav"
DCASE_MISSING = "audio/b002_2_4.wav"


def write_dcase(root) -> dict:
  """A miniature TUT Acoustic Scenes 2017 development copy (2-s stereo 44.1 kHz segments);
  returns {file: (scene, location)} of every listed file."""
  (root / "audio").mkdir(parents=True)
  (root / "evaluation_setup").mkdir()
  listed = {}
  for i, (location, scene) in enumerate(sorted(LOCATIONS.items())):
    for k in range(2):
      path = f"audio/{location}_{2 * k}_{2 * k + 2}.wav"
      listed[path] = (scene, location)
      if path not in (DCASE_CORRUPT, DCASE_MISSING):
        sf.write(root / path, tone(2.0, 300.0 + 50 * i, 44100, channels=2), 44100,
                 subtype="PCM_24")
  (root / DCASE_CORRUPT).write_bytes(np.random.default_rng(2).bytes(5000))
  meta = [f"{p}\t{s}\t{loc}" for p, (s, loc) in listed.items()]
  (root / "meta.txt").write_text("\n".join(meta) + "\n")
  train = [f"{p}\t{s}" for p, (s, loc) in listed.items() if loc not in EVALUATE_LOCATIONS]
  evaluate = [f"{p}\t{s}" for p, (s, loc) in listed.items() if loc in EVALUATE_LOCATIONS]
  (root / "evaluation_setup" / "fold1_train.txt").write_text("\n".join(train) + "\n")
  (root / "evaluation_setup" / "fold1_evaluate.txt").write_text("\n".join(evaluate) + "\n")
  (root / "evaluation_setup" / "fold1_test.txt").write_text(
      "\n".join(line.split("\t")[0] for line in evaluate) + "\n")
  return listed


def test_dcase2017_fold_splits_labels_and_mono(tmp_path):
  root = tmp_path / "TUT-acoustic-scenes-2017-development"
  listed = write_dcase(root)
  percent = 80  # Holds out a001, b001, c001, c002 (buckets 76, 79, 56, 74), keeps a002, b002.
  report = dcase2017_builder.prepare_dcase2017(
      tmp_path / "out", manual_dir=str(root), fold=1, validation_percent=percent, workers=2,
      progress=False)
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=SR)
  assert shards.tag_names == SCENES and shards.metadata["single_label"]

  def expected_split(location):
    if location in EVALUATE_LOCATIONS:
      return "test"
    return "validation" if manifest_builder.stable_bucket(location) < percent else "train"

  usable = {p: v for p, v in listed.items() if p not in (DCASE_CORRUPT, DCASE_MISSING)}
  records = split_records(shards)
  got = {r["path"].decode(): (s, r) for s, recs in records.items() for r in recs}
  assert set(got) == set(usable)
  assert {expected_split(loc) for _, loc in usable.values()} == {"train", "validation", "test"}
  for path, (split, r) in got.items():
    scene, location = usable[path]
    assert split == expected_split(location)
    assert SCENES[int(np.argmax(r["tags"]))] == scene and r["tags"].sum() == 1
    assert shards.metadata["track_names"][int(r["track"])] == location
    assert len(r["audio"]) == 2 * SR
  # Mono = mean of the channels (amplitudes 0.15 and 0.3 -> 0.225 peak).
  peak = np.abs(got["audio/b001_0_2.wav"][1]["audio"]).max() / 32768.0
  assert peak == pytest.approx(0.225, abs=0.01)
  reasons = {item["path"]: item["reason"] for item in report["skipped"]}
  assert reasons[DCASE_MISSING] == "missing file"
  assert reasons[DCASE_CORRUPT].startswith("corrupt")
  assert report["seen"] == len(listed) and report["written"] == len(usable)


def test_dcase2017_layout_errors(tmp_path):
  root = tmp_path / "dcase"
  write_dcase(root)
  with pytest.raises(UserError, match="fold must be one of"):
    dcase2017_builder.read_dcase2017(str(root), fold=5)
  with pytest.raises(UserError, match="fold2_train.txt is missing"):
    dcase2017_builder.read_dcase2017(str(root), fold=2)
  evaluate = root / "evaluation_setup" / "fold1_evaluate.txt"
  evaluate.write_text(evaluate.read_text() + "audio/a001_0_2.wav\tbeach\n")
  with pytest.raises(UserError, match="in both"):
    dcase2017_builder.read_dcase2017(str(root))
  evaluate.write_text("audio/a003_0_2.wav\n")
  with pytest.raises(UserError, match="Line 1 .* has no scene label"):
    dcase2017_builder.read_dcase2017(str(root))


# ------------------------------------------------------------------------- end to end, the CLI

def test_speech_commands_cli_prepare_train_eval(speech_dir, tmp_path, capsys):
  """prepare + a few training steps of the paper's config (narrowed) + eval, all through the CLI."""
  root, expected = speech_dir
  out, workdir = tmp_path / "shards", tmp_path / "run"

  def last_json():
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

  assert cli.main(["prepare", "speech_commands", "--manual-dir", str(root),
                   "--out", str(out)]) == 0
  assert last_json()["written"] == len(expected)
  overrides = ["--config.model.kwargs.init_features=4", "--config.batch_size=4",
               "--config.num_train_steps=4", "--config.eval_every=2",
               "--config.log_every=2", "--config.data.num_workers=0",
               "--config.progress_bar=false"]
  assert cli.main(["train", "--config", "configs/samplecnn_speech_commands.py:basic",
                   "--data-dir", str(out), "--workdir", str(workdir), *overrides]) == 0
  trained = last_json()
  n_test = sum(split == "test" for split in expected.values())
  assert trained["split"] == "test" and trained["clips"] == n_test
  assert trained["compilations"] == 1 and 0.0 <= trained["accuracy"] <= 1.0
  assert cli.main(["eval", "--workdir", str(workdir), "--data-dir", str(out)]) == 0
  evaluated = last_json()
  assert evaluated["accuracy"] == pytest.approx(trained["accuracy"])
  assert evaluated["loss"] == pytest.approx(trained["loss"], rel=1e-5)
