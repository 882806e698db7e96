"""Untrusted inputs to `musicrep prepare` run nothing and fail with one line (issue 17 items 4,
6a, 6c, 7, 8): crafted split-list pickles, manifest paths leading out of --audio-dir, non-UTF-8
manifests, bad sample rates, duplicate rows, and two prepares into one folder. (The same bad
inputs through the `musicrep prepare` CLI: tests/e2e/test_prepare_cli.py.)"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from musicrep_jax.data_pipelines import dataset_layouts, folder_builder, prepare
from musicrep_jax.errors import UserError
from tests.helpers import REPO


class _RunsCode:
  """Unpickling this calls ``os.system`` (what a crafted list file would do)."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


def test_crafted_split_list_runs_nothing(tmp_path):
  marker = tmp_path / "ran"
  crafted = tmp_path / "train_list_pub.cP"
  crafted.write_bytes(pickle.dumps([_RunsCode(marker)], protocol=2))
  with pytest.raises(UserError, match="not a readable pickle"):
    dataset_layouts.read_id_list(crafted)
  assert not marker.exists()
  # The same bytes through plain pickle would have run the command: the test can fail.
  pickle.loads(crafted.read_bytes())
  assert marker.exists()


def test_python2_string_list_still_reads(tmp_path):
  """Lee's lists are Python-2 cPickles of byte strings (protocol 2, latin-1)."""
  listing = tmp_path / "valid_list_pub.cP"
  # Protocol-2 pickle of a list of Python-2 ``str`` (SHORT_BINSTRING opcodes), written by hand.
  body = b"".join(b"U" + bytes([len(s)]) + s for s in (b"a/x.npy", b"b/y.npy"))
  listing.write_bytes(b"\x80\x02]q\x00(" + body + b"e.")
  assert dataset_layouts.read_id_list(listing) == ["a/x.npy", "b/y.npy"]


def _folder(tmp_path, rows: list[str], encoding="utf-8"):
  audio = tmp_path / "audio"
  audio.mkdir()
  rng = np.random.default_rng(0)
  for name in ("one.wav", "two.wav"):
    sf.write(audio / name, rng.uniform(-0.5, 0.5, 24000).astype(np.float32), 16000)
  sf.write(tmp_path / "outside.wav", rng.uniform(-0.5, 0.5, 24000).astype(np.float32), 16000)
  manifest = tmp_path / "tags.csv"
  manifest.write_bytes(("\n".join(["path,tags"] + rows) + "\n").encode(encoding))
  return audio, manifest


@pytest.mark.parametrize("path", ["../outside.wav", "ABS"])
def test_manifest_paths_outside_the_audio_folder_are_refused(tmp_path, path):
  audio, manifest = _folder(tmp_path, ["one.wav,rock", "PLACE,jazz"])
  path = str(tmp_path / "outside.wav") if path == "ABS" else path
  manifest.write_text(manifest.read_text().replace("PLACE", path))
  with pytest.raises(UserError, match="outside the audio folder"):
    folder_builder.read_manifest(manifest, audio)
  rows = folder_builder.read_manifest(manifest, audio, allow_outside_audio_dir=True).rows
  assert os.path.realpath(rows[1].full_path) == str(tmp_path / "outside.wav")


def test_a_link_out_of_the_audio_folder_is_refused(tmp_path):
  audio, manifest = _folder(tmp_path, ["one.wav,rock", "link.wav,jazz"])
  os.symlink(tmp_path / "outside.wav", audio / "link.wav")
  with pytest.raises(UserError, match="outside the audio folder"):
    folder_builder.read_manifest(manifest, audio)


def test_latin1_manifest_is_one_clear_error(tmp_path):
  audio, manifest = _folder(tmp_path, ["one.wav,caf\u00e9"], encoding="latin-1")
  with pytest.raises(UserError, match="not UTF-8 text"):
    folder_builder.read_manifest(manifest, audio)


def test_duplicate_rows_are_dropped_with_a_warning(tmp_path):
  audio, manifest = _folder(tmp_path, ["one.wav,rock", "two.wav,jazz", "one.wav,pop"])
  parsed = folder_builder.read_manifest(manifest, audio)
  assert [r.path for r in parsed.rows] == ["one.wav", "two.wav"]
  assert parsed.rows[0].tags == ("rock",)
  assert len(parsed.warnings) == 1 and "'one.wav'" in parsed.warnings[0]


@pytest.mark.parametrize("rate", [0, -5, 22050.5, True])
def test_bad_sample_rates_are_refused_before_anything_is_written(tmp_path, rate):
  audio, manifest = _folder(tmp_path, ["one.wav,rock"])
  out = tmp_path / "out"
  with pytest.raises(UserError, match="--sample-rate"):
    prepare.prepare_folder(out, audio_dir=audio, manifest=manifest, sample_rate=rate,
                           progress=False)
  assert not out.exists()


def test_a_second_prepare_into_the_same_folder_is_refused(tmp_path):
  """A prepare holding the lock (here a process sleeping inside ``output_lock``) makes a second
  one fail at once, naming the holder; once the holder is gone, its lock file is reused."""
  out = tmp_path / "out"
  holder = subprocess.Popen(
      [sys.executable, "-c", textwrap.dedent(f"""
          import sys, time
          from musicrep_jax.data_pipelines import prepare
          with prepare.output_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(60)
      """)], stdout=subprocess.PIPE, text=True, cwd=REPO)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(UserError, match=f"pid {holder.pid}"):
      with prepare.output_lock(str(out)):
        pass
  finally:
    holder.kill()
    holder.wait()
  with prepare.output_lock(str(out)):  # The kernel dropped the dead holder's lock.
    pass


def test_killed_build_leftovers_are_removed(tmp_path):
  audio, manifest = _folder(tmp_path, ["one.wav,rock", "two.wav,jazz"])
  out = tmp_path / "out"
  leftover = out / folder_builder.MusicrepFolder.name / "incomplete.ABC123_1.0.0"
  leftover.mkdir(parents=True)
  (leftover / "shard").write_bytes(b"x" * 100)
  report = prepare.prepare_folder(out, audio_dir=audio, manifest=manifest, sample_rate=16000,
                                  progress=False)
  assert report["written"] == 2
  assert not leftover.exists()
