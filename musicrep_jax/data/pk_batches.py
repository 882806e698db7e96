"""P x K batches for metric learning (papers.md 5.3, 10, 14.1, 14.3, 15.2; issue 4 item 2).

A batch is made of one *block* per condition (label): ``labels = ("tag:genre", "tag:mood")``
with ``P`` classes and ``K`` samples per class gives ``len(labels) * P * K`` rows, block ``d``
being rows ``[d * P * K, (d + 1) * P * K)`` and class slot ``p`` of that block rows
``[d * P * K + p * K, d * P * K + (p + 1) * K)``. Every row of a class slot is a positive of the
others (same artist, same album, same track, or sharing the tag); rows of the other slots of the
block are the natural negatives (paper 4's Siamese sampling, paper 13's per-condition triplets).

Labels (a condition is one of):
  * ``"artist"``, ``"album"``, ``"track"``, or any other integer record field (``"genre"``):
    class = the field's value. ``"track"`` gives track-level positives: ``K`` crops of the same
    track, i.e. different segments of the same song (paper 9's track positives, paper 13's track
    triplets);
  * ``"tag:GROUP"`` (``"tag:genre"``, ``"tag:mood"``, ...; groups from the dataset's
    ``tag_groups``) or ``"tag"`` (all tags): class = one tag; its members are the clips that carry
    it (multi-label: a clip belongs to every class of its tags).

Sampling (choices where the papers are silent, papers.md 10 and 14.4):
  * per condition and global step ``s``, ``P`` distinct classes drawn uniformly among the classes
    with at least one training clip (class-balanced, not clip-balanced);
  * per class slot, ``K`` member clips without replacement when the class has ``>= K`` clips,
    otherwise all of them plus random repeats;
  * rows that repeat a clip (always the case for ``"track"``) take crops spread over the clip:
    starts at least ``(1 - max_overlap) * crop_length`` apart (paper 13: anchor and positive of a
    track triplet overlap by at most 50 %) when the clip is long enough, else evenly spaced from
    the first to the last possible start; a clip used once is cropped uniformly at random.

Determinism and resume (the contract of ``input_pipeline.train_iterator``): element ``g`` of the
global stream (step ``g // B``, row ``g % B``) depends only on ``seed``, ``g`` and the source, not
on the number of processes or workers; process ``p`` reads contiguous blocks of each global batch
(``input_pipeline.process_batches``); the iterator is a Grain ``DatasetIterator`` whose state goes
into checkpoints, and ``start_step`` rebuilds the stream from any step.

Batch: ``audio`` float32 [local_batch, crop_length, 1], ``clip_id`` int64, ``condition`` int64
(index into ``labels``), ``class`` int64 (the class value: artist / album / track id or tag
index), all [local_batch], plus each of ``fields`` as in ``input_pipeline.train_iterator``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import grain
import numpy as np

from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.errors import UserError

_CLASS_STREAM, _MEMBER_STREAM, _CROP_STREAM = 11, 12, 13  # Sub-streams of the user seed.


# ------------------------------------------------------------------------------ class tables


@dataclasses.dataclass(frozen=True)
class ClassTable:
  """The classes of one condition and their member clips (CSR layout, picklable).

  ``class_ids`` int64 [C]: the label value of each class; ``offsets`` int64 [C + 1] and
  ``members`` int64 [M]: the source indices of class ``c`` are
  ``members[offsets[c]:offsets[c + 1]]`` (at least one each).
  """

  label: str
  class_ids: np.ndarray
  offsets: np.ndarray
  members: np.ndarray

  @property
  def num_classes(self) -> int:
    return len(self.class_ids)

  def members_of(self, c: int) -> np.ndarray:
    return self.members[self.offsets[c]:self.offsets[c + 1]]


def label_fields(labels: Sequence[str]) -> tuple[str, ...]:
  """Record fields the labels are read from (``"tags"`` for tag labels)."""
  return tuple(dict.fromkeys("tags" if lab.split(":")[0] == "tag" else lab for lab in labels))


def tag_columns(label: str, tag_groups: Mapping[str, Sequence[int]], num_tags: int) -> np.ndarray:
  """Tag indices a tag label ranges over: ``"tag"`` -> all, ``"tag:GROUP"`` -> the group's."""
  name, _, group = label.partition(":")
  if name != "tag":
    raise ValueError(f"{label!r} is not a tag label")
  if not group:
    return np.arange(num_tags)
  if group not in tag_groups:
    raise UserError(f"label {label!r}: the dataset has no tag group {group!r}; its groups are "
                    f"{sorted(tag_groups) or '(none)'}.")
  return np.asarray(tag_groups[group], np.int64)


def label_values(label: str, records: Mapping[str, np.ndarray],
                 tag_groups: Mapping[str, Sequence[int]]) -> list[np.ndarray]:
  """Per clip, the classes it belongs to under ``label`` -> list of int64 arrays.

  Args:
    records: field name -> stacked values over the source (``tags`` [N, num_tags], integer
      fields [N]).
  """
  if label.split(":")[0] == "tag":
    tags = np.asarray(records["tags"])
    columns = tag_columns(label, tag_groups, tags.shape[1])
    return [columns[row[columns] > 0] for row in tags]
  return [np.asarray([v], np.int64) for v in np.asarray(records[label]).reshape(-1)]


def build_class_table(label: str, per_clip: Sequence[np.ndarray]) -> ClassTable:
  """``label_values`` output -> a :class:`ClassTable` (classes sorted by value)."""
  pairs = [(int(c), i) for i, classes in enumerate(per_clip) for c in classes]
  if not pairs:
    raise UserError(f"label {label!r}: no training clip carries any class.")
  pairs.sort()
  values = np.asarray([c for c, _ in pairs], np.int64)
  members = np.asarray([i for _, i in pairs], np.int64)
  class_ids, starts = np.unique(values, return_index=True)
  offsets = np.append(starts, len(values)).astype(np.int64)
  return ClassTable(label=label, class_ids=class_ids, offsets=offsets, members=members)


def read_label_records(source: Any, fields: Sequence[str]) -> dict[str, np.ndarray]:
  """Stacks ``fields`` over every record of ``source`` (one pass; audio is read and dropped)."""
  from tqdm.auto import tqdm

  if len(source) == 0:
    raise UserError(f"the data source {source!r} is empty.")
  columns: dict[str, list] = {f: [] for f in fields}
  for i in tqdm(range(len(source)), desc="label table", unit="clip", leave=False,
                disable=len(source) < 5000):
    record = source[i]
    for f in fields:
      if f not in record:
        raise UserError(f"records of {source!r} lack field {f!r} needed by the metric-learning "
                        f"labels; they have {sorted(record)}.")
      columns[f].append(np.asarray(record[f]))
  return {f: np.stack(v) for f, v in columns.items()}


def class_tables(source: Any, labels: Sequence[str],
                 tag_groups: Mapping[str, Sequence[int]]) -> tuple[ClassTable, ...]:
  """One :class:`ClassTable` per label, from one pass over ``source``."""
  records = read_label_records(source, label_fields(labels))
  return tuple(build_class_table(lab, label_values(lab, records, tag_groups)) for lab in labels)


# --------------------------------------------------------------------------------- sampling


def spread_starts(rng: np.random.Generator, num_samples: int, crop_length: int, n: int,
                  max_overlap: float) -> np.ndarray:
  """``n`` crop starts in one clip, pairwise at least ``ceil((1 - max_overlap) * crop)`` apart.

  Uniform over such placements (sorted uniform slack plus fixed gaps) when the clip is long
  enough; otherwise evenly spaced over ``[0, num_samples - crop_length]`` (as far apart as the
  clip allows). Returned in random order -> int64 [n].
  """
  last = max(num_samples - crop_length, 0)
  gap = int(math.ceil((1.0 - max_overlap) * crop_length))
  slack = last - (n - 1) * gap
  if slack >= 0:
    starts = np.sort(rng.integers(0, slack + 1, n)) + np.arange(n) * gap
  else:
    starts = np.round(np.linspace(0, last, n)).astype(np.int64)
  return rng.permutation(starts).astype(np.int64)


def choose_members(rng: np.random.Generator, members: np.ndarray, k: int) -> np.ndarray:
  """``k`` member clips: without replacement if there are enough, else all plus repeats."""
  if len(members) >= k:
    return rng.choice(members, k, replace=False)
  extra = rng.choice(members, k - len(members), replace=True)
  return rng.permutation(np.concatenate([members, extra]))


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """Which clip, class and crop slot each row of one global step uses (all [global_batch])."""

  clips: np.ndarray
  classes: np.ndarray
  conditions: np.ndarray
  slots: np.ndarray       # Index of the row among the rows of its slot that repeat its clip.
  repeats: np.ndarray     # How many rows of its slot use the same clip.
  slot_ids: np.ndarray    # d * P + p.


class PKExamples:
  """Element ``g`` of the global P x K stream -> one training example (picklable for Grain).

  The plan of a step is cached (the last one), so the ``B`` rows of a step share one draw.
  """

  def __init__(self, source: Any, tables: Sequence[ClassTable], *, classes_per_batch: int,
               samples_per_class: int, crop_length: int, seed: int, fields: Sequence[str],
               max_overlap: float):
    self.source = source
    self.tables = tuple(tables)
    self.p, self.k = int(classes_per_batch), int(samples_per_class)
    self.crop_length, self.seed = int(crop_length), int(seed)
    self.fields = tuple(fields)
    self.max_overlap = float(max_overlap)
    self._cache: tuple = (None, None)

  @property
  def global_batch_size(self) -> int:
    return len(self.tables) * self.p * self.k

  def __getstate__(self) -> dict:
    state = dict(self.__dict__)
    state["_cache"] = (None, None)
    return state

  def plan(self, step: int) -> StepPlan:
    """The rows of global step ``step`` (deterministic in ``(seed, step)``)."""
    cached_step, cached = self._cache
    if cached_step == step:
      return cached
    rows = {k: [] for k in ("clips", "classes", "conditions", "slots", "repeats", "slot_ids")}
    for d, table in enumerate(self.tables):
      rng = np.random.default_rng((self.seed, _CLASS_STREAM, step, d))
      chosen = rng.choice(table.num_classes, self.p, replace=False)
      for p, c in enumerate(chosen):
        member_rng = np.random.default_rng((self.seed, _MEMBER_STREAM, step, d, p))
        clips = choose_members(member_rng, table.members_of(int(c)), self.k)
        for j, clip in enumerate(clips):
          same = clips == clip
          rows["clips"].append(int(clip))
          rows["classes"].append(int(table.class_ids[c]))
          rows["conditions"].append(d)
          rows["slots"].append(int(np.sum(same[:j])))
          rows["repeats"].append(int(np.sum(same)))
          rows["slot_ids"].append(d * self.p + p)
    plan = StepPlan(**{k: np.asarray(v, np.int64) for k, v in rows.items()})
    self._cache = (step, plan)
    return plan

  def __call__(self, index: int, _: Any = None) -> dict[str, np.ndarray]:
    step, row = divmod(int(index), self.global_batch_size)
    plan = self.plan(step)
    record = self.source[int(plan.clips[row])]
    num_samples = np.asarray(record["audio"]).shape[0]
    rng = np.random.default_rng((self.seed, _CROP_STREAM, step, int(plan.slot_ids[row]),
                                 int(plan.clips[row])))
    if plan.repeats[row] > 1:
      start = spread_starts(rng, num_samples, self.crop_length, int(plan.repeats[row]),
                            self.max_overlap)[plan.slots[row]]
    else:
      start = rng.integers(0, max(num_samples - self.crop_length, 0) + 1)
    example = input_pipeline.crop_example(record, int(start), self.crop_length, self.fields)
    example["condition"] = np.asarray(plan.conditions[row], np.int64)
    example["class"] = np.asarray(plan.classes[row], np.int64)
    return example


def check_pk(labels: Sequence[str], classes_per_batch: int, samples_per_class: int,
             global_batch_size: int) -> None:
  """``UserError`` unless ``global_batch_size == len(labels) * P * K`` with P, K >= 1."""
  if not labels:
    raise UserError("metric-learning batches need at least one label (e.g. 'artist').")
  if classes_per_batch < 1 or samples_per_class < 1:
    raise UserError(f"classes_per_batch ({classes_per_batch}) and samples_per_class "
                    f"({samples_per_class}) must be positive.")
  expected = len(labels) * classes_per_batch * samples_per_class
  if global_batch_size != expected:
    raise UserError(
        f"config.batch_size={global_batch_size} must equal len(labels) x classes_per_batch x "
        f"samples_per_class = {len(labels)} x {classes_per_batch} x {samples_per_class} = "
        f"{expected} for P x K batches.")


def pk_dataset(source: Any, *, labels: Sequence[str], classes_per_batch: int,
               samples_per_class: int, crop_length: int, global_batch_size: int, seed: int,
               tag_groups: Mapping[str, Sequence[int]] | None = None,
               fields: Sequence[str] = (), max_overlap: float = 0.5,
               tables: Sequence[ClassTable] | None = None, process_index: int | None = None,
               process_count: int | None = None) -> grain.MapDataset:
  """This process's infinite ``MapDataset`` of P x K batches (item ``s`` = global step ``s``).

  Args:
    source: random-access records (``input_pipeline``'s contract).
    labels: one condition per block (module docstring).
    classes_per_batch, samples_per_class: ``P`` and ``K`` per block.
    global_batch_size: must be ``len(labels) * P * K``.
    tag_groups: group name -> tag indices (``shards.tag_groups``), for ``"tag:GROUP"`` labels.
    fields: extra record fields every row carries (``"tags"``, ``"artist"``, ...).
    max_overlap: largest overlap fraction of two crops of one clip in a slot (0.5: paper 13).
    tables: precomputed :func:`class_tables` (default: one pass over ``source``).
  """
  labels = tuple(labels)
  check_pk(labels, classes_per_batch, samples_per_class, global_batch_size)
  process_index, process_count = input_pipeline.resolve_processes(process_index, process_count)
  if crop_length < 1:
    raise UserError(f"crop_length must be positive, got {crop_length}.")
  if not 0.0 <= max_overlap < 1.0:
    raise UserError(f"max_overlap must be in [0, 1), got {max_overlap}.")
  if tables is None:
    tables = class_tables(source, labels, tag_groups or {})
  for table in tables:
    if table.num_classes < classes_per_batch:
      raise UserError(
          f"label {table.label!r} has {table.num_classes} classes in the training split, fewer "
          f"than classes_per_batch={classes_per_batch}; lower classes_per_batch.")
  fields = tuple(f for f in dict.fromkeys(fields) if f not in ("audio", "clip_id"))
  examples = PKExamples(source, tables, classes_per_batch=classes_per_batch,
                        samples_per_class=samples_per_class, crop_length=crop_length, seed=seed,
                        fields=fields, max_overlap=max_overlap)
  ds = grain.MapDataset.range(global_batch_size).repeat().map_with_index(examples)
  return input_pipeline.process_batches(ds, global_batch_size=global_batch_size,
                                        process_index=process_index, process_count=process_count)


def pk_iterator(source: Any, *, num_workers: int = 0, start_step: int = 0,
                **kwargs) -> grain.DatasetIterator:
  """A checkpointable iterator of this process's P x K batches (``pk_dataset`` arguments, plus
  ``num_workers`` Grain worker processes and ``start_step`` as in ``train_iterator``)."""
  return input_pipeline.iterate_batches(pk_dataset(source, **kwargs), num_workers=num_workers,
                                        start_step=start_step)
