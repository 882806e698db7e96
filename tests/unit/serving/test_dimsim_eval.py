"""``musicrep dimsim`` on a tiny disentangled (CSN) workdir and a miniature dim-sim release (real
WAV files): the chosen clip is an exact copy of the anchor or noise, so the agreement of each
kept triplet is known for any model, in the complete space and every subspace; one-line errors
that leave the workdir untouched."""

import json

import numpy as np
import pytest

from musicrep_jax import cli, config_loading
from musicrep_jax.configs import metric_learning as metric_configs
from tests.helpers import save_untrained_workdir, write_dimsim

SR = 16000


@pytest.fixture(scope="module")
def csn_workdir(tiny_data_dir, tmp_path_factory):
  """paper 13's CSN (``csn_disentangled:runlocal``, tiny widths), its initial state saved."""
  config = config_loading.load_config_file(
      config_loading.resolve_config_spec("csn_disentangled:runlocal"))
  metric_configs.metric_tiny(config)
  config.data.sample_rate = SR
  return save_untrained_workdir(tmp_path_factory.mktemp("csn") / "wd", config, tiny_data_dir)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
  """TRA and TRB the same song (a tone and a glide), TRC noise: t0 (raters chose the copy) and
  t1 (raters chose the noise); t2 is a tie; t3 (consensus 0.6, chose the copy) is kept below
  the default min_consensus 0.9 only."""
  t = np.arange(4 * SR) / SR
  song = 0.3 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * (300 + 50 * t) * t))
  noise = 0.3 * np.random.default_rng(0).normal(size=len(t))
  tracks = {"TRA": song, "TRB": song.copy(), "TRC": noise}
  return write_dimsim(tmp_path_factory.mktemp("dimsim"), SR, tracks, [
      ("TRA", "TRB", "TRC", (9, 0)), ("TRA", "TRB", "TRC", (0, 7)),
      ("TRA", "TRC", "TRB", (3, 3)), ("TRA", "TRC", "TRB", (2, 3))])


def _files(path):
  return {p: p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def test_dimsim_command_agreement(csn_workdir, release, tiny_data_dir, capsys):
  path, audio = release
  before = _files(csn_workdir)
  assert cli.main(["dimsim", "--workdir", str(csn_workdir), "--csv", str(path),
                   "--audio-dir", str(audio), "--min-consensus", "0.5",
                   "--data-dir", str(tiny_data_dir)]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["dimsim/triplets"] == 3 and result["dimsim/clips"] == 3
  assert result["dimsim/skipped_tied"] == 1 and result["dimsim/skipped_below_consensus"] == 0
  # t0 and t3 (raters chose the copy) agree, t1 (raters chose the noise) does not.
  assert result["dimsim/agreement"] == pytest.approx(2 / 3)
  for label in ("tag:genre", "tag:mood", "tag:instrument", "tag:tempo"):  # the CSN subspaces
    assert result[f"dimsim/{label}/agreement"] == pytest.approx(2 / 3), label
  assert _files(csn_workdir) == before  # the workdir is only read


@pytest.mark.parametrize("case,message", [
    ("no_csv", "does not exist"),
    ("no_audio", "audio folder"),
    ("missing_track", "have no audio file"),
    ("no_workdir", ""),
])
def test_dimsim_bad_input_is_one_line(csn_workdir, release, tmp_path, capsys, case, message):
  path, audio = release
  args = {"--workdir": str(csn_workdir), "--csv": str(path), "--audio-dir": str(audio)}
  if case == "no_csv":
    args["--csv"] = str(tmp_path / "absent.csv")
  elif case == "no_audio":
    args["--audio-dir"] = str(tmp_path / "absent")
  elif case == "missing_track":
    (tmp_path / "TRA.wav").write_bytes((audio / "TRA.wav").read_bytes())
    args["--audio-dir"] = str(tmp_path)
  else:
    args["--workdir"] = str(tmp_path / "not_a_workdir")
  before = _files(csn_workdir)
  assert cli.main(["dimsim", *[x for kv in args.items() for x in kv]]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "\n" not in err and message in err, err
  assert _files(csn_workdir) == before
