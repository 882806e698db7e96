"""`musicrep prepare folder` in a fresh process: bad inputs are one-line errors with exit code 2,
and a good run prints its counts and the repeated-row warning. (The same inputs through the
Python API: tests/unit/data_pipelines/test_safe_inputs.py.)"""

import pytest

from tests.helpers import run_cli
from tests.unit.data_pipelines.test_safe_inputs import _folder


@pytest.mark.slow
def test_prepare_cli_bad_inputs_are_one_line_and_counts_are_printed(tmp_path):
  audio, manifest = _folder(tmp_path, ["one.wav,rock", "two.wav,jazz", "one.wav,pop"])
  out = tmp_path / "out"
  base = ["prepare", "folder", "--audio-dir", str(audio), "--manifest", str(manifest)]
  for extra in (["--sample-rate", "0", "--out", str(out)],
                ["--out", str(manifest)]):  # --out is a regular file.
    proc = run_cli(base + extra, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  proc = run_cli(base + ["--sample-rate", "16000", "--out", str(out)])
  assert "2 file(s) seen, 2 written, 0 skipped" in proc.stdout
  assert "warning: 1 manifest row(s) repeat" in proc.stdout
