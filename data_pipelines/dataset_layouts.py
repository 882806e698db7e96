"""What the builders of datasets in their own layouts share (MagnaTagATune, MSD, GTZAN,
MTG-Jamendo; Speech Commands and DCASE 2017 use the readers below).

Each dataset has one module (``mtat_builder``, ``msd_builder``, ``gtzan_builder``,
``jamendo_builder``) that reads the user's copy in the dataset's own layout (``manual_dir``) into
a ``manifest_builder.Manifest`` and subclasses :class:`LayoutBuilder`. This module holds the
pieces more than one of them uses (papers.md section 1.1):

* split lists: :func:`read_id_list` reads a list file (text, one id per line, or the authors'
  Python-2 ``cPickle`` lists such as ``train_list_pub.cP``), :func:`splits_from_lists` turns
  ``{split: ids}`` into ``{id: split}``; the lists shipped with the package live in
  ``data_pipelines/splits/`` (:func:`packaged_list`);
* readers with clear errors: :func:`require_folder`, :func:`require_file`, :func:`read_lines`
  (whitespace-separated list files such as DCASE's ``fold1_train.txt``);
* :func:`top_n_tags`: the N most frequent columns of a clip x tag annotation matrix;
* :func:`find_root`: where in ``manual_dir`` the audio (or an index file) actually is;
* :func:`build_manifest`: entries (path, tags, split, artist, album, track) -> a ``Manifest``
  with integer ids (and the dataset's tag groups);
* :class:`LayoutBuilder`: BuilderConfigs for the papers' sample rates (16 kHz and 22.05 kHz, per
  split variant), the paper's split sizes checked after probing (``expected_counts``, which
  defaults to the paper's and which tests override for miniature copies) and a resumable build
  (the decode cache of ``ManifestBuilder``).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from typing import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines.manifest_builder import Manifest, ManifestBuilder, Row
from musicrep_jax.data import schema as shard_schema
from musicrep_jax.errors import UserError

SPLITS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splits")
SAMPLE_RATES = (22050, 16000)  # The papers' rates: 22.05 kHz (SampleCNN), 16 kHz (MTAT native).
PAPER_COUNTS = "paper"  # Sentinel: use the builder's published split sizes.


def require_folder(path: str, what: str) -> str:
  """``path`` as an absolute path; ``UserError`` naming ``what`` when it is not a folder."""
  path = os.path.abspath(os.fspath(path))
  if not os.path.isdir(path):
    raise UserError(f"{what} {path} does not exist (or is not a folder).")
  return path


def require_file(path: str, layout_hint: str) -> str:
  """``path``; ``UserError`` with the expected layout when it is not a file."""
  if not os.path.isfile(path):
    raise UserError(f"{path} is missing; {layout_hint}")
  return path


def read_lines(path: str) -> list[tuple[int, list[str]]]:
  """Non-blank lines of a text list as ``(line number, whitespace-separated fields)``.

  Paths use ``/`` whatever the list was written with (some copies carry ``\\``).
  """
  with open(path, encoding="utf-8-sig") as f:
    lines = [(n, line.replace("\\", "/").split()) for n, line in enumerate(f, start=1)]
  return [(n, fields) for n, fields in lines if fields]


def packaged_list(name: str) -> list[str]:
  """A list shipped in ``data_pipelines/splits/`` (one entry per line)."""
  return read_id_list(os.path.join(SPLITS_DIR, name))


class _DataOnlyUnpickler(pickle.Unpickler):
  """Reads pickles of plain data only: every class or function lookup (``GLOBAL``,
  ``STACK_GLOBAL``, hence any ``REDUCE`` of a callable) is refused, so a crafted list file cannot
  run code. A list of (Python-2) strings needs no lookup at all."""

  def find_class(self, module, name):
    raise pickle.UnpicklingError(f"it refers to {module}.{name}; a split list holds only strings")


def read_id_list(path: str | os.PathLike) -> list[str]:
  """The ids of a split-list file, in file order.

  ``.cP``/``.pkl``/``.pickle`` files are Python-2 pickles of a list of strings (how
  ``jongpillee/music_dataset_split`` ships its lists), read by an unpickler that admits plain data
  only (split lists are downloaded from third parties: nothing in them may run); anything else is
  text, one id per line (blank lines ignored).

  Raises:
    UserError: the file is missing or is a pickle that does not hold a list of strings.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserError(f"The split list {path} does not exist.")
  if path.endswith((".cP", ".pkl", ".pickle")):
    with open(path, "rb") as f:
      try:
        items = _DataOnlyUnpickler(f, encoding="latin1").load()  # Python-2 str -> str.
      except Exception as error:  # pylint: disable=broad-except
        raise UserError(f"The split list {path} is not a readable pickle ({error}).") from error
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
      raise UserError(f"The split list {path} does not hold a list of strings.")
    return [i.strip() for i in items]
  with open(path, encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip()]


def splits_from_lists(lists: dict[str, Sequence[str]]) -> dict[str, str]:
  """``{split: [id, ...]}`` -> ``{id: split}``; ``UserError`` if an id is in two splits."""
  split_of: dict[str, str] = {}
  for split, ids in lists.items():
    for key in ids:
      other = split_of.setdefault(key, split)
      if other != split:
        raise UserError(f"{key!r} is listed in both the {other} and the {split} split lists.")
  return split_of


def top_n_tags(matrix: np.ndarray, names: Sequence[str], n: int) -> tuple[str, ...]:
  """The ``n`` most frequent tags of a 0/1 ``[clips, tags]`` matrix, most frequent first.

  Ties keep the column order (a stable sort), so the result is deterministic.
  """
  counts = np.asarray(matrix).astype(np.int64).sum(axis=0)
  order = np.argsort(-counts, kind="stable")[:n]
  return tuple(names[i] for i in order)


def find_root(manual_dir: str, subdirs: Sequence[str], probes: Iterable[str]) -> str:
  """The first of ``manual_dir/<subdir>`` (``""`` is ``manual_dir`` itself) holding any of the
  relative paths ``probes`` (the first few files of the dataset); ``manual_dir`` if none does,
  so that every file is then reported missing."""
  probes = list(probes)
  for subdir in subdirs:
    root = os.path.join(manual_dir, subdir)
    if any(os.path.exists(os.path.join(root, p)) for p in probes):
      return root
  return manual_dir


def find_file(manual_dir: str, names: Sequence[str], what: str) -> str:
  """The first of ``manual_dir/<name>`` that exists; ``UserError`` naming ``what`` otherwise."""
  for name in names:
    path = os.path.join(manual_dir, name)
    if os.path.isfile(path):
      return path
  raise UserError(f"{what} was not found in {manual_dir} (looked for {', '.join(names)}).")


def check_manual_dir(manual_dir: str | os.PathLike, dataset: str) -> str:
  manual_dir = os.path.abspath(os.path.expanduser(os.fspath(manual_dir)))
  if not os.path.isdir(manual_dir):
    raise UserError(f"The {dataset} folder {manual_dir} (--manual-dir) does not exist.")
  return manual_dir


@dataclasses.dataclass(frozen=True)
class Entry:
  """One clip of a dataset, before ids are assigned. Names are "" when unknown."""

  path: str  # Relative to the audio root (reported as is).
  full_path: str
  tags: tuple[str, ...]
  split: str
  artist: str = ""
  album: str = ""
  track: str = ""
  skip_reason: str | None = None


def build_manifest(entries: Sequence[Entry], tag_names: Sequence[str], split_rule: str,
                   source: str, tag_groups: dict | None = None) -> Manifest:
  """Entries -> ``Manifest``: ``clip_id`` is the entry index; artist/album/track ids are the
  index in the sorted unique names (-1 when the name is ""); ``tag_groups`` (group -> indices
  into ``tag_names``) is passed through."""
  id_names = {c: sorted({getattr(e, c) for e in entries if getattr(e, c)})
              for c in ("artist", "album", "track")}
  id_maps = {c: {name: i for i, name in enumerate(names)} for c, names in id_names.items()}
  rows = tuple(
      Row(clip_id=index, path=e.path, full_path=e.full_path, tags=tuple(e.tags), split=e.split,
          skip_reason=e.skip_reason,
          **{c: id_maps[c].get(getattr(e, c), shard_schema.UNKNOWN_ID) for c in id_maps})
      for index, e in enumerate(entries))
  return Manifest(rows=rows, tag_names=tuple(tag_names), id_names=id_names,
                  split_rule=split_rule, source=source, tag_groups=dict(tag_groups or {}))


@dataclasses.dataclass(eq=False)
class RateConfig(tfds.core.BuilderConfig):
  """A split variant of a dataset at one sample rate (name ``<variant>_<rate>hz``)."""

  variant: str = ""
  sample_rate: int = 22050


def config_name(variant: str, sample_rate: int) -> str:
  return f"{variant}_{int(sample_rate)}hz"


def rate_configs(variants: dict[str, str], version: str) -> list[RateConfig]:
  """One config per (variant, sample rate in ``SAMPLE_RATES``); ``variants``: name -> words."""
  return [RateConfig(name=config_name(v, rate), version=version, variant=v, sample_rate=rate,
                     description=f"{words}; audio at {rate} Hz.")
          for v, words in variants.items() for rate in SAMPLE_RATES]


class LayoutBuilder(ManifestBuilder, skip_registration=True):
  """A real dataset read from ``manual_dir`` in its own layout.

  Subclasses set ``name``, ``VERSION``, ``RELEASE_NOTES``, ``BUILDER_CONFIGS`` (from
  :func:`rate_configs`), ``EXPECTED_COUNTS`` (variant -> {split: count} of the paper's split,
  or None where no count is published), ``MIN_SECONDS`` (variant -> the split rule's minimum
  duration) and implement :meth:`read_layout`.
  """

  EXPECTED_COUNTS: dict = {}
  MIN_SECONDS: dict = {}
  KIND = ""  # The report's `builder` entry.

  def __init__(self, *, manual_dir: str | os.PathLike, config: str | None = None,
               expected_counts: dict | str | None = PAPER_COUNTS,
               min_seconds: float | None = None, resumable: bool = True,
               layout_options: dict | None = None, manifest: Manifest | None = None,
               **kwargs):
    """Reads the layout now (``UserError`` on a missing annotation or list file), unless the
    caller already did and passes its ``manifest``.

    Args:
      manual_dir: the user's copy of the dataset.
      config: a name from ``BUILDER_CONFIGS`` (see :func:`config_name`); default the first
        (the first variant at 22.05 kHz).
      expected_counts: ``"paper"`` (the default) checks the paper's split sizes; a dict checks
        those (tests use miniature copies); None checks nothing.
      min_seconds: files shorter than this are skipped (default: the variant's rule).
      resumable: keep a decode cache so a killed build restarts where it stopped.
      layout_options: extra arguments of :meth:`read_layout`.
      manifest: ``read_layout(manual_dir, variant, **layout_options)`` if already read (MSD's
        index is a million-row SQLite file: read it once).
      **kwargs: ``ManifestBuilder`` / TFDS arguments (``data_dir``, ``workers``, ``progress``,
        ``strict_counts``).
    """
    config = config or self.BUILDER_CONFIGS[0].name
    chosen = self.builder_configs.get(config)
    if chosen is None:
      raise UserError(f"{self.name} has no configuration {config!r}; choose one of "
                      f"{', '.join(self.builder_configs)}.")
    manual_dir = check_manual_dir(manual_dir, self.name)
    if manifest is None:
      manifest = self.read_layout(manual_dir, chosen.variant, **(layout_options or {}))
    if expected_counts == PAPER_COUNTS:
      expected_counts = self.paper_counts(chosen.variant, manifest)
    if min_seconds is None:
      min_seconds = self.default_min_seconds(chosen.variant, **(layout_options or {}))
    super().__init__(
        manifest=manifest, sample_rate=chosen.sample_rate, min_seconds=min_seconds,
        description=f"{chosen.description} Read from {manual_dir}.",
        metadata=dict(builder=self.KIND, manual_dir=manual_dir, variant=chosen.variant,
                      expected_counts=dict(expected_counts or {})),
        expected_counts=expected_counts, decode_cache=resumable, config=config, **kwargs)

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str, **options) -> Manifest:
    """The user's copy -> the manifest of ``variant`` (``UserError`` on missing index files)."""
    raise NotImplementedError

  @classmethod
  def paper_counts(cls, variant: str, manifest: Manifest) -> dict | None:
    """The usable files per split the paper's split has (None: not published)."""
    del manifest
    return cls.EXPECTED_COUNTS.get(variant)

  @classmethod
  def default_min_seconds(cls, variant: str, **options) -> float:
    """Files shorter than this are skipped unless ``min_seconds`` is given."""
    del options
    return cls.MIN_SECONDS.get(variant, 1.0)


def prepare_layout(builder_cls, out_dir, *, manual_dir, sample_rate: int = 22050,
                   variant: str | None = None, expected_counts=PAPER_COUNTS,
                   strict_counts: bool = True, min_seconds: float | None = None,
                   resumable: bool = True, layout_options: dict | None = None,
                   overwrite: bool = False, workers: int | None = None,
                   progress: bool = True, tempo: bool | None = None) -> dict:
  """Builds ``builder_cls`` (a :class:`LayoutBuilder`) from ``manual_dir`` into ``out_dir``
  through ``prepare.prepare_manifest``; returns the prepare report.

  ``variant`` defaults to the first of the builder's variants; ``tempo`` (None: the builder's
  ``TEMPO_BY_DEFAULT``) adds the ``tempo_bpm`` field. The layout is read before ``out_dir`` is
  touched, so input errors leave it alone.
  """
  from musicrep_jax.data_pipelines import prepare

  variants = list(dict.fromkeys(c.variant for c in builder_cls.BUILDER_CONFIGS))
  variant = variant or variants[0]
  if variant not in variants:
    raise UserError(f"{builder_cls.name} has no split variant {variant!r}; choose one of "
                    f"{', '.join(variants)}.")
  if int(sample_rate) not in SAMPLE_RATES:
    raise UserError(f"--sample-rate must be one of {', '.join(map(str, SAMPLE_RATES))} (the "
                    f"papers' rates), not {sample_rate}.")
  manual_dir = check_manual_dir(manual_dir, builder_cls.name)
  # Read before out_dir is touched (input errors fail early); the builder reuses it.
  manifest = builder_cls.read_layout(manual_dir, variant, **(layout_options or {}))
  tempo = builder_cls.TEMPO_BY_DEFAULT if tempo is None else bool(tempo)
  params = {"manual_dir": manual_dir, "variant": variant, "sample_rate": int(sample_rate),
            "min_seconds": min_seconds, "strict_counts": strict_counts,
            "resumable": resumable, "tempo": tempo, **(layout_options or {})}
  return prepare.prepare_manifest(
      out_dir, builder_cls, kind=builder_cls.KIND, params=params, overwrite=overwrite,
      builder_kwargs=dict(manual_dir=manual_dir, config=config_name(variant, sample_rate),
                          expected_counts=expected_counts, strict_counts=strict_counts,
                          min_seconds=min_seconds, resumable=resumable,
                          layout_options=layout_options, manifest=manifest, workers=workers,
                          progress=progress, tempo=tempo))
