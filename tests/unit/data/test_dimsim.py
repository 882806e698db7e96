"""The dim-sim loader (paper 13's user-study triplets) on a miniature CSV in the release's layout:
majority answers, ties and the consensus filter, strict one-line errors, clip audio cut from real
WAV files, and the triplet-agreement metric."""

import csv

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data import dimsim
from musicrep_jax.errors import UserError

SR = 8000


def _row(tid, anchor, song1, song2, votes, rate=44100):
  row = {"triplet_id": tid, "sampling_rate": rate, "clip_lengths_seconds": 3.0,
         "clip_lengths_samples": 3 * rate, "song1_vote": votes[0], "song2_vote": votes[1]}
  for role, (track, start) in zip(dimsim.ROLES, (anchor, song1, song2)):
    row.update({f"{role}_id": track, f"{role}_start_seconds": start,
                f"{role}_start_samples": int(round(start * rate))})
  return row


ROWS = [
    _row("t0", ("TRA", 0.0), ("TRB", 1.0), ("TRC", 0.0), (9, 1)),   # B chosen, 0.9
    _row("t1", ("TRA", 0.0), ("TRC", 0.0), ("TRB", 2.0), (2, 8)),   # B@2 chosen, 0.8
    _row("t2", ("TRB", 1.0), ("TRA", 0.0), ("TRC", 0.0), (5, 5)),   # tie: dropped
]


def _write(path, rows, columns=None):
  columns = columns or ["", *dimsim.COLUMNS]  # a leading pandas index column, ignored
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, columns, extrasaction="ignore")
    writer.writeheader()
    for i, row in enumerate(rows):
      writer.writerow(dict(row, **{"": i}))
  return path


def test_majority_answers_ties_and_consensus(tmp_path):
  data = dimsim.load_dimsim(_write(tmp_path / "dim_sim.csv", ROWS))
  assert data.clips == (("TRA", 0.0), ("TRB", 1.0), ("TRC", 0.0), ("TRB", 2.0))
  np.testing.assert_array_equal(data.triplets, [[0, 1, 2], [0, 3, 2]])
  assert data.triplet_ids == ("t0", "t1") and data.skipped == {"tied": 1, "below_consensus": 0}
  np.testing.assert_allclose(data.consensus, [0.9, 0.8])
  clean = dimsim.load_dimsim(tmp_path / "dim_sim.csv", min_consensus=0.9)
  assert clean.triplet_ids == ("t0",) and clean.skipped["below_consensus"] == 1
  # Agreement: the chosen clip closer to the anchor counts 1.
  emb = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
  assert dimsim.agreement(emb, data) == 0.5  # t0 agrees (1 < 2), t1 does not (3 > 2)
  assert dimsim.agreement(emb[[0, 2, 1, 3]], data) == 0.0  # both answers now farther
  assert dimsim.agreement(np.array([[0.0, 0], [1, 0], [5, 0], [2, 0]]), data) == 1.0
  with pytest.raises(ValueError, match="one embedding row per dim-sim clip"):
    dimsim.agreement(emb[:3], data)


@pytest.mark.parametrize("edit,message", [
    (lambda rows, cols: (rows, [c for c in cols if c != "song2_vote"]), "missing column"),
    (lambda rows, cols: ([dict(rows[0], song1_vote="many")], cols), "not a number"),
    (lambda rows, cols: ([dict(rows[0], anchor_id="../etc")], cols), "a track id is"),
    (lambda rows, cols: ([rows[0], rows[0]], cols), "repeated"),
    (lambda rows, cols: ([rows[0], dict(rows[1], clip_lengths_seconds=4)], cols),
     "differs from the first row"),
    (lambda rows, cols: ([dict(rows[0], song1_start_samples=0)], cols), "song1_start_samples"),
    (lambda rows, cols: ([rows[2]], cols), "no triplet is left"),
    (lambda rows, cols: ([dict(rows[0], song2_vote=-1)], cols), ">= 0"),
])
def test_bad_files_are_one_line_user_errors(tmp_path, edit, message):
  rows, columns = edit(ROWS, ["", *dimsim.COLUMNS])
  path = _write(tmp_path / "bad.csv", rows, columns)
  with pytest.raises(UserError, match=message) as info:
    dimsim.load_dimsim(path)
  assert "\n" not in str(info.value)
  json_file = tmp_path / "dim_sim.json"
  json_file.write_text('[{"triplet_id": 0}]')
  with pytest.raises(UserError, match="JSON release"):
    dimsim.load_dimsim(json_file)
  with pytest.raises(UserError, match="does not exist"):
    dimsim.load_dimsim(tmp_path / "absent.csv")


def test_clip_audio_cuts_each_clip_from_its_track(tmp_path):
  data = dimsim.load_dimsim(_write(tmp_path / "dim_sim.csv", ROWS))
  audio_dir = tmp_path / "audio" / "nested"
  audio_dir.mkdir(parents=True)
  tracks = {}
  for k, name in enumerate(("TRA", "TRB", "TRC")):
    seconds = 4.5 if name == "TRB" else 5.0  # TRB's clip at 2 s runs past its end
    t = np.arange(int(seconds * SR)) / SR
    tracks[name] = (0.5 * np.sin(2 * np.pi * (200 + 100 * k) * t)).astype(np.float32)
    sf.write(audio_dir / f"{name}.wav", tracks[name], SR, subtype="FLOAT")
  (audio_dir / "notes.txt").write_text("ignored")
  clips = dimsim.clip_audio(data, tmp_path / "audio", SR)
  assert clips.shape == (4, 3 * SR)
  np.testing.assert_allclose(clips[1], tracks["TRB"][SR:4 * SR], atol=1e-6)
  np.testing.assert_allclose(clips[3, :int(2.5 * SR)], tracks["TRB"][2 * SR:], atol=1e-6)
  assert not clips[3, int(2.5 * SR):].any()  # zero-padded past the end
  (audio_dir / "TRC.wav").unlink()
  with pytest.raises(UserError, match="1 of the 3 dim-sim tracks have no audio file.*TRC"):
    dimsim.clip_audio(data, tmp_path / "audio", SR)
