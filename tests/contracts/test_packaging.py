"""pyproject.toml lists every package folder (setuptools' explicit ``packages``), so a new
folder cannot be left out of the wheel; the checkout's top-level folders install inside the
``musicrep_jax`` namespace."""

import tomllib

from tests.helpers import REPO

# Repository folder -> the package name it installs as.
ROOTS = {"musicrep_jax": "musicrep_jax", "configs": "musicrep_jax.configs",
         "data_pipelines": "musicrep_jax.data_pipelines", "bench": "musicrep_jax.bench"}


def _pyproject() -> dict:
  return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def package_folders() -> set:
  """Installed names of every folder with an ``__init__.py`` under the four roots."""
  found = set()
  for folder, package in ROOTS.items():
    for init in (REPO / folder).rglob("__init__.py"):
      parts = init.parent.relative_to(REPO / folder).parts
      found.add(".".join((package, *parts)))
  return found


def test_pyproject_packages_are_exactly_the_package_folders():
  listed = set(_pyproject()["packages"])
  folders = package_folders()
  assert not folders - listed, f"add to [tool.setuptools] packages: {sorted(folders - listed)}"
  assert not listed - folders, f"not package folders: {sorted(listed - folders)}"


def test_top_level_folders_install_inside_the_package_namespace():
  package_dir = _pyproject()["package-dir"]
  assert package_dir == {package: folder for folder, package in ROOTS.items()
                         if package != folder}
  assert all(name.split(".")[0] == "musicrep_jax" for name in _pyproject()["packages"])
