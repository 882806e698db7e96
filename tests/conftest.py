"""Shared fixtures: a prepared tiny synthetic dataset and a private cache for the whole session.

The suite runs on one CPU device in-process; tests that need 8 fake devices or several processes
start subprocesses with their own ``XLA_FLAGS``.
"""

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

# Keep the embedded-corpus cache out of the user's home and shared by every test and subprocess.
os.environ.setdefault("MUSICREP_CACHE", tempfile.mkdtemp(prefix="musicrep-cache-"))

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY_CONFIG = str(REPO / "tests" / "tiny_config.py")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
  """120 synthetic clips of 2 s at 16 kHz, prepared once (ArrayRecord)."""
  return synthetic_shards(tmp_path_factory, "tiny_synthetic", num_clips=120, clip_seconds=2.0)


def synthetic_shards(tmp_path_factory, name: str, *, num_clips: int, clip_seconds: float,
                     seed: int = 0) -> pathlib.Path:
  """The embedded corpus at 16 kHz prepared into a fresh temporary folder ``name``."""
  from data_pipelines.prepare import prepare_synthetic

  out = tmp_path_factory.mktemp(name)
  prepare_synthetic(out, num_clips=num_clips, seed=seed, sample_rate=16000,
                    clip_seconds=clip_seconds, progress=False)
  return out


def run_cli(args, *, env_extra=None, timeout=600, check=True) -> subprocess.CompletedProcess:
  """Runs ``musicrep ARGS`` in a fresh Python process (own XLA flags, real process semantics)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
  proc = subprocess.run([sys.executable, "-m", "musicrep_jax.cli", *args], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"musicrep {' '.join(args)} exited {proc.returncode}\n"
                         f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
  return proc
