"""The package's import graph, read from the source (``ast``; nothing is imported): imports only
point down the layers of docs/architecture.md, and no two modules import each other.

Every module under ``musicrep_jax/``, ``configs/``, ``data_pipelines/`` and ``bench/`` is named
as installed (``musicrep_jax.configs.X``, ``musicrep_jax.data_pipelines.X``,
``musicrep_jax.bench.X``). Every project import counts, at module level or inside a function:
``import a.b``, ``from a import b`` (``a.b`` when ``b`` is a submodule, else ``a``), relative
imports, and ``importlib.import_module("literal")``. Bare ``configs``, ``data_pipelines`` and
``bench`` are mapped to their installed names, and flagged (they import only from a checkout).
"""

import ast
import pathlib
from collections import defaultdict

from tests.helpers import REPO

# Source folder -> installed package name.
ROOTS = {
    "musicrep_jax": "musicrep_jax",
    "configs": "musicrep_jax.configs",
    "data_pipelines": "musicrep_jax.data_pipelines",
    "bench": "musicrep_jax.bench",
}

# Installed name prefix -> layer (docs/architecture.md, "Layers"). The longest prefix wins; a
# module no prefix covers fails test_every_module_has_a_layer.
LAYERS = {
    "musicrep_jax": 7,  # the package's __init__: version string, load (imports serving lazily)
    "musicrep_jax.hear": 7,
    "musicrep_jax.errors": 0,
    "musicrep_jax.storage": 0,
    "musicrep_jax.locks": 0,
    "musicrep_jax.ops": 0,
    "musicrep_jax.frontends": 0,
    "musicrep_jax.registry": 1,
    "musicrep_jax.config_loading": 1,
    "musicrep_jax.data": 1,
    "musicrep_jax.models": 2,
    "musicrep_jax.evaluators": 2,
    "musicrep_jax.data_pipelines": 2,
    "musicrep_jax.tasks": 3,
    "musicrep_jax.configs": 3,
    "musicrep_jax.training": 4,
    "musicrep_jax.systems": 5,
    "musicrep_jax.serving": 6,
    "musicrep_jax.commands": 7,
    "musicrep_jax.cli": 7,
    "musicrep_jax.bench": 7,
}
TOP_LEVEL_MODULES = {"musicrep_jax.errors", "musicrep_jax.storage", "musicrep_jax.locks",
                     "musicrep_jax.registry",
                     "musicrep_jax.config_loading", "musicrep_jax.cli", "musicrep_jax.hear"}
BARE_NAMES = {"configs": "musicrep_jax.configs", "data_pipelines": "musicrep_jax.data_pipelines",
              "bench": "musicrep_jax.bench"}


def module_files() -> dict:
  """Installed module name -> source file, for every ``.py`` under the four roots."""
  files = {}
  for folder, package in ROOTS.items():
    for path in sorted((REPO / folder).rglob("*.py")):
      parts = path.relative_to(REPO / folder).with_suffix("").parts
      if parts[-1] == "__init__":
        parts = parts[:-1]
      files[".".join((package, *parts))] = path
  return files


MODULES = module_files()


def layer_of(module: str):
  best = None
  for prefix in LAYERS:
    if module == prefix or (module.startswith(prefix + ".") and prefix != "musicrep_jax"):
      if best is None or len(prefix) > len(best):
        best = prefix
  return None if best is None else LAYERS[best]


def package_of(module: str) -> str:
  """The folder a module lives in, as a dotted name (a top-level module is its own room)."""
  if module in TOP_LEVEL_MODULES or module == "musicrep_jax":
    return module
  parts = module.split(".")
  if module in MODULES and MODULES[module].name == "__init__.py":
    return module
  return ".".join(parts[:-1])


def installed_name(name: str):
  """``name`` as installed if it is a project module or attribute path, else None; and whether
  it used a bare top-level name."""
  head = name.split(".")[0]
  if head == "musicrep_jax":
    return name, False
  if head in BARE_NAMES:
    return BARE_NAMES[head] + name[len(head):], True
  return None, False


def resolve(name: str) -> str:
  """The longest known module that ``name`` (a module or ``module.attribute``) starts with."""
  while name not in MODULES and "." in name:
    name = name.rsplit(".", 1)[0]
  return name


def imports_of(module: str, path: pathlib.Path):
  """``(imported module, line, bare)`` for every project import in the file."""
  tree = ast.parse(path.read_text(), filename=str(path))
  is_package = path.name == "__init__.py"
  found = []

  def add(name, line):
    full, bare = installed_name(name)
    if full is not None:
      found.append((resolve(full), line, bare))

  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        add(alias.name, node.lineno)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[:len(package) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
      else:
        prefix = node.module
      for alias in node.names:
        # ``from a import b``: the submodule a.b if there is one, else a (resolve() does both).
        add(prefix if alias.name == "*" else f"{prefix}.{alias.name}", node.lineno)
    elif isinstance(node, ast.Call):
      func = node.func
      called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
      if (called == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)):
        add(node.args[0].value, node.lineno)
  return found


def import_graph():
  """``{importer: {imported: (first line, bare)}}`` over every project module."""
  graph = {}
  for module, path in MODULES.items():
    edges = {}
    for imported, line, bare in imports_of(module, path):
      if imported != module and imported not in edges:
        edges[imported] = (line, bare)
    graph[module] = edges
  return graph


GRAPH = import_graph()


def where(importer: str, imported: str) -> str:
  line = GRAPH[importer][imported][0]
  return f"{MODULES[importer].relative_to(REPO)}:{line}"


def test_the_parser_sees_every_kind_of_import(tmp_path):
  source = tmp_path / "probe.py"
  source.write_text(
      "import musicrep_jax.ops.losses\n"
      "from musicrep_jax.data import shards, pipeline as p\n"
      "from musicrep_jax.registry import MODELS\n"
      "from . import step\n"
      "from ..tasks.base import Task\n"
      "from configs import common\n"
      "import numpy\n"
      "def later():\n"
      "  from musicrep_jax.serving import inference\n"
      "  importlib.import_module('musicrep_jax.systems.word2vec.cache')\n")
  found = {(name, bare) for name, _, bare in imports_of("musicrep_jax.training.trainer", source)}
  assert found == {
      ("musicrep_jax.ops.losses", False), ("musicrep_jax.data.shards", False),
      ("musicrep_jax.data.pipeline", False), ("musicrep_jax.registry", False),
      ("musicrep_jax.training.step", False), ("musicrep_jax.tasks.base", False),
      ("musicrep_jax.configs.common", True), ("musicrep_jax.serving.inference", False),
      ("musicrep_jax.systems.word2vec.cache", False)}
  assert layer_of("musicrep_jax") == 7 and layer_of("musicrep_jax.cli") == 7
  assert layer_of("musicrep_jax.systems.ivector.gmm") == 5 and layer_of("musicrep_jax.new") is None


def test_every_module_has_a_layer():
  unmapped = sorted(m for m in MODULES if layer_of(m) is None)
  assert not unmapped, ("modules outside the layer table (add them to LAYERS here and to "
                        f"docs/architecture.md): {unmapped}")


def test_no_module_imports_from_a_higher_layer():
  violations = []
  for importer, edges in sorted(GRAPH.items()):
    for imported in sorted(edges):
      low, high = layer_of(importer), layer_of(imported)
      if low is not None and high is not None and high > low:
        violations.append(f"{importer} -> {imported} (L{low} -> L{high}) "
                          f"[{where(importer, imported)}]")
  assert not violations, ("imports that point up the layers:\n  " + "\n  ".join(violations))


def test_no_two_modules_import_each_other():
  pairs = sorted(f"{a} <-> {b} [{where(a, b)}, {where(b, a)}]"
                 for a, edges in GRAPH.items() for b in edges if a < b and a in GRAPH.get(b, {}))
  assert not pairs, "modules that import each other:\n  " + "\n  ".join(pairs)


def strongly_connected(graph: dict) -> list:
  """Tarjan's components with more than one node (every cycle lies inside one)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for nxt in graph.get(node, ()):
      if nxt not in index:
        visit(nxt)
        low[node] = min(low[node], low[nxt])
      elif nxt in on_stack:
        low[node] = min(low[node], index[nxt])
    if low[node] == index[node]:
      component = []
      while True:
        top = stack.pop()
        on_stack.discard(top)
        component.append(top)
        if top == node:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return sorted(out)


def test_no_import_cycles_between_modules_or_folders():
  """Longer cycles: among modules, and among folders (a folder imports another when any of its
  modules does; imports inside one folder do not count)."""
  folders = defaultdict(set)
  for importer, edges in GRAPH.items():
    for imported in edges:
      a, b = package_of(importer), package_of(imported)
      if a != b:
        folders[a].add(b)
  cycles = [f"modules: {' / '.join(c)}" for c in strongly_connected(GRAPH)]
  cycles += [f"folders: {' / '.join(c)}" for c in strongly_connected(folders)]
  assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_project_modules_are_imported_by_their_installed_names():
  bare = sorted(f"{where(importer, imported)}: {imported} by its bare name"
                for importer, edges in GRAPH.items()
                for imported, (_, is_bare) in edges.items() if is_bare)
  assert not bare, ("imports that work only from a checkout (use musicrep_jax.configs / "
                    ".data_pipelines / .bench):\n  " + "\n  ".join(bare))
