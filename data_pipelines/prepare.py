"""Entry points of ``musicrep prepare``: build ArrayRecord shards and a ``prepare_report.json``.

Both functions use ``out_dir`` as the TFDS ``data_dir``, so the dataset lands in
``out_dir/<name>/1.0.0/`` (``musicrep_synthetic`` or ``musicrep_folder``), which
``musicrep_jax.data.shards.open_shards(out_dir)`` reads. No TensorFlow and no subprocesses are used
(decoding runs on threads), so they are safe to call without a ``__main__`` guard.

The report (also returned) holds::

    builder, dataset, out_dir, dataset_dir, sample_rate, params
    seen, written                               (totals; seen = written + len(skipped))
    truncated                                   (skipped files cut short: less audio than their
                                                 header declares; one warning each)
    splits: {split: {seen, written, skipped}}, total: {seen, written, skipped}
    skipped: [{clip_id, path, split, reason}]   (ordered by clip_id)
    warnings: [str]
    audio_seconds, seconds, clips_per_second, x_realtime
    side_files: {name: path}                    (synthetic only: interactions, user factors)
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time
from typing import Callable

from musicrep_jax import locks
from musicrep_jax.errors import UserError

REPORT_NAME = "prepare_report.json"
LOCK_NAME = ".prepare.lock"
DOWNLOAD_PREFIX = ".musicrep_tfds_"  # TFDS's (empty) download folder during a build.
SPLITS = ("train", "validation", "test")


def check_sample_rate(sample_rate) -> int:
  """``sample_rate`` as a positive int; ``UserError`` naming ``--sample-rate`` otherwise."""
  if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) \
      or int(sample_rate) != sample_rate or sample_rate <= 0:
    raise UserError(f"--sample-rate must be a positive whole number of Hz, not {sample_rate!r}.")
  return int(sample_rate)


def output_lock(out_dir: str):
  """Holds ``out_dir/.prepare.lock`` for one prepare (``locks.folder_lock``): a second prepare
  into the same folder fails at once with one line naming the holder (host and pid), instead of
  decoding everything and then colliding; a lock left by a killed prepare is stale and reused."""
  return locks.folder_lock(
      out_dir, LOCK_NAME, "Another `musicrep prepare` ({holder}) is writing into {folder}; wait "
      "for it to finish or choose another output folder.")


def prepare_synthetic(out_dir: str | os.PathLike, *, num_clips: int = 600, seed: int = 0,
                      sample_rate: int = 16000, clip_seconds: float = 4.0,
                      overwrite: bool = False, workers: int | None = None,
                      progress: bool = True) -> dict:
  """Renders the synthetic corpus into ``out_dir`` and saves its interactions next to it.

  ``interactions.npy`` (int64 [N, 3]: user, track, count) and ``user_factors.npy`` go into the
  dataset version dir (``out_dir/musicrep_synthetic/1.0.0/``), listed in the report's
  ``side_files`` and in ``metadata["side_files"]``.
  """
  from musicrep_jax.data_pipelines import synthetic_builder
  from musicrep_jax.data_pipelines.synthetic_corpus import CorpusConfig, SyntheticCorpus

  sample_rate = check_sample_rate(sample_rate)
  params = {"num_clips": num_clips, "seed": seed, "sample_rate": sample_rate,
            "clip_seconds": clip_seconds}
  corpus = SyntheticCorpus(CorpusConfig(**params))
  cls = synthetic_builder.MusicrepSynthetic
  out_dir = _out_dir_path(out_dir)
  with output_lock(out_dir):
    _prepare_out_dir(out_dir, cls, overwrite)
    builder, seconds = _build(lambda: cls(corpus=corpus, workers=workers, progress=progress,
                                          data_dir=out_dir), out_dir)
    side_files = synthetic_builder.save_side_files(corpus, builder.data_path)
    counts = {s: {"seen": n, "written": n, "skipped": 0} for s, n in builder.counts.items()}
    report = _report(builder, "synthetic", out_dir, params, counts, [], [], seconds,
                     builder.audio_samples / sample_rate)
    report["side_files"] = side_files
    return _write_report(report, out_dir)


def prepare_folder(out_dir: str | os.PathLike, *, audio_dir: str | os.PathLike,
                   manifest: str | os.PathLike, sample_rate: int = 22050,
                   min_seconds: float = 1.0, overwrite: bool = False,
                   workers: int | None = None, progress: bool = True,
                   allow_outside_audio_dir: bool = False,
                   tag_groups: str | os.PathLike | None = None, tempo: bool = False) -> dict:
  """Decodes the files listed in ``manifest`` (see ``folder_builder``) into shards in ``out_dir``.

  ``tag_groups`` is a tag-group file (``tag_groups`` module); ``tempo`` adds each clip's
  estimated tempo (``tempo_bpm``). Unusable files are skipped and listed in the report;
  ``UserError`` for a missing manifest or audio folder, a manifest without a ``path`` column, a
  path outside ``audio_dir`` (unless ``allow_outside_audio_dir``), an invalid tag-group file or
  grouping, or when no file at all can be used.
  """
  from musicrep_jax.data_pipelines import folder_builder

  params = {"audio_dir": os.path.abspath(os.fspath(audio_dir)),
            "manifest": os.path.abspath(os.fspath(manifest)),
            "sample_rate": check_sample_rate(sample_rate), "min_seconds": min_seconds}
  if allow_outside_audio_dir:
    params["allow_outside_audio_dir"] = True
  if tag_groups is not None:
    params["tag_groups"] = tag_groups = os.path.abspath(os.fspath(tag_groups))
  params["tempo"] = bool(tempo)
  # Read the manifest before touching out_dir, so that input errors leave it alone.
  folder_builder.read_manifest(params["manifest"], params["audio_dir"], allow_outside_audio_dir,
                               tag_groups)
  return prepare_manifest(
      out_dir, folder_builder.MusicrepFolder, kind="folder", params=params,
      builder_kwargs=dict(audio_dir=audio_dir, manifest=manifest, sample_rate=sample_rate,
                          min_seconds=min_seconds, workers=workers, progress=progress,
                          allow_outside_audio_dir=allow_outside_audio_dir,
                          tag_groups=tag_groups, tempo=bool(tempo)),
      overwrite=overwrite)


def prepare_manifest(out_dir: str | os.PathLike, builder_cls, *, kind: str, params: dict,
                     builder_kwargs: dict, overwrite: bool = False) -> dict:
  """Builds any ``manifest_builder.ManifestBuilder`` subclass into ``out_dir`` with its report.

  Every dataset made of a list of audio files (folder, MagnaTagATune, Speech Commands, ...)
  goes through here. Check the user's input (folders, annotation files) before calling, so
  that input errors leave ``out_dir`` alone.

  Args:
    out_dir: the TFDS data_dir; the dataset lands in ``out_dir/<builder_cls.name>/<version>/``.
    builder_cls: the builder class.
    kind: the report's ``builder`` entry ("folder", "mtat", ...).
    params: what the build was asked for (must hold ``sample_rate``), copied into the report.
    builder_kwargs: arguments of ``builder_cls`` besides ``data_dir``.
    overwrite: replace a dataset already built in ``out_dir``.
  """
  out_dir = _out_dir_path(out_dir)
  sample_rate = check_sample_rate(params["sample_rate"])
  with output_lock(out_dir):
    _prepare_out_dir(out_dir, builder_cls, overwrite, builder_kwargs.get("config"))
    return _build_manifest(out_dir, builder_cls, kind, params, builder_kwargs, sample_rate)


def _build_manifest(out_dir: str, builder_cls, kind: str, params: dict, builder_kwargs: dict,
                    sample_rate: int) -> dict:
  """``prepare_manifest``'s build, with ``out_dir`` locked and cleared for it."""
  holder = {}

  def make():
    holder["builder"] = builder_cls(data_dir=out_dir, **builder_kwargs)
    return holder["builder"]

  def on_failure(error: Exception) -> None:
    """Writes what was found so far into the report; explains TFDS's empty-split failure."""
    builder = holder.get("builder")
    if builder is None or not any(c["seen"] for c in builder.counts.values()):
      return
    partial = _report(builder, kind, out_dir, params, builder.counts, builder.skipped,
                      builder.warnings, 0.0, builder.audio_samples / sample_rate)
    _write_report(dict(partial, error=str(error)), out_dir)
    if "No examples were yielded" in str(error):
      empty = [s for s, c in builder.counts.items() if c["seen"] and not c["written"]]
      raise UserError(f"No file of split {', '.join(empty)} could be decoded, so the dataset "
                      f"was not written; see {os.path.join(out_dir, REPORT_NAME)}.") from error

  builder, seconds = _build(make, out_dir, on_failure)
  report = _report(builder, kind, out_dir, params, builder.counts, builder.skipped,
                   builder.warnings, seconds, builder.audio_samples / sample_rate)
  return _write_report(report, out_dir)


def _out_dir_path(out_dir) -> str:
  """``out_dir`` made absolute; ``UserError`` when it exists and is not a folder."""
  out_dir = os.path.abspath(os.fspath(out_dir))
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise UserError(f"The output path {out_dir} exists and is not a folder.")
  return out_dir


def _prepare_out_dir(out_dir: str, builder_cls, overwrite: bool, config: str | None = None):
  """Clears ``out_dir`` (locked by the caller) for a build of this dataset: deletes
  (``overwrite``) or refuses an existing build (of its BuilderConfig named ``config``, when it
  has configs), and removes the ``incomplete.*`` folders TFDS leaves when a build is killed
  (and the build's download folder, ``DOWNLOAD_PREFIX*``).

  A build whose ``prepare_report.json`` is missing (the previous run stopped before the end) is
  deleted without asking. The old build is removed before the builder is constructed: TFDS would
  otherwise load the old ``dataset_info.json`` into the new builder.
  """
  dataset_parent = os.path.join(out_dir, builder_cls.name, *([config] if config else []))
  for leftover in (glob.glob(os.path.join(dataset_parent, "incomplete.*")) +
                   glob.glob(os.path.join(out_dir, DOWNLOAD_PREFIX + "*"))):
    shutil.rmtree(leftover, ignore_errors=True)
  dataset_dir = os.path.join(dataset_parent, str(builder_cls.VERSION))
  if os.path.exists(dataset_dir):
    if not overwrite and _reported_dataset_dir(out_dir) == dataset_dir:
      raise UserError(f"{dataset_dir} already holds a prepared dataset; delete it or choose "
                      "another output folder.")
    shutil.rmtree(dataset_dir)


def _reported_dataset_dir(out_dir: str) -> str | None:
  """The ``dataset_dir`` named by ``out_dir/prepare_report.json`` (None if there is none)."""
  try:
    with open(os.path.join(out_dir, REPORT_NAME), encoding="utf-8") as f:
      return json.load(f).get("dataset_dir")
  except (OSError, ValueError, AttributeError):
    return None


def _build(make_builder: Callable, out_dir: str,
           on_failure: Callable[[Exception], None] | None = None):
  """Constructs the builder and writes ArrayRecord shards; returns (builder, seconds taken)."""
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core.utils import tqdm_utils

  start = time.perf_counter()
  builder = make_builder()
  tfds_bars = getattr(tqdm_utils, "_active", True)
  tfds.display_progress_bar(False)  # The builders show their own bars, per file.
  try:
    # In out_dir, not /tmp: a killed build's leftover is removed by the next one (_prepare_out_dir).
    with tempfile.TemporaryDirectory(prefix=DOWNLOAD_PREFIX, dir=out_dir) as download_dir:
      builder.download_and_prepare(
          download_dir=download_dir, file_format="array_record",
          download_config=tfds.download.DownloadConfig())
  except Exception as error:  # pylint: disable=broad-except
    if on_failure is not None:
      on_failure(error)
    raise
  finally:
    tfds.display_progress_bar(tfds_bars)
  return builder, time.perf_counter() - start


def _report(builder, kind: str, out_dir: str, params: dict, counts: dict, skipped: list,
            warnings: list, seconds: float, audio_seconds: float) -> dict:
  splits = {s: dict(counts[s]) for s in SPLITS if counts[s]["seen"]}
  total = {k: sum(c[k] for c in splits.values()) for k in ("seen", "written", "skipped")}
  return {
      "builder": kind,
      "dataset": builder.name,
      "out_dir": out_dir,
      "dataset_dir": os.fspath(builder.data_path),
      "sample_rate": params["sample_rate"],
      "params": params,
      "seen": total["seen"],
      "written": total["written"],
      "truncated": int(getattr(builder, "truncated", 0)),
      "splits": splits,
      "total": total,
      "skipped": sorted(skipped, key=lambda item: item["clip_id"]),
      "warnings": list(warnings),
      "audio_seconds": round(audio_seconds, 3),
      "seconds": round(seconds, 3),
      "clips_per_second": round(total["written"] / seconds, 2) if seconds else None,
      "x_realtime": round(audio_seconds / seconds, 1) if seconds else None,
  }


def _write_report(report: dict, out_dir: str) -> dict:
  with open(os.path.join(out_dir, REPORT_NAME), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
  return report
