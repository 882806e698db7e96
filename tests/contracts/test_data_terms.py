"""Every dataset ``musicrep prepare`` can build has its terms in the model card table
(``serving.export.pretrained.DATA``), so an exported model never says "unknown source" for
shards the project itself made."""

import ast

from musicrep_jax.data_pipelines.sources import source_modules
from musicrep_jax.serving.export.pretrained import DATA
from tests.helpers import REPO


def _builder_kinds() -> set:
  kinds = set()
  for path in (REPO / "data_pipelines").glob("*_builder.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      targets = [getattr(t, "id", None) for t in getattr(node, "targets", ())]
      if isinstance(node, ast.Assign) and targets == ["KIND"]:
        if isinstance(node.value, ast.Constant) and node.value.value:
          kinds.add(node.value.value)
  return kinds


def test_every_builder_kind_and_source_has_data_terms():
  kinds = _builder_kinds()
  assert {"mtat", "msd", "dcase2017_task4"} <= kinds  # The scan finds the layout builders.
  missing = sorted((kinds | set(source_modules())) - set(DATA))
  assert not missing, f"add the data terms of {missing} to pretrained.DATA"
