"""``bash bench/accelerator_check.sh --dry-run``: the GPU check's whole path on the CPU (preflight,
a device test, the train-step and convolution benchmarks, the marked section) writes to a copy
of docs/benchmarks.md and leaves the real one alone."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def test_dry_run_writes_its_section_to_a_temporary_copy():
  doc = REPO / "docs" / "benchmarks.md"
  before = doc.read_text()
  env = dict(os.environ, PYTHON=sys.executable, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  proc = subprocess.run(["bash", "bench/accelerator_check.sh", "--dry-run"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
  assert doc.read_text() == before
  written = re.search(r"wrote the section to (\S+\.md) \(tests: (.*)\)", proc.stdout)
  assert written and written.group(1) != str(doc), proc.stdout[-2000:]
  assert "1 passed" in written.group(2)
  copy = open(written.group(1)).read()
  section = re.search(r"<!-- bench:accelerator-check-cpu:begin -->(.*?)"
                      r"<!-- bench:accelerator-check-cpu:end -->", copy, re.S)
  assert section, copy[-2000:]
  body = section.group(1)
  assert "### Accelerator check: cpu (dry run)" in body and "- Failed" not in body
  row = [line for line in body.splitlines() if line.startswith("| 3^3 ch 4-4-4-8-8 | bfloat16")]
  assert len(row) == 1, body
  cells = [c.strip() for c in row[0].strip("|").split("|")]
  assert float(cells[5].split()[0]) > 0  # JAX steps/s
  assert float(cells[7].split()[0]) > 0 and float(cells[9].split()[0]) > 0  # eager, compiled
  assert cells[-1] == "1"  # one compilation of the step
  formulations = re.findall(r"^\| 81 x 4 -> 8, k3 \| ([^|]+) \|", body, re.M)
  assert len(formulations) == 7 and "JAX 2-D NCHW (H=1)" in {f.strip() for f in formulations}
  assert copy.replace(section.group(0), "").strip() == before.strip()
  os.unlink(written.group(1))
