"""Tag groups (similarity dimensions) of real data: the shipped reconstruction of papers 13-14's
grouping of the MSD 50 tags, the strict reader of tag-group files, and the folder builder taking
groups from ``tags:GROUP`` columns and ``--tag-groups`` files (with tempo on request)."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax import cli
from musicrep_jax.data import shards as shards_lib
from musicrep_jax.data_pipelines import dataset_layouts, prepare, tag_groups
from musicrep_jax.errors import UserError
from tests.helpers import click_track

SHIPPED = os.path.join(dataset_layouts.SPLITS_DIR, tag_groups.MSD_GROUPS_FILE)
MSD_TAGS = dataset_layouts.packaged_list("msd_50_tags.txt")


def test_shipped_msd_grouping_is_28_12_5_5_of_the_50_tags():
  groups = tag_groups.read_tag_groups(SHIPPED, MSD_TAGS)
  assert {g: len(c) for g, c in groups.items()} == {"genre": 28, "mood": 12, "instrument": 5,
                                                     "era": 5}
  assert sorted(i for c in groups.values() for i in c) == list(range(50))  # Each tag once.
  names = {g: {MSD_TAGS[i] for i in c} for g, c in groups.items()}
  assert names["era"] == {"60s", "70s", "80s", "90s", "00s"}
  assert {"rock", "Hip-Hop", "House", "Progressive rock"} <= names["genre"]
  assert {"guitar", "female vocalists", "male vocalists"} <= names["instrument"]
  assert {"happy", "sad", "Mellow"} <= names["mood"]
  assert tuple(groups)[:3] == tag_groups.PAPER13_GROUPS
  assert set(groups) == set(tag_groups.PAPER14_GROUPS)
  with open(SHIPPED, newline="", encoding="utf-8") as f:  # Every ambiguous choice is explained.
    notes = {row["tag"]: row["note"] for row in csv.DictReader(f)}
  for tag in ("oldies", "acoustic", "instrumental", "chillout", "easy listening", "ambient"):
    assert notes[tag].startswith("ambiguous: "), tag


@pytest.mark.parametrize("text, message", [
    ("tag,grp\nrock,genre\n", "expected the columns tag and group"),
    ("tag,group,extra\nrock,genre,x\n", "expected the columns tag and group"),
    ("tag,group\n", "no 'tag,group' row"),
    ("", "is empty"),
    ("tag,group\nrock,genre,oops\n", "has 3 cells; the header has 2"),
    ("tag,group\nrock,genre\nrock,mood\n", "already in group 'genre'"),
    ("tag,group\nrock,gen re\n", "not letters, digits and '_'"),
    ("tag,group\n,genre\n", "has an empty tag"),
    ('tag,group\n"rock,genre\n', "not valid CSV"),
    ("tag,group\nrokk,genre\n", "groups tag(s) the dataset does not have: 'rokk'"),
])
def test_bad_tag_group_files_are_one_line_errors(tmp_path, text, message):
  path = tmp_path / "groups.csv"
  path.write_text(text, encoding="utf-8")
  with pytest.raises(UserError) as error:
    tag_groups.read_tag_groups(path, MSD_TAGS)
  assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_non_utf8_and_missing_tag_group_files(tmp_path):
  path = tmp_path / "groups.csv"
  path.write_bytes("tag,group\nd\xe9cennie,era\n".encode("latin-1"))
  with pytest.raises(UserError, match="is not UTF-8 text"):
    tag_groups.read_tag_group_file(path)
  with pytest.raises(UserError, match="does not exist"):
    tag_groups.read_tag_group_file(tmp_path / "nope.csv")


def _collection(root, rows, header="path,tags,tags:genre,tags:mood,track"):
  """Click tracks (8 s, 16 kHz, 80 + 12 i BPM) and a manifest with tag-group columns."""
  audio = root / "audio"
  audio.mkdir(parents=True)
  for i, row in enumerate(rows):
    sf.write(audio / row.split(",")[0], click_track(80.0 + 12 * i, 16000, 8.0, seed=i), 16000)
  manifest = root / "manifest.csv"
  manifest.write_text("\n".join([header] + rows) + "\n", encoding="utf-8")
  return audio, manifest


ROWS = ["a.wav,guitar,rock,happy,t1", "b.wav,piano,jazz;blues,sad,t2",
        "c.wav,,rock,,t3", "d.wav,voice,,happy;calm,t4"]


def test_folder_groups_from_columns_and_file_and_tempo(tmp_path):
  audio, manifest = _collection(tmp_path, ROWS)
  groups_file = tmp_path / "groups.csv"
  groups_file.write_text("tag,group,note\nguitar,instrument,\npiano,instrument,\n"
                         "voice,instrument,\nrock,genre,also a column\nbanjo,instrument,\n")
  report = prepare.prepare_folder(tmp_path / "out", audio_dir=audio, manifest=manifest,
                                  sample_rate=16000, tag_groups=groups_file, tempo=True,
                                  workers=2, progress=False)
  assert any("'banjo'" in w and "ignored" in w for w in report["warnings"]), report["warnings"]
  assert report["params"]["tempo"] is True
  shards = shards_lib.open_shards(tmp_path / "out")
  names = {g: sorted(shards.tag_names[i] for i in c) for g, c in shards.tag_groups.items()}
  assert names == {"genre": ["blues", "jazz", "rock"], "mood": ["calm", "happy", "sad"],
                   "instrument": ["guitar", "piano", "voice"]}
  assert shards.metadata["extra_fields"] == ["tempo_bpm"]
  source = shards.source("train")
  records = [source[i] for i in range(len(source))]
  for split in set(shards.split_sizes) - {"train"}:
    records += [shards.source(split)[i] for i in range(shards.split_sizes[split])]
  for record in records:
    i = "abcd".index(record["path"].decode()[0])
    assert abs(float(record["tempo_bpm"]) - (80.0 + 12 * i)) <= 2.0, record["path"]
    tags = {shards.tag_names[j] for j in np.flatnonzero(record["tags"])}
    row = ROWS[i].split(",")
    assert tags == {t for cell in row[1:4] for t in cell.split(";") if t}


def test_folder_without_groups_or_tempo_has_none(tmp_path):
  audio, manifest = _collection(tmp_path, ["a.wav,rock", "b.wav,jazz"], header="path,tags")
  prepare.prepare_folder(tmp_path / "out", audio_dir=audio, manifest=manifest,
                         sample_rate=16000, progress=False)
  shards = shards_lib.open_shards(tmp_path / "out")
  assert shards.tag_groups == {} and shards.metadata["extra_fields"] == []
  record = shards.source(next(iter(shards.split_sizes)))[0]
  assert "tempo_bpm" not in record


@pytest.mark.parametrize("case, message", [
    ("column_conflict", "tag 'rock' is in group 'genre' and in group 'mood'"),
    ("file_conflict", "tag 'rock' is in group 'genre' and in group 'instrument'"),
    ("bad_column", "the group name 'my genre' is not letters"),
    ("bad_file", "has 3 cells; the header has 2"),
])
def test_folder_grouping_errors_are_one_line_and_leave_out_alone(tmp_path, capsys, case,
                                                                 message):
  rows = ["a.wav,,rock,,t1", "b.wav,,,rock,t2"] if case == "column_conflict" else ROWS[:2]
  header = "path,tags,tags:my genre,tags:mood,track" if case == "bad_column" else None
  audio, manifest = _collection(tmp_path, rows, **({"header": header} if header else {}))
  groups_file = tmp_path / "groups.csv"
  groups_file.write_text("tag,group\nrock,instrument,x\n" if case == "bad_file"
                         else "tag,group\nrock,instrument\n")
  args = ["prepare", "folder", "--audio-dir", str(audio), "--manifest", str(manifest),
          "--sample-rate", "16000", "--out", str(tmp_path / "out")]
  if case in ("file_conflict", "bad_file"):
    args += ["--tag-groups", str(groups_file)]
  assert cli.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
  assert not (tmp_path / "out").exists()
