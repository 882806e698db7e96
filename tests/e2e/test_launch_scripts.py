"""launch/tpu_pod.sh and launch/slurm_gpu.sbatch, run for real against stand-in ``gcloud`` and
``srun`` executables first on PATH.

The stand-ins are small Python scripts written into ``tmp_path``; each appends one JSON line per
call to a log. The ``gcloud`` stand-in plays a TPU worker: ``tpu-vm scp`` copies the file into a
sandbox home directory, ``tpu-vm ssh --command CMD`` checks CMD with ``bash -n`` and runs it with
``bash -c`` in that home, as sshd runs a command through the login shell. CMD is followed by a
no-op so that bash cannot silently exec its last command: only an explicit ``exec`` makes
musicrep the session's process. The worker's ``python3 -m venv`` makes a venv whose ``pip``
records its arguments and installs a ``musicrep`` that records its argv, PID and working folder,
and whether the SIGTERM that the stand-in ``gcloud`` sends to the session's process (as a
preempted TPU VM does) reached it. ``srun`` records its arguments and starts the task.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

TPU_POD = REPO / "launch" / "tpu_pod.sh"
SLURM = REPO / "launch" / "slurm_gpu.sbatch"

# Paths with characters the remote shell would otherwise interpret: spaces, quotes, $, ;, `, *.
TRICKY_WORKDIR = "gs://bucket/runs/it's a \"run\" $HOME; `touch pwned` & *"
TRAIN_ARGS = ["--config", "configs/samplecnn_mtat.py", "--workdir", "gs://bucket/workdirs/mtat",
              "--data-dir", "gs://bucket/data/mtat", "--config.batch_size=4096"]
TRICKY_ARGS = ["--config", "configs/samplecnn_mtat.py", "--workdir", TRICKY_WORKDIR,
               "--data-dir", "gs://bucket/data/$(touch pwned)", "--config.optimizer.name=adam w"]

_LOG = """
import json, os, sys

def log(entry):
  with open(os.environ["STANDIN_LOG"], "a") as f:
    f.write(json.dumps(entry) + "\\n")
"""

GCLOUD = _LOG + """
import shutil, signal, subprocess, tarfile, time

argv = sys.argv[1:]
entry = {"prog": "gcloud", "argv": argv}
home = os.environ["WORKER_HOME"]
rc = 0
if argv[:4] == ["compute", "tpus", "tpu-vm", "scp"]:
  src, dest = argv[4], argv[5]
  name, path = dest.split(":", 1)
  shutil.copy(src, os.path.join(home, path))   # a relative remote path is the worker's home
  with tarfile.open(src) as archive:
    entry["members"] = sorted({os.path.normpath(m).split(os.sep)[0] for m in archive.getnames()})
elif argv[:4] == ["compute", "tpus", "tpu-vm", "ssh"]:
  commands = [a.split("=", 1)[1] for a in argv if a.startswith("--command=")]
  commands += [argv[i + 1] for i, a in enumerate(argv) if a == "--command"]
  entry["commands"] = commands
  cmd = commands[0]
  entry["syntax_ok"] = subprocess.run(["bash", "-n", "-c", cmd]).returncode == 0
  ready = os.environ["STANDIN_READY"]
  proc = subprocess.Popen(["bash", "-c", cmd + "\\n:"], cwd=home, env=dict(os.environ, HOME=home))
  entry["shell_pid"] = proc.pid
  signalled = False
  while proc.poll() is None:
    if not signalled and os.path.exists(ready):
      proc.send_signal(signal.SIGTERM)   # the preemption notice, to the session's process
      signalled = True
    time.sleep(0.02)
  rc = entry["rc"] = proc.returncode
log(entry)
sys.exit(rc)
"""

SRUN = _LOG + """
import subprocess

argv = sys.argv[1:]
log({"prog": "srun", "argv": argv, "cwd": os.getcwd()})
first = next(i for i, a in enumerate(argv) if not a.startswith("-"))
program = argv[first:]   # the task each node would start, after srun's own options
env = dict(os.environ)
env.pop("STANDIN_READY", None)   # no preemption notice in this run
sys.exit(subprocess.run(program, env=env).returncode)
"""

WORKER_PYTHON = _LOG + """
args = sys.argv[1:]
if args[:2] != ["-m", "venv"]:
  os.execv(REAL_PYTHON, [REAL_PYTHON, *args])
venv = args[2]
log({"prog": "python3 -m venv", "argv": args, "cwd": os.getcwd()})
os.makedirs(os.path.join(venv, "bin"), exist_ok=True)
for name, source in (("python", REAL_PYTHON_SOURCE), ("pip", PIP)):
  path = os.path.join(venv, "bin", name)
  with open(path, "w") as f:
    f.write(source)
  os.chmod(path, 0o755)
"""

PIP = _LOG + """
args = sys.argv[1:]
log({"prog": "pip", "argv": args, "venv": os.path.dirname(os.path.dirname(
    os.path.abspath(sys.argv[0])))})
if args[0] == "install" and "-e" in args:
  path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "musicrep")
  with open(path, "w") as f:
    f.write(f"#!{sys.executable}\\n{MUSICREP}")
  os.chmod(path, 0o755)
"""

MUSICREP = _LOG + """
import signal, time

log({"prog": "musicrep", "argv": sys.argv[1:], "pid": os.getpid(), "cwd": os.getcwd()})

def on_term(signum, frame):
  log({"prog": "musicrep", "signal": signal.Signals(signum).name, "pid": os.getpid()})
  sys.exit(0)

ready = os.environ.get("STANDIN_READY")
if ready:
  signal.signal(signal.SIGTERM, on_term)
  open(ready, "w").close()
  time.sleep(10)
  log({"prog": "musicrep", "signal": None, "pid": os.getpid()})
"""


def _script(path: pathlib.Path, body: str, **constants) -> pathlib.Path:
  """An executable Python script run by this interpreter; ``constants`` are defined first."""
  header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
  path.write_text(f"#!{sys.executable}\n{header}{body}")
  path.chmod(0o755)
  return path


class Sandbox:
  """Stand-in executables on PATH, a worker home and the call log."""

  def __init__(self, tmp_path: pathlib.Path):
    self.root = tmp_path
    self.bin = tmp_path / "bin"
    self.home = tmp_path / "worker home"
    self.log = tmp_path / "calls.jsonl"
    self.ready = tmp_path / "musicrep.ready"
    self.bin.mkdir()
    self.home.mkdir()
    _script(self.bin / "gcloud", GCLOUD)
    _script(self.bin / "srun", SRUN)
    # The worker's python3: `-m venv` makes the stand-in venv, anything else is this Python.
    _script(self.bin / "python3", WORKER_PYTHON, REAL_PYTHON=sys.executable,
            REAL_PYTHON_SOURCE=f"#!/bin/sh\nexec {sys.executable} \"$@\"\n",
            PIP=f"#!{sys.executable}\nMUSICREP = {MUSICREP!r}\n{PIP}")

  def env(self, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSICREP_", "SLURM_"))}
    env.pop("GCLOUD_EXTRA", None)
    env.update(PATH=f"{self.bin}:{os.environ['PATH']}", STANDIN_LOG=str(self.log),
               STANDIN_READY=str(self.ready), WORKER_HOME=str(self.home), **extra)
    return env

  def run(self, args, *, cwd=None, check=True, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", *map(str, args)], env=self.env(**env), cwd=cwd or self.root,
                          capture_output=True, text=True, timeout=120)
    if check:
      assert proc.returncode == 0, (f"{args[0]} exited {proc.returncode}\nstdout:\n"
                                    f"{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc

  def calls(self, prog=None) -> list:
    if not self.log.exists():
      return []
    entries = [json.loads(line) for line in self.log.read_text().splitlines()]
    return [e for e in entries if prog is None or e["prog"] == prog]

  def no_injection(self):
    """Nothing in the arguments was executed by a shell (``touch pwned``)."""
    found = [*self.root.rglob("pwned"), *REPO.glob("pwned")]   # the shells ran in these
    assert not found, f"a shell ran part of an argument: {found}"


@pytest.fixture
def sandbox(tmp_path):
  return Sandbox(tmp_path)


def _option(argv, name):
  """The value of ``name VALUE`` or ``name=VALUE`` in argv (None when absent)."""
  for i, arg in enumerate(argv):
    if arg == name:
      return argv[i + 1]
    if arg.startswith(name + "="):
      return arg.split("=", 1)[1]
  return None


def _check_ssh_call(call, tpu, zone):
  argv = call["argv"]
  assert argv[:5] == ["compute", "tpus", "tpu-vm", "ssh", tpu], argv
  assert "--worker=all" in argv, f"not the same command on every worker: {argv}"
  assert _option(argv, "--zone") == zone
  assert len(call["commands"]) == 1, f"one command for all workers: {call['commands']}"
  assert call["syntax_ok"], f"bash -n rejects the remote command: {call['commands'][0]}"


def _check_train_on_worker(sandbox, ssh_call, repo: pathlib.Path, venv: pathlib.Path, args):
  """musicrep ran in the checkout with the arguments unchanged, as the session's own process,
  and got the SIGTERM sent to that process."""
  (start,) = [c for c in sandbox.calls("musicrep") if "argv" in c]
  assert start["argv"] == ["train", *args]
  assert pathlib.Path(start["cwd"]) == repo
  assert start["pid"] == ssh_call["shell_pid"], (
      "musicrep is a child of the remote shell, not the shell itself: the remote command must "
      "`exec` it so that the preemption SIGTERM reaches it")
  signals = [c["signal"] for c in sandbox.calls("musicrep") if "signal" in c]
  assert signals == ["SIGTERM"], f"the SIGTERM sent to the session missed musicrep: {signals}"
  assert ssh_call["rc"] == 0, f"the remote command exited {ssh_call['rc']}"
  assert (venv / "bin" / "musicrep").is_file()
  sandbox.no_injection()


def test_tpu_pod_setup_installs_the_tpu_extra_and_runs_the_same_command_everywhere(sandbox):
  proc = sandbox.run([TPU_POD, "my-v5e-32", "us-west4-a", *TRAIN_ARGS], check=False,
                     MUSICREP_SETUP="1")
  gcloud = sandbox.calls("gcloud")
  assert [c["argv"][3] for c in gcloud] == ["scp", "ssh", "ssh"], [c["argv"] for c in gcloud]
  scp, setup, train = gcloud

  # The working tree reaches every worker's home.
  assert scp["argv"][5] == "my-v5e-32:musicrep.tgz" and "--worker=all" in scp["argv"]
  assert _option(scp["argv"], "--zone") == "us-west4-a"
  repo = sandbox.home / "musicrep-jax"
  for name in ("pyproject.toml", "constraints.txt", "launch/tpu_pod.sh", "musicrep_jax/cli.py"):
    assert (repo / name).is_file(), f"{name} not copied to the worker"
  members = set(scp["members"])
  assert {"pyproject.toml", "constraints.txt", "musicrep_jax", "configs", "launch"} <= members
  assert not members & {".git", ".venv", "workdirs", "musicrep_jax.egg-info"}, members
  assert not (sandbox.home / "musicrep.tgz").exists(), "the archive is left on the worker"

  # Setup: a venv in the checkout, then the tpu extra with the tested constraints.
  _check_ssh_call(setup, "my-v5e-32", "us-west4-a")
  venv = repo / ".venv"
  (make_venv,) = sandbox.calls("python3 -m venv")
  assert pathlib.Path(make_venv["argv"][2]) == venv
  (pip,) = sandbox.calls("pip")
  args = pip["argv"]
  assert args[0] == "install" and pathlib.Path(pip["venv"]) == venv
  constraints = _option(args, "-c")
  assert constraints and pathlib.Path(constraints) == repo / "constraints.txt", (
      f"not installed with the tested constraints: {args}")
  assert _option(args, "-e") == f"{repo}[tpu]", args
  assert [a for a in args if not a.startswith("-")] == ["install", _option(args, "-c"),
                                                       _option(args, "-e")], (
      f"something besides the checkout and its extra installed (jax[tpu] loose?): {args}")

  _check_ssh_call(train, "my-v5e-32", "us-west4-a")
  _check_train_on_worker(sandbox, train, repo, venv, TRAIN_ARGS)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_tpu_pod_passes_quoted_paths_through_unchanged(sandbox):
  """No setup: an existing venv, a checkout path with a space, and arguments with shell syntax."""
  repo = sandbox.home / "my checkout"
  venv = sandbox.root / "shared env"
  (venv / "bin").mkdir(parents=True)
  repo.mkdir()
  _script(venv / "bin" / "musicrep", MUSICREP)
  proc = sandbox.run([TPU_POD, "pod", "europe-west4-b", *TRICKY_ARGS], check=False,
                     MUSICREP_REPO="~/my checkout", MUSICREP_VENV=str(venv),
                     GCLOUD_EXTRA="--project=my-project --quiet")
  (train,) = sandbox.calls("gcloud")
  _check_ssh_call(train, "pod", "europe-west4-b")
  assert train["argv"][-4:-2] == ["--project=my-project", "--quiet"]
  assert not sandbox.calls("pip"), "installed without MUSICREP_SETUP=1"
  _check_train_on_worker(sandbox, train, repo, venv, TRICKY_ARGS)
  assert proc.returncode == 0, proc.stderr[-3000:]


def test_slurm_header_wires_preemption_and_one_task_per_gpu():
  header = [line for line in SLURM.read_text().splitlines() if line.startswith("#SBATCH")]
  assert "#SBATCH --signal=TERM@120" in header
  assert "#SBATCH --gpus-per-task=1" in header
  # #SBATCH lines after the first command are ignored by sbatch: all must come before it.
  lines = SLURM.read_text().splitlines()
  first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
  assert all(lines.index(line) < first_command for line in header)


@pytest.mark.parametrize("args", [TRAIN_ARGS, TRICKY_ARGS], ids=["plain", "shell-syntax"])
def test_slurm_setup_installs_cuda12_once_and_sruns_musicrep(sandbox, args):
  venv = sandbox.root / "shared fs" / "venv"
  submit = dict(SLURM_SUBMIT_DIR=str(REPO), SLURM_JOB_ID="42", MUSICREP_VENV=str(venv))
  sandbox.run([SLURM, *args], MUSICREP_SETUP="1", **submit)
  sandbox.run([SLURM, *args], **submit)   # a later job reuses the venv

  (make_venv,) = sandbox.calls("python3 -m venv")
  assert pathlib.Path(make_venv["argv"][2]) == venv
  (pip,) = sandbox.calls("pip")
  assert pip["argv"][0] == "install"
  constraints = _option(pip["argv"], "-c")
  assert constraints and pathlib.Path(constraints) == REPO / "constraints.txt", (
      f"not installed with the tested constraints: {pip['argv']}")
  assert _option(pip["argv"], "-e") == f"{REPO}[cuda12]"

  sruns = sandbox.calls("srun")
  assert len(sruns) == 2
  for srun in sruns:
    assert srun["argv"] == ["--kill-on-bad-exit=1", str(venv / "bin" / "musicrep"), "train", *args]
    assert pathlib.Path(srun["cwd"]) == REPO
  started = [c for c in sandbox.calls("musicrep") if "argv" in c]
  assert [c["argv"] for c in started] == [["train", *args]] * 2
  sandbox.no_injection()


def test_slurm_without_a_venv_says_how_to_make_one(sandbox):
  venv = sandbox.root / "missing"
  proc = sandbox.run([SLURM, *TRAIN_ARGS], check=False, SLURM_SUBMIT_DIR=str(REPO),
                     MUSICREP_VENV=str(venv))
  assert proc.returncode != 0
  assert "MUSICREP_SETUP=1" in proc.stderr
  assert not sandbox.calls("srun")


@pytest.mark.parametrize("script", ["tpu_pod.sh", "slurm_gpu.sbatch", "local_multiprocess.sh"])
def test_launch_scripts_are_strict_bash(script):
  path = REPO / "launch" / script
  text = path.read_text()
  assert text.startswith("#!/usr/bin/env bash\n")
  assert re.search(r"^set -euo pipefail$", text, re.M)
  proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  assert os.access(path, os.X_OK)

