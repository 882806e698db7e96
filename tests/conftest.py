"""Fixtures only (helpers are in tests/helpers.py): a prepared tiny synthetic dataset and a
private cache for the whole session.

The suite runs on one CPU device in-process; tests that need 8 fake devices or several processes
start subprocesses with their own ``XLA_FLAGS``.
"""

import os
import tempfile

import pytest

# Keep the embedded-corpus cache out of the user's home and shared by every test and subprocess.
os.environ.setdefault("MUSICREP_CACHE", tempfile.mkdtemp(prefix="musicrep-cache-"))


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """120 synthetic clips of 2 s at 16 kHz, prepared once (ArrayRecord)."""
  from tests.helpers import synthetic_shards

  return synthetic_shards(tmp_path_factory, "tiny_synthetic", num_clips=120, clip_seconds=2.0)
