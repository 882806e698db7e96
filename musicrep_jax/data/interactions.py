"""Listening interactions for recommendation (paper 7, DCUE; papers.md 8.1): load, match, split.

Items are the records of prepared shards (one record = one clip = one track of the catalogue);
an interaction is ``(user, item, count)``. Two sources:

* the embedded corpus's side file ``interactions.npy`` (int64 ``[N, 3]``: user, track id, play
  count; written beside the shards by ``musicrep prepare synthetic``, listed in
  ``metadata["side_files"]``), whose track ids are the records' ``track`` field;
* a CSV with a header row and the columns ``user``, ``item`` and optionally ``count`` (default
  1): ``user`` any string, ``item`` a record's ``path`` (exactly as stored), its track name
  (folder datasets' ``metadata["track_names"]``) or its integer ``track`` id. Rows whose item
  is none of these, or whose count is 0, are dropped and counted (``Interactions.dropped``);
  repeated ``(user, item)`` rows are summed. A CSV that matches no item at all is an error.

Split (:func:`split_interactions`, papers.md 8.1 adapted): interactions with tracks of the
training split (``warm_split``) are split per user into training and held-out ("warm"
evaluation) interactions, ``round(heldout_fraction * n_u)`` held out at random (seeded) but at
least one kept for training; a user with one such interaction keeps it. Interactions with tracks
of the other splits are never trained on: those tracks are the cold-start items (their audio is
never paired with a user during training). ``popularity`` is the play count summed over the
training interactions of each item.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import pathlib
from typing import Optional

import numpy as np

from musicrep_jax.errors import UserError

SYNTHETIC_SIDE_FILE = "interactions"
CSV_COLUMNS = ("user", "item", "count")


# ------------------------------------------------------------------------------------ catalogue


@dataclasses.dataclass(frozen=True)
class Catalogue:
  """Every record of the shards, in split order (row ``r`` = one item).

  ``clip_id``, ``track``, ``record`` (index within its split) int64 ``[M]``; ``split`` str
  ``[M]``; ``path`` str ``[M]``; ``track_names`` the folder datasets' names (index = track id).
  """

  clip_id: np.ndarray
  track: np.ndarray
  record: np.ndarray
  split: np.ndarray
  path: np.ndarray
  track_names: tuple = ()

  def __len__(self) -> int:
    return len(self.clip_id)

  def rows_of_split(self, split: str) -> np.ndarray:
    """int64 rows of ``split``, in record order (row of record ``i`` = ``rows[i]``)."""
    return np.flatnonzero(self.split == split).astype(np.int64)

  def rows_of_clips(self, clip_ids) -> np.ndarray:
    """Rows of the given clip ids (``UserError`` for a clip id not in the shards)."""
    order = np.argsort(self.clip_id, kind="stable")
    clip_ids = np.asarray(clip_ids, np.int64)
    pos = np.minimum(np.searchsorted(self.clip_id[order], clip_ids), len(order) - 1)
    rows = order[pos]
    if len(clip_ids) and not np.array_equal(self.clip_id[rows], clip_ids):
      raise UserError("evaluation clips are not in the catalogue the interactions were matched "
                      "to; evaluate on the shards the model was trained on.")
    return rows

  def match_items(self, items) -> np.ndarray:
    """Item strings -> rows (-1 when unknown): a path, a track name, else an integer track id."""
    keys: dict[str, int] = {}
    track_rows = _unique_rows(self.track)
    for track_id, row in track_rows.items():
      keys.setdefault(str(track_id), row)
      if 0 <= track_id < len(self.track_names):
        keys[self.track_names[track_id]] = row
    keys.update({p: r for r, p in enumerate(self.path)})  # Paths win over names and ids.
    return np.array([keys.get(str(item).strip(), -1) for item in items], np.int64)

  def rows_of_tracks(self, track_ids) -> np.ndarray:
    """Integer track ids -> rows (-1 when unknown)."""
    lookup = _unique_rows(self.track)
    return np.array([lookup.get(int(t), -1) for t in track_ids], np.int64)


def _unique_rows(track: np.ndarray) -> dict[int, int]:
  """Track id -> its row, for ids held by exactly one record (clips of a multi-clip track and
  unknown ids (-1) cannot name an item)."""
  ids, first, counts = np.unique(track, return_index=True, return_counts=True)
  return {int(i): int(r) for i, r, n in zip(ids, first, counts) if n == 1 and i >= 0}


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@functools.lru_cache(maxsize=4)
def _catalogue(dataset_dir: str, splits: tuple, track_names: tuple) -> Catalogue:
  from musicrep_jax.data.pk_batches import read_label_records
  from musicrep_jax.data.shards import ShardSource

  parts = {name: [] for name in ("clip_id", "track", "record", "split", "path")}
  for split in splits:
    records = read_label_records(ShardSource(dataset_dir, split), ("clip_id", "track", "path"))
    n = len(records["clip_id"])
    parts["clip_id"].append(records["clip_id"].astype(np.int64))
    parts["track"].append(records["track"].astype(np.int64))
    parts["record"].append(np.arange(n, dtype=np.int64))
    parts["split"].append(np.full(n, split, dtype=object))
    parts["path"].append(np.array([_text(p) for p in records["path"]], dtype=object))
  return Catalogue(**{k: np.concatenate(v) for k, v in parts.items()},
                   track_names=track_names)


def catalogue_of(shards) -> Catalogue:
  """The :class:`Catalogue` of prepared shards (one pass over every split, cached)."""
  return _catalogue(str(shards.dataset_dir), tuple(shards.split_sizes),
                    tuple(shards.metadata.get("track_names", ())))


# --------------------------------------------------------------------------------- interactions


@dataclasses.dataclass(frozen=True)
class Interactions:
  """Matched interactions: ``user``, ``item`` (catalogue rows) int64 ``[N]``, ``count`` float32
  ``[N]``, one row per ``(user, item)``; ``num_users``; ``user_names`` (CSV users, index = id);
  ``dropped``: rows left out, by reason."""

  user: np.ndarray
  item: np.ndarray
  count: np.ndarray
  num_users: int
  user_names: tuple = ()
  dropped: dict = dataclasses.field(default_factory=dict)

  def __len__(self) -> int:
    return len(self.user)


def merge_rows(user, item, count, *, num_users: int, user_names: tuple = (),
               dropped: Optional[dict] = None) -> Interactions:
  """Drops unmatched items (``item < 0``) and non-positive counts, sums repeated pairs."""
  user, item = np.asarray(user, np.int64), np.asarray(item, np.int64)
  count = np.asarray(count, np.float64)
  dropped = dict(dropped or {})
  dropped["unknown_item"] = dropped.get("unknown_item", 0) + int((item < 0).sum())
  dropped["nonpositive_count"] = int(((item >= 0) & (count <= 0)).sum())
  keep = (item >= 0) & (count > 0)
  user, item, count = user[keep], item[keep], count[keep]
  pairs, inverse = np.unique(np.stack([user, item], 1), axis=0, return_inverse=True)
  summed = np.bincount(inverse.reshape(-1), weights=count, minlength=len(pairs))
  dropped["merged_duplicates"] = int(len(user) - len(pairs))
  pairs = pairs.reshape(-1, 2)
  return Interactions(user=pairs[:, 0].copy(), item=pairs[:, 1].copy(),
                      count=summed.astype(np.float32), num_users=int(num_users),
                      user_names=tuple(user_names), dropped=dropped)


def load_synthetic_interactions(shards, catalogue: Catalogue) -> Interactions:
  """The embedded corpus's ``interactions.npy`` (user, track id, count) matched to records."""
  side = shards.metadata.get("side_files", {})
  path = pathlib.Path(shards.dataset_dir) / os.path.basename(
      side.get(SYNTHETIC_SIDE_FILE, "interactions.npy"))
  if not path.is_file():
    raise UserError(f"The shards in {shards.dataset_dir} have no {path.name} (only the embedded "
                    f"corpus ships interactions); give a CSV of user,item,count with "
                    f"config.task.kwargs.interactions_csv.")
  table = np.load(path)
  if table.ndim != 2 or table.shape[1] != 3:
    raise UserError(f"{path} must be int64 [N, 3] (user, track, count); it is {table.shape}.")
  num_users = int(shards.metadata.get("corpus_config", {}).get("num_users", 0))
  return merge_rows(table[:, 0], catalogue.rows_of_tracks(table[:, 1]), table[:, 2],
                    num_users=max(num_users, int(table[:, 0].max(initial=-1)) + 1))


def load_interactions_csv(path: str | os.PathLike, catalogue: Catalogue) -> Interactions:
  """A ``user,item[,count]`` CSV (module docstring) matched to the catalogue's records."""
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise UserError(f"The interactions CSV {path} does not exist.")
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    header = [h.strip() for h in reader.fieldnames or ()]
    if not {"user", "item"} <= set(header):
      raise UserError(f"The interactions CSV {path} needs a header with the columns user, item "
                      f"and optionally count; it has {', '.join(header) or 'no header'}.")
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
  counts = []
  for line, row in enumerate(rows, start=2):
    try:
      counts.append(float(row.get("count") or 1))
    except ValueError:
      raise UserError(f"{path} line {line}: count {row.get('count')!r} is not a number.") from None
  if not rows:
    raise UserError(f"The interactions CSV {path} has no rows.")
  items = catalogue.match_items([row["item"] for row in rows])
  if (items < 0).all():
    raise UserError(f"None of the {len(rows)} rows of {path} names a record of the shards by "
                    f"path, track name or track id (first item: {rows[0]['item']!r}).")
  names, user = np.unique([row["user"] for row in rows], return_inverse=True)
  unknown = sorted({row["item"] for row, i in zip(rows, items) if i < 0})
  if unknown:
    print(f"Note: {int((items < 0).sum())} rows of {path} name {len(unknown)} items that are not "
          f"in the shards and were dropped (e.g. {', '.join(map(repr, unknown[:3]))}).",
          flush=True)
  return merge_rows(user.reshape(-1), items, counts, num_users=len(names),
                    user_names=tuple(str(n) for n in names))


def load_interactions(shards, catalogue: Catalogue, csv_path: str = "") -> Interactions:
  """``csv_path``'s interactions, or the embedded corpus's side file when it is empty."""
  if csv_path:
    return load_interactions_csv(csv_path, catalogue)
  return load_synthetic_interactions(shards, catalogue)


# ------------------------------------------------------------------------------------ the split


@dataclasses.dataclass(frozen=True)
class RecommendationSplit:
  """Interactions split for training and evaluation (module docstring).

  ``train`` / ``heldout``: bool ``[N]`` masks over ``interactions``; ``warm_split``: the split
  whose tracks are trained on.
  """

  catalogue: Catalogue
  interactions: Interactions
  train: np.ndarray
  heldout: np.ndarray
  warm_split: str

  @property
  def num_users(self) -> int:
    return self.interactions.num_users

  def trained_users(self) -> np.ndarray:
    """Users with at least one training interaction (the ones evaluated), sorted."""
    return np.unique(self.interactions.user[self.train])

  def trained_items(self) -> np.ndarray:
    """bool ``[M]``: catalogue rows that occur in a training interaction."""
    seen = np.zeros(len(self.catalogue), bool)
    seen[self.interactions.item[self.train]] = True
    return seen

  def cold_items(self, split: str) -> np.ndarray:
    """Rows of ``split`` that no training interaction names: cold-start items."""
    rows = self.catalogue.rows_of_split(split)
    return rows[~self.trained_items()[rows]]

  def popularity(self) -> np.ndarray:
    """float64 ``[M]``: training play counts summed per catalogue row."""
    return np.bincount(self.interactions.item[self.train],
                       weights=self.interactions.count[self.train],
                       minlength=len(self.catalogue))

  def pairs(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(user, item)`` int64 of the interactions selected by ``mask``."""
    return self.interactions.user[mask], self.interactions.item[mask]

  def summary(self) -> dict:
    i = self.interactions
    return {"users": int(i.num_users), "interactions": len(i),
            "train_interactions": int(self.train.sum()),
            "heldout_interactions": int(self.heldout.sum()),
            "cold_interactions": int((~self.train & ~self.heldout).sum()), **i.dropped}


def split_interactions(interactions: Interactions, catalogue: Catalogue, *,
                       warm_split: str = "train", heldout_fraction: float = 0.2,
                       seed: int = 0) -> RecommendationSplit:
  """Per-user random hold-out among the interactions with ``warm_split``'s tracks."""
  if not 0.0 <= heldout_fraction < 1.0:
    raise UserError(f"heldout_fraction={heldout_fraction} must be in [0, 1).")
  warm = catalogue.split[interactions.item] == warm_split
  if not warm.any():
    raise UserError(f"No interaction names a track of the {warm_split!r} split; nothing to "
                    f"train on.")
  user = interactions.user
  key = np.random.default_rng([seed, 17]).random(len(user))
  order = np.lexsort((key, user))                      # by user, random within each user
  warm_sorted = warm[order]
  # Rank of each warm interaction among its user's warm interactions, in random order.
  group_start = np.r_[0, np.flatnonzero(np.diff(user[order])) + 1]
  starts = np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
  cum = np.cumsum(warm_sorted)
  before = np.concatenate([[0], cum])[starts]
  rank = cum - before - 1
  n_user = np.bincount(user[warm], minlength=interactions.num_users)[user[order]]
  n_hold = np.minimum(np.floor(heldout_fraction * n_user + 0.5), n_user - 1)
  held_sorted = warm_sorted & (rank < n_hold)
  heldout = np.zeros(len(user), bool)
  heldout[order] = held_sorted
  return RecommendationSplit(catalogue=catalogue, interactions=interactions,
                             train=warm & ~heldout, heldout=heldout, warm_split=warm_split)


def load_split(shards, *, csv_path: str = "", warm_split: str = "train",
               heldout_fraction: float = 0.2, seed: int = 0,
               catalogue: Optional[Catalogue] = None) -> RecommendationSplit:
  """Catalogue + interactions + split of prepared shards in one call."""
  catalogue = catalogue if catalogue is not None else catalogue_of(shards)
  return split_interactions(load_interactions(shards, catalogue, csv_path), catalogue,
                            warm_split=warm_split, heldout_fraction=heldout_fraction, seed=seed)
