"""Fixtures only (helpers are in tests/helpers.py): a prepared tiny synthetic dataset, a private
cache for the whole session, and a GCS API emulator on 127.0.0.1 (``gcs_emulator``).

The suite runs on one CPU device in-process; tests that need 8 fake devices or several processes
start subprocesses with their own ``XLA_FLAGS``.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

# Keep the embedded-corpus cache out of the user's home and shared by every test and subprocess.
os.environ.setdefault("MUSICREP_CACHE", tempfile.mkdtemp(prefix="musicrep-cache-"))
# One persistent XLA compilation cache for the session, shared by every test, pytest-xdist worker
# and subprocess (the same demo, tiny and paper-config steps compile in many tests). A size
# limit turns on JAX's file locks around reads and writes, which the workers need.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="musicrep-xla-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(16 << 30))
# The suite runs on CPU. The test extra installs libtpu (for `musicrep plan`), which JAX would
# otherwise probe in every process (warnings, and a lock file that a second process waits on);
# plan loads it explicitly for its --topology.
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_collection_modifyitems(config, items):
  """The ``slow`` tests first (a stable sort keeps file order otherwise): with pytest-xdist's
  worksteal the long end-to-end runs start early and the short tests fill the gaps, instead of a
  100-s run starting last on one worker while the others idle."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """120 synthetic clips of 2 s at 16 kHz, prepared once (ArrayRecord)."""
  from tests.helpers import synthetic_shards

  return synthetic_shards(tmp_path_factory, "tiny_synthetic", num_clips=120, clip_seconds=2.0)


@pytest.fixture(scope="session")
def msd_dims_shards(tmp_path_factory):
  """An MSD miniature (real mp3 previews, the MSD/Last.fm SQLite files, Lee's split lists) with
  papers 13-14's four tag groups and each clip's tempo, prepared once (``tests.helpers``)."""
  from tests.helpers import msd_dims_shards

  return msd_dims_shards(tmp_path_factory)


# The emulator, started with one fix: its downloads and object resources lack GCS's
# ``x-goog-generation`` and ``x-goog-metageneration`` response headers, without which TensorStore
# rejects reads and writes ("Malformed StorageGeneration"), so Orbax's OCDBT checkpoints fail.
# And a second: create-only-if-absent (``ifGenerationMatch=0``, what ``locks.remote_lock`` relies on)
# answers 412 when the object exists; other preconditions are still ignored by the emulator.
_EMULATOR_MAIN = """
import sys
from http import HTTPStatus
from gcp_storage_emulator import server
from gcp_storage_emulator.handlers import objects

_download = objects.download

def download(request, response, storage, *args, **kwargs):
  _download(request, response, storage, *args, **kwargs)
  try:
    obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
  except Exception:
    return
  response["x-goog-generation"] = str(obj["generation"])
  response["x-goog-metageneration"] = str(obj["metageneration"])

def json_with_generation(self, obj, _json=server.Response.json):
  _json(self, obj)
  if isinstance(obj, dict) and "generation" in obj and "metageneration" in obj:
    self["x-goog-generation"] = str(obj["generation"])
    self["x-goog-metageneration"] = str(obj["metageneration"])

server.Response.json = json_with_generation

_insert = objects.insert

def insert(request, response, storage, *args, **kwargs):
  # GCS's create-only-if-absent (ifGenerationMatch=0; locks.remote_lock): 412 when it exists.
  if request.query.get("ifGenerationMatch") == ["0"] and "upload_id" not in request.query:
    name = (request.query.get("name") or [None])[0]
    data = request.data if isinstance(request.data, dict) else {}
    name = name or (data.get("meta") or {}).get("name") or data.get("name")
    try:
      storage.get_file_obj(request.params["bucket_name"], name)
    except Exception:
      pass
    else:
      response.status = HTTPStatus.PRECONDITION_FAILED
      response.json({"error": {"code": 412, "message": "Precondition Failed"}})
      return
  return _insert(request, response, storage, *args, **kwargs)

objects.insert = insert
objects.download = download  # objects.get(alt=media) calls it by this name.
server.HANDLERS = tuple((pattern, {k: {_download: download, _insert: insert}.get(v, v)
                                   for k, v in methods.items()})
                        for pattern, methods in server.HANDLERS)
server.create_server(sys.argv[1], int(sys.argv[2]), in_memory=True, default_bucket="bucket").run()
"""


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
  """The ``gcp-storage-emulator`` package serving the GCS JSON API on 127.0.0.1 with a bucket
  ``bucket`` (in memory), and every client of the package pointed at it for this process and its
  subprocesses (``os.environ``; the returned dict holds the same settings):

  - gcsfs (``etils.epath``'s gs:// backend): ``STORAGE_EMULATOR_HOST``; anonymous through fsspec's
    ``FSSPEC_GCS_TOKEN=anon``; ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` keeps gcsfs' plain
    ``GCSFileSystem`` instead of the extended one, whose gRPC storage-layout probe of the bucket
    type (zonal / hierarchical namespace) waits about 60 s for an API the emulator lacks.
  - TensorStore (Orbax's array writes): ``TENSORSTORE_GCS_HTTP_URL``; with no credentials found
    it sends requests without any, and ``GCE_METADATA_ROOT`` points its metadata-server lookup at
    the emulator (a 404: no credentials) instead of outside this machine.
  """
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  url = f"http://127.0.0.1:{port}"
  log = tmp_path_factory.mktemp("gcs_emulator") / "emulator.log"
  with open(log, "w") as out:
    proc = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR_MAIN, "127.0.0.1", str(port)],
        stdout=out, stderr=subprocess.STDOUT)
  deadline = time.monotonic() + 30
  while True:
    try:
      socket.create_connection(("127.0.0.1", port), timeout=1).close()
      break
    except OSError:
      if proc.poll() is not None or time.monotonic() > deadline:
        proc.kill()
        raise RuntimeError(f"the GCS emulator did not start:\n{log.read_text()}") from None
      time.sleep(0.1)
  env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
         "GCE_METADATA_ROOT": f"127.0.0.1:{port}", "FSSPEC_GCS_TOKEN": "anon",
         "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)
  import fsspec.config  # Read FSSPEC_* at import: set the token for this process too.

  fsspec.config.conf.setdefault("gcs", {})["token"] = "anon"
  try:
    yield env
  finally:
    proc.terminate()
    proc.wait(timeout=10)
    fsspec.config.conf.get("gcs", {}).pop("token", None)
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
