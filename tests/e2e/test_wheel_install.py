"""The package as a cluster gets it: a wheel built with ``pip wheel``, installed into a fresh venv
outside the checkout, lists its configs and trains ``demo:runlocal`` by name.

The fresh venv sees the test environment's dependencies through a ``.pth`` line naming its
site-packages (so nothing is downloaded), but not the editable install of the checkout: that
one is a finder registered by a ``.pth`` file, which runs only for a site directory, not for a
directory a ``.pth`` line adds. The test asserts that ``musicrep_jax`` and its configs are
imported from the venv.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.helpers import REPO

# What the wheel is built from: pyproject.toml names every package folder explicitly.
SOURCES = ("pyproject.toml", "README.md", "musicrep_jax", "configs", "data_pipelines", "bench")


def _run(args, **kwargs) -> subprocess.CompletedProcess:
  proc = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
  assert proc.returncode == 0, (f"{' '.join(map(str, args))} exited {proc.returncode}\n"
                                f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
  return proc


def _build_wheel(tmp_path):
  """``pip wheel`` of a copy of the sources (the build writes build/ and egg-info beside them)."""
  src = tmp_path / "src"
  src.mkdir()
  for name in SOURCES:
    if (REPO / name).is_dir():
      shutil.copytree(REPO / name, src / name,
                      ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    else:
      shutil.copy2(REPO / name, src / name)
  _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
        "--no-cache-dir", "-w", str(tmp_path / "dist")], cwd=tmp_path)
  (wheel,) = (tmp_path / "dist").glob("musicrep_jax-*.whl")
  return wheel


def _fresh_venv(tmp_path, wheel):
  """A venv with the wheel installed and the test environment's dependencies visible."""
  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
  python = venv / "bin" / "python"
  site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
  (tmp_path / "venv_site").write_text(site.stdout.strip())
  deps = sysconfig.get_paths()["purelib"]
  with open(os.path.join(site.stdout.strip(), "_test_dependencies.pth"), "w") as f:
    f.write(deps + "\n")
  _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
        "--no-compile", "--disable-pip-version-check", str(wheel)])
  return venv


@pytest.mark.slow
def test_wheel_installs_configs_by_name_and_trains_outside_the_checkout(tmp_path):
  wheel = _build_wheel(tmp_path)
  names = zipfile.ZipFile(wheel).namelist()
  top_level = {n.split("/")[0] for n in names}
  assert top_level == {"musicrep_jax", wheel.name.split("-py")[0] + ".dist-info"}, top_level
  for packaged in ("musicrep_jax/configs/demo.py", "musicrep_jax/configs/common.py",
                   "musicrep_jax/data_pipelines/synthetic_corpus.py",
                   "musicrep_jax/data_pipelines/splits/README.md",
                   "musicrep_jax/bench/train_step_bench.py"):
    assert packaged in names, packaged

  venv = _fresh_venv(tmp_path, wheel)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env.update(PYTHONUNBUFFERED="1", PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
  where = _run([str(venv / "bin" / "python"), "-c",
                "import musicrep_jax, musicrep_jax.configs as c; "
                "print(musicrep_jax.__file__); print(list(c.__path__)[0])"],
               cwd=elsewhere, env=env).stdout.split()
  site = (tmp_path / "venv_site").read_text()
  assert all(path.startswith(site) for path in where), (where, site)

  listed = _run([str(venv / "bin" / "musicrep"), "configs"], cwd=elsewhere, env=env).stdout
  lines = listed.strip().splitlines()
  expected = sorted(p.stem for p in (REPO / "configs").glob("*.py")
                    if "\ndef get_config(" in p.read_text())
  assert [line.split()[0] for line in lines[:-1]] == expected
  assert json.loads(lines[-1])["configs"] == len(expected)

  workdir = tmp_path / "w"
  trained = _run([str(venv / "bin" / "musicrep"), "train", "--config", "demo:runlocal",
                  "--workdir", str(workdir), "--config.num_train_steps=2",
                  "--config.eval_every=2", "--config.checkpoint_every=2",
                  "--config.progress_bar=false"], cwd=elsewhere, env=env)
  result = json.loads(trained.stdout.strip().splitlines()[-1])
  assert result["step"] == 2 and result["split"] == "test" and "roc_auc" in result
  assert json.loads((workdir / "config.json").read_text())["config_file"].startswith(site)
