"""MagnaTagATune tag columns follow Lee's ``top50_tags.txt`` (the column order of his
``y_*_pub.npy``), not the frequency ranks, when the 50 most frequent tags are his 50: a miniature
``annotations_final.csv`` ranks them in reverse, and real mp3 records are built."""

import numpy as np
import soundfile as sf

from musicrep_jax.data import shards as shards_lib
from musicrep_jax.data_pipelines import dataset_layouts, mtat_builder

AUDIO_CLIPS = (0, 25, 50)  # Clips with an mp3 on disk; the other rows are reported missing.


def write_annotations(root, counts, names):
  """Clip ``c`` has tag ``t`` iff ``c < counts[t]``; clips in folder 0 (train)."""
  lines = ["\t".join(f'"{h}"' for h in ["clip_id", *names, "mp3_path"])]
  for clip in range(int(max(counts))):
    cells = [str(clip), *("1" if clip < c else "0" for c in counts), f"0/a-b-{clip}-0-29.mp3"]
    lines.append("\t".join(f'"{c}"' for c in cells))
  (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")


def test_lee_tags_in_lee_order_whatever_their_frequency_ranks(tmp_path):
  lee = list(mtat_builder.lee_top50_tags())
  assert len(lee) == 50 and lee[:3] == ["guitar", "classical", "slow"] and lee[-1] == "choral"
  names = ["rare"] + lee[::-1]  # File columns in yet another order.
  counts = [1] + [51 - i for i in range(50)]  # Lee's last tag is the most frequent; "rare" last.
  root = tmp_path / "mtat"
  (root / "0").mkdir(parents=True)
  write_annotations(root, counts, names)
  t = np.arange(int(1.2 * 16000)) / 16000
  for clip in AUDIO_CLIPS:
    sf.write(root / f"0/a-b-{clip}-0-29.mp3", (0.2 * np.sin(2 * np.pi * 330 * t)).astype(
        np.float32), 16000, format="MP3")
  report = dataset_layouts.prepare_layout(
      mtat_builder.MusicrepMtat, tmp_path / "out", manual_dir=str(root), variant="full",
      sample_rate=16000, expected_counts=None, workers=2, progress=False)
  assert not any("top50_tags" in w for w in report["warnings"])
  shards = shards_lib.open_shards(tmp_path / "out", expected_sample_rate=16000)
  assert list(shards.tag_names) == lee
  records = {int(r["path"].decode().split("-")[2]): r
             for r in (shards.source("train")[i] for i in range(shards.split_sizes["train"]))}
  assert sorted(records) == list(AUDIO_CLIPS)
  # Clip 50 carries only the most frequent tag, Lee's last ("choral"): column 49, not 0.
  assert np.flatnonzero(records[50]["tags"]).tolist() == [49]
  # Clip 25 carries Lee's tags whose count exceeds 25: his last 26 tags.
  assert np.flatnonzero(records[25]["tags"]).tolist() == list(range(24, 50))
  assert records[0]["tags"].sum() == 50  # Every one of the 50 ("rare" is not a column).


def test_other_top50_keeps_frequency_order_and_warns(tmp_path):
  lee = list(mtat_builder.lee_top50_tags())
  names = lee + ["rare"]
  counts = list(range(1, 52))  # "rare" most frequent, Lee's first tag drops out of the top 50.
  write_annotations(tmp_path, counts, names)
  builder = mtat_builder.MusicrepMtat(manual_dir=tmp_path, data_dir=tmp_path / "out")
  tags = list(builder.info.metadata["tag_names"])
  assert tags == ["rare"] + lee[:0:-1]  # Most frequent first.
  assert any("frequency order, not Lee's" in w for w in builder.warnings)
