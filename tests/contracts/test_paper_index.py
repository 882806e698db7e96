"""docs/paper_index.md stays true: every repository path it names exists, every one of the 14
papers has a row, and each row cites the papers.md section that describes that paper."""

import re

from tests.helpers import REPO

INDEX = REPO / "docs" / "paper_index.md"
PAPERS = REPO / "docs" / "papers.md"
NUM_PAPERS = 14

# A backticked span with no spaces (so commands such as `musicrep train --config X` are skipped).
CODE_SPAN = re.compile(r"`([^`\s]+)`")


def is_path(text: str) -> bool:
  """A repository path: contains ``/`` or ends in ``.py`` / ``.md``, without option syntax."""
  if text.startswith(("-", "$", "http")) or ":" in text or "=" in text:
    return False
  return "/" in text or text.endswith((".py", ".md"))


def paper_rows() -> dict:
  """``{paper number: the row's cells}`` for the table rows that start with a paper number."""
  rows = {}
  for line in INDEX.read_text().splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if line.startswith("|") and cells[0].isdigit():
      rows.setdefault(int(cells[0]), []).append(cells)
  return rows


def test_every_path_in_the_paper_index_exists():
  paths = sorted({span for span in CODE_SPAN.findall(INDEX.read_text()) if is_path(span)})
  assert len(paths) > 40, f"too few paths found in {INDEX}: {paths}"
  missing = [p for p in paths if not (REPO / p.rstrip("/")).exists()]
  assert not missing, (f"{len(missing)} paths in docs/paper_index.md do not exist:\n  "
                       + "\n  ".join(missing))


def test_every_paper_has_one_row_citing_its_papers_md_section():
  rows = paper_rows()
  assert sorted(rows) == list(range(1, NUM_PAPERS + 1)), (
      f"paper rows found: {sorted(rows)}; expected one per paper 1-{NUM_PAPERS}")
  duplicated = [n for n, cells in rows.items() if len(cells) > 1]
  assert not duplicated, f"papers with more than one row: {duplicated}"
  headings = {int(m.group(2)): m.group(1) for m in re.finditer(
      r"^## (\d+)\. Paper (\d+) ", PAPERS.read_text(), re.MULTILINE)}
  wrong = []
  for number, [cells] in sorted(rows.items()):
    if cells[2] != headings.get(number):
      wrong.append(f"paper {number}: row cites section {cells[2]!r}, papers.md has "
                   f"{headings.get(number)!r}")
    if not any(is_path(span) for span in CODE_SPAN.findall(cells[3])):
      wrong.append(f"paper {number}: no config path in {cells[3]!r}")
    if not any(span.startswith("tests/") for span in CODE_SPAN.findall(cells[-1])):
      wrong.append(f"paper {number}: no test path in {cells[-1]!r}")
  assert not wrong, "\n".join(wrong)
