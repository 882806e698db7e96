"""What an install resolves to: ``constraints.txt`` pins every package that
``pip install -e '.[test]'`` installs, the pins satisfy pyproject's bounds, and ``requires-python``
admits no Python that the pinned JAX cannot install on.

``constraints.txt`` is written by this module from the project venv
(``python -m tests.contracts.test_install_metadata --write``): ``pip freeze --exclude-editable``,
keeping only the dependency closure of pyproject's ``dependencies`` and ``test`` extra (followed
through the installed packages' metadata, markers evaluated for this interpreter).
"""

import importlib.metadata
import platform
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers import REPO

CONSTRAINTS = REPO / "constraints.txt"
HEADER = """\
# The exact versions CI tested: `pip freeze --all --exclude-editable` of the project venv, keeping
# only the dependency closure of pyproject's `dependencies` and `test` extra (everything
# `pip install -e '.[test]'` installs). Python {python}, {platform}.
# Regenerate after changing a dependency, in a venv installed with `pip install -e '.[test]'`:
#   python -m tests.contracts.test_install_metadata --write
# Use it to get the tested versions (the accelerator extras too: their jax and jaxlib are pinned):
#   pip install -c constraints.txt -e '.[test]'
#   pip install -c constraints.txt -e '.[tpu]'       # or '.[cuda12]'; launch/ scripts do this
"""


def _project() -> dict:
  return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _top_level() -> list:
  """Requirements of ``pip install -e '.[test]'``: the dependencies and the test extra."""
  project = _project()
  return [Requirement(s) for s in (*project["dependencies"],
                                   *project["optional-dependencies"]["test"])]


def _named_requirements() -> list:
  """Every requirement pyproject names (dependencies and every extra)."""
  project = _project()
  extras = project["optional-dependencies"]
  return [Requirement(s) for s in (*project["dependencies"], *(r for e in extras.values()
                                                               for r in e))]


def pins() -> dict:
  """constraints.txt as {canonical name: Version}; every line is one ``name==version``."""
  found = {}
  for number, line in enumerate(CONSTRAINTS.read_text().splitlines(), 1):
    line = line.split("#", 1)[0].strip()
    if not line:
      continue
    req = Requirement(line)
    spec = list(req.specifier)
    assert len(spec) == 1 and spec[0].operator == "==" and not req.marker and not req.extras, (
        f"constraints.txt:{number}: {line!r} is not a plain name==version pin")
    name = canonicalize_name(req.name)
    assert name not in found, f"constraints.txt:{number}: {req.name} pinned twice"
    found[name] = Version(spec[0].version)
  return found


def installed_closure() -> dict:
  """{canonical name: installed version} of everything the top-level requirements pull in."""
  own = canonicalize_name(_project()["name"])
  closure, extras_done = {}, {}
  todo = [(req, "") for req in _top_level()]
  while todo:
    req, extra = todo.pop()
    if req.marker and not req.marker.evaluate({"extra": extra}):
      continue
    name = canonicalize_name(req.name)
    if name == own:
      continue
    new = ([""] if name not in closure else []) + sorted(set(req.extras)
                                                         - extras_done.get(name, set()))
    if not new:
      continue
    dist = importlib.metadata.distribution(req.name)
    closure[name] = dist.version
    extras_done.setdefault(name, set()).update(req.extras)
    for line in dist.requires or ():
      todo.extend((Requirement(line), e) for e in new)
  return closure


def _freeze() -> dict:
  out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                       capture_output=True, text=True, check=True).stdout
  lines = {}
  for line in out.splitlines():
    if "==" in line and not line.startswith("#"):
      lines[canonicalize_name(line.split("==")[0])] = line
  return lines


def write_constraints() -> None:
  frozen = _freeze()
  closure = installed_closure()
  missing = sorted(set(closure) - set(frozen))
  if missing:
    raise SystemExit(f"pip freeze does not list {missing}")
  body, local = [], []
  for name in sorted(closure):
    line = frozen[name]
    if "+" in line:  # a local build label (torch 2.13.0+cpu) is not on the public index
      local.append(line)
      line = line.split("+", 1)[0]
    body.append(line)
  header = HEADER.format(python=".".join(map(str, sys.version_info[:2])),
                         platform=f"{sys.platform} {platform.machine()}")
  if local:
    header += (f"# Pinned without their local build label, which no public index serves: "
               f"{', '.join(local)}.\n")
  CONSTRAINTS.write_text(header + "\n".join(body) + "\n")
  print(f"wrote {len(body)} pins to {CONSTRAINTS}")


def test_every_named_dependency_is_pinned_within_its_bounds():
  pinned = pins()
  problems = []
  for req in _named_requirements():
    name = canonicalize_name(req.name)
    if name not in pinned:
      if name in {canonicalize_name(r.name) for r in _top_level()}:
        problems.append(f"{req} has no pin")
      continue  # only in an extra CI does not install (export, bench): not pinned
    if not req.specifier.contains(pinned[name], prereleases=True):
      problems.append(f"pin {name}=={pinned[name]} violates pyproject's {req}")
  assert not problems, ("constraints.txt is out of date with pyproject.toml "
                        "(python -m tests.contracts.test_install_metadata --write):\n"
                        + "\n".join(problems))


def test_pinned_jax_and_jaxlib_satisfy_the_bounds():
  pinned = pins()
  jax_bounds = [r.specifier for r in _named_requirements() if canonicalize_name(r.name) == "jax"]
  assert jax_bounds, "pyproject names no jax requirement"
  for spec in jax_bounds:
    assert spec.contains(pinned["jax"]), f"jax=={pinned['jax']} violates jax{spec}"
  # jax requires a jaxlib no newer than itself (jax 0.10.2: jaxlib>=0.10.1,<=0.10.2); the same
  # release is what jax[tpu] and jax[cuda12] ask for exactly.
  assert pinned["jaxlib"] == pinned["jax"], (
      f"jaxlib=={pinned['jaxlib']} is not the pinned jax's release {pinned['jax']}: "
      "jax[tpu]/jax[cuda12] would not resolve with these constraints")


def test_requires_python_admits_only_pythons_the_pins_install_on():
  """The lowest Python allowed by requires-python must be allowed by every pinned package
  (jax>=0.7 needs 3.11); checked on the installed metadata of packages at their pinned version."""
  requires = SpecifierSet(_project()["requires-python"])
  lowest = next(Version(f"3.{m}") for m in range(0, 30) if requires.contains(f"3.{m}.0"))
  assert lowest >= Version("3.11"), (
      f"requires-python {requires} admits {lowest}: jax>=0.7 needs 3.11")
  pinned = pins()
  checked, problems = [], []
  for name, version in pinned.items():
    try:
      dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
      continue
    if Version(dist.version).public != version.public:
      continue
    checked.append(name)
    needs = dist.metadata.get("Requires-Python")
    if needs and not SpecifierSet(needs).contains(f"{lowest}.0"):
      problems.append(f"{name}=={version} requires Python {needs}")
  if "jax" not in checked or "jaxlib" not in checked:
    pytest.skip("jax/jaxlib are not installed at the pinned versions: "
                "pip install -c constraints.txt -e '.[test]'")
  assert not problems, f"requires-python {requires} admits {lowest}, but:\n" + "\n".join(problems)


def test_constraints_cover_everything_the_test_install_installs():
  closure = installed_closure()
  missing = sorted(set(closure) - set(pins()))
  assert not missing, (f"installed by pip install -e '.[test]' but not pinned: {missing}\n"
                       "regenerate: python -m tests.contracts.test_install_metadata --write")


def test_accelerator_extras_name_jax_backends():
  extras = _project()["optional-dependencies"]
  for extra, backend in (("tpu", "tpu"), ("cuda12", "cuda12")):
    reqs = [Requirement(s) for s in extras[extra]]
    assert any(canonicalize_name(r.name) == "jax" and backend in r.extras for r in reqs), (
        f"extra {extra!r} does not install jax[{backend}]: {extras[extra]}")


if __name__ == "__main__":
  if sys.argv[1:] != ["--write"]:
    raise SystemExit("usage: python -m tests.contracts.test_install_metadata --write")
  write_constraints()
