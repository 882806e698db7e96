"""Tag groups (similarity dimensions) of a prepared dataset: reading them from a file, checking
them against the dataset's tags (papers.md 14.1, 15.1).

A dataset's ``metadata["tag_groups"]`` maps a group name to the indices of its tags in
``tag_names`` (``musicrep_jax.data.schema``); the metric-learning task reads them as the labels
``"tag:GROUP"``. Builders get groups from

* a **tag-group file** (``--tag-groups FILE``, and the grouping shipped for the MSD 50 tags,
  ``splits/msd_50_tag_groups.csv``): CSV, UTF-8, a header row naming ``tag`` and ``group``
  (and optionally ``note``, free text that is ignored), one row per tag::

      tag,group,note
      rock,genre,
      happy,mood,

* the folder manifest's ``tags:GROUP`` columns (``folder_builder``): the tags of such a column
  belong to ``GROUP``.

Rules (a file may come from anyone, so it is parsed strictly and never executed): group names
are letters, digits and ``_`` (they appear in ``"tag:GROUP"`` labels and metric names); a tag is
in at most one group (paper 14's disentangled heads need disjoint groups); every tag of the file
is one of the dataset's tags; a tag of the dataset may stay in no group. Any problem is one
``UserError`` line naming the file, the row and the fix.
"""

from __future__ import annotations

import csv
import os
import re
from typing import Mapping, Sequence

from musicrep_jax.errors import UserError

MSD_GROUPS_FILE = "msd_50_tag_groups.csv"  # In data_pipelines/splits/.
PAPER14_GROUPS = ("genre", "mood", "instrument", "era")  # 28 / 12 / 5 / 5 (papers.md 15.1).
PAPER13_GROUPS = ("genre", "mood", "instrument")  # + tempo within 5 BPM (papers.md 14.1).
COLUMNS = ("tag", "group", "note")
GROUP_NAME = re.compile(r"^[A-Za-z0-9_]+$")
MAX_BYTES = 10_000_000  # A tag-group file is a few kB; refuse anything absurd before parsing.


def check_group_name(name: str, where: str) -> str:
  """``name`` when it is a valid group name; ``UserError`` naming ``where`` otherwise."""
  if not GROUP_NAME.match(name):
    raise UserError(f"{where}: the group name {name!r} is not letters, digits and '_' only "
                    "(it is used in 'tag:GROUP' labels).")
  return name


def read_tag_group_file(path: str | os.PathLike) -> dict[str, str]:
  """A tag-group file (module docstring) -> ``{tag: group}`` in file order.

  Raises:
    UserError: the file is missing, too large, not UTF-8 text or not CSV; its header lacks
      ``tag`` or ``group`` or has another column; a row misses a cell, has an extra one, names
      an invalid group, or repeats a tag; or it has no row.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserError(f"The tag-group file {path} does not exist.")
  if os.path.getsize(path) > MAX_BYTES:
    raise UserError(f"The tag-group file {path} is larger than {MAX_BYTES:,} bytes; it should "
                    "hold one 'tag,group' row per tag.")
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = list(csv.reader(f, strict=True))
  except UnicodeDecodeError as e:
    raise UserError(f"The tag-group file {path} is not UTF-8 text (byte {e.object[e.start]:#04x} "
                    f"at offset {e.start}).") from None
  except csv.Error as e:
    raise UserError(f"The tag-group file {path} is not valid CSV ({e}).") from None
  rows = [(n, [c.strip() for c in row]) for n, row in enumerate(rows, start=1)
          if any(c.strip() for c in row)]
  if not rows:
    raise UserError(f"The tag-group file {path} is empty; its first line must be the header "
                    "'tag,group'.")
  (_, header), body = rows[0], rows[1:]
  unknown = [c for c in header if c not in COLUMNS]
  if unknown or "tag" not in header or "group" not in header or len(set(header)) < len(header):
    raise UserError(f"The tag-group file {path} has the header {','.join(header)!r}; expected "
                    "the columns tag and group (and optionally note), once each.")
  if not body:
    raise UserError(f"The tag-group file {path} has a header but no 'tag,group' row.")
  tag_col, group_col = header.index("tag"), header.index("group")
  groups: dict[str, str] = {}
  for number, row in body:
    where = f"Line {number} of {path}"
    if len(row) != len(header):
      raise UserError(f"{where} has {len(row)} cells; the header has {len(header)} "
                      f"({','.join(header)}). Quote a cell that holds a comma.")
    tag, group = row[tag_col], row[group_col]
    if not tag:
      raise UserError(f"{where} has an empty tag.")
    check_group_name(group, where)
    if tag in groups:
      raise UserError(f"{where} puts {tag!r} in group {group!r}, but it is already in group "
                      f"{groups[tag]!r}; a tag belongs to one group.")
    groups[tag] = group
  return groups


def merge_assignments(first: Mapping[str, str], second: Mapping[str, str],
                      where: str) -> dict[str, str]:
  """``{tag: group}`` of both; ``UserError`` (naming ``where``) if a tag gets two groups."""
  merged = dict(first)
  for tag, group in second.items():
    if merged.setdefault(tag, group) != group:
      raise UserError(f"{where}: tag {tag!r} is in group {merged[tag]!r} and in group "
                      f"{group!r}; a tag belongs to one group.")
  return merged


def group_indices(assignment: Mapping[str, str], tag_names: Sequence[str],
                  source: str) -> dict[str, list[int]]:
  """``{tag: group}`` -> ``{group: [tag indices, ascending]}`` over ``tag_names`` (groups in
  order of first appearance); ``UserError`` naming ``source`` for a tag not in ``tag_names``."""
  index = {tag: i for i, tag in enumerate(tag_names)}
  missing = [tag for tag in assignment if tag not in index]
  if missing:
    raise UserError(f"{source} groups tag(s) the dataset does not have: "
                    f"{', '.join(map(repr, missing[:5]))}{' ...' if len(missing) > 5 else ''} "
                    f"(its tags: {', '.join(map(repr, list(tag_names)[:8]))}"
                    f"{' ...' if len(tag_names) > 8 else ''}).")
  groups: dict[str, list[int]] = {}
  for tag, group in assignment.items():
    groups.setdefault(group, []).append(index[tag])
  return {group: sorted(columns) for group, columns in groups.items()}


def read_tag_groups(path: str | os.PathLike, tag_names: Sequence[str]) -> dict[str, list[int]]:
  """A tag-group file checked against ``tag_names`` -> ``{group: [tag indices]}``."""
  return group_indices(read_tag_group_file(path), tag_names, f"The tag-group file {path}")
