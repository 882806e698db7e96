"""Multi-level, multi-scale feature aggregation end to end (papers 2 and 3; papers.md 3, 4): the
three stages of one ``configs/multiscale_mtat.py`` config, and the library side of the commands
``musicrep multiscale``, ``extract-features`` and ``aggregate``.

* Stage 1 (``train_extractors``): every ``config.extractors.NAME`` (a full trainer config) is
  trained by the trainer into ``WORKDIR/extractors/NAME``; a finished run leaves
  ``summary.json`` and is kept, an interrupted one resumes on the next call.
* Stage 2 (``features.extract_features``): the extractors, restored by
  ``trainer.restore_workdir``, over the target shards (``target_shards``) into
  ``WORKDIR/features``.
* Stage 3 (``classifier.run_table``): the global classifier on the selected levels and scales
  and, with ``config.sweep``, every single-level single-scale classifier, into
  ``WORKDIR/results.json`` (``report``).

Transfer (paper 2, papers.md 3.1): the extractors train on ``data_dir``; stages 2-3 read
``target_data_dir``, or with ``config.target_synthetic_seed >= 0`` the embedded corpus rendered
with that seed (other tracks, the same tags).

``run`` is the ``"multiscale"`` runner of ``musicrep_jax.registry.RUNNERS`` (``musicrep train
--config multiscale_mtat``); it reads the target dataset from the optional
``config.target_data_dir``.

Any of these folders may be remote (``gs://...``): the trainer writes the extractors' workdirs
there itself; feature and result files are written in a local folder and copied up
(``storage.local_dir``); ``aggregate`` reads remote features through a local copy.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Optional, Sequence

from musicrep_jax import storage
from musicrep_jax.errors import UserError
from musicrep_jax.registry import RUNNERS


def load_config(spec: str, overrides: Sequence[str] = ()):
  """``configs/multiscale_mtat.py[:ARGS]`` (by name or path) with ``--config.*`` overrides."""
  from musicrep_jax import config_loading

  config = config_loading.load_config_file(config_loading.resolve_config_spec(spec))
  config_loading.apply_overrides(config, overrides)
  return config


def train_extractors(config, workdir: storage.AnyPath, data_dir: Optional[str]) -> dict:
  """Stage 1: ``{name: workdir}``; each finished run leaves ``summary.json`` and is kept.

  Raises ``KeyboardInterrupt`` when a signal stopped a run (it resumes on the next call).
  """
  from musicrep_jax import config_loading
  from musicrep_jax.training import trainer

  workdirs = {}
  for name, extractor_config in config.extractors.items():
    config_loading.validate(extractor_config)
    run_dir = workdir / "extractors" / name
    summary_file = run_dir / "summary.json"
    if not summary_file.exists():
      print(f"Stage 1: training extractor {name} in {run_dir}", flush=True)
      extractor_config.progress_bar = config.get("progress_bar", True)
      summary = trainer.train(extractor_config, run_dir, data_dir)
      if "stopped_by" in summary:
        raise KeyboardInterrupt(f"stopped by {summary['stopped_by']}; rerun to resume")
      summary_file.write_text(json.dumps(summary, indent=2, default=str))
    workdirs[name] = run_dir
  return workdirs


def target_shards(config, extractor_config, data_dir: Optional[str],
                  target_data_dir: Optional[str]):
  """The shards stages 2-3 read: the target dataset for transfer, else the training data."""
  from musicrep_jax.data.shards import open_shards
  from musicrep_jax.training import run_data

  rate = extractor_config.data.sample_rate
  if target_data_dir:
    return open_shards(target_data_dir, expected_sample_rate=rate)
  if config.target_synthetic_seed >= 0:
    target = extractor_config.data.copy_and_resolve_references()
    target.synthetic.seed = config.target_synthetic_seed
    progress = bool(extractor_config.get("progress_bar", True))
    return open_shards(run_data.ensure_synthetic(target, progress=progress),
                       expected_sample_rate=rate)
  if config.get("transfer", False):
    raise UserError("The transfer variant needs --target-data-dir (the dataset the classifier "
                    "is trained on), or runlocal for the embedded corpus.")
  return run_data.resolve_shards(extractor_config, data_dir)


def report(results: dict, out: storage.AnyPath) -> dict:
  """Writes ``results`` to ``out``, prints the table; the selected row's summary for the CLI."""
  from musicrep_jax.systems.multiscale.classifier import OUTPUT_METRICS, format_table

  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=2))
  print(format_table(results["rows"]))
  print(f"Results: {out}")
  selected = results["selected"]
  first, second = OUTPUT_METRICS[selected.get("output", "sigmoid")]
  return {k: selected[k] for k in (first, second, f"{first}_std", "dims", "clips",
                                   "split")} | {"results": str(out)}


def run_multiscale(config, workdir: str | pathlib.Path, data_dir: Optional[str] = None,
                   target_data_dir: Optional[str] = None) -> dict:
  """Stages 1-3 into ``workdir`` (``extractors/``, ``features/``, ``results.json``); returns
  the selected classifier's summary (``report``)."""
  from musicrep_jax.systems.multiscale import classifier, features

  if not config.get("extractors"):
    raise UserError(f"{config.get('config_file', 'The config')} has no `extractors`; it is not "
                    f"a multiscale config.")
  workdir = storage.as_path(workdir)  # Local, or gs://...: the trainer writes the extractors.
  workdirs = train_extractors(config, workdir, data_dir)

  first = next(iter(config.extractors.values()))
  shards = target_shards(config, first, data_dir, target_data_dir)
  ex = config.extraction
  extractors = [features.load_extractor(d, name, ex.checkpoint, data_dir)
                for name, d in workdirs.items()]
  features_out = workdir / "features"
  print(f"Stage 2: extracting features of {shards.data_dir} into {features_out}", flush=True)
  with storage.local_dir(features_out) as features_dir:  # Remote: a local folder, copied up.
    meta = features.extract_features(
        extractors, shards, features_dir, splits=tuple(ex.splits), pooling=ex.pooling,
        segment_aggregation=ex.segment_aggregation, batch_size=ex.batch_size,
        max_segments=ex.max_segments, label_field=ex.label_field,
        progress=config.get("progress_bar", True))
    print(features.describe(meta))
    if storage.is_remote(features_out):  # Stage 2 kept even if stage 3 fails.
      storage.copy_tree(features_dir, features_out)

    print("Stage 3: global classifier" + (" and the comparison sweep" if config.sweep else ""),
          flush=True)
    results = classifier.run_table(features_dir, config, sweep=config.sweep,
                                   progress=config.get("progress_bar", True))
  results["extractors"] = {
      name: json.loads((d / "summary.json").read_text()).get("test", {})
      for name, d in workdirs.items()}
  results["transfer"] = str(shards.data_dir) if (target_data_dir or
                                                 config.target_synthetic_seed >= 0) else None
  for name, test in results["extractors"].items():
    if "roc_auc" in test:
      print(f"Local model {name} on its own training data's test split: "
            f"ROC-AUC {test['roc_auc']:.4f}")
  return report(results, workdir / "results.json")


@RUNNERS.register("multiscale")
def run(config, *, workdir: str, data_dir: Optional[str]) -> dict:
  """The ``"multiscale"`` runner: ``run_multiscale`` with the target dataset of the optional
  ``config.target_data_dir`` (``musicrep multiscale --target-data-dir``)."""
  return run_multiscale(config, workdir, data_dir, config.get("target_data_dir") or None)


def extract(workdirs: Sequence[str], out: str | pathlib.Path, *,
            names: Optional[Sequence[str]] = None, data_dir: Optional[str] = None,
            train_data_dir: Optional[str] = None, which: str = "best",
            splits: Sequence[str] = ("train", "validation", "test"), pooling: str = "max",
            segment_aggregation: str = "mean", batch_size: int = 64, max_segments: int = 0,
            label_field: str = "tags") -> dict:
  """Stage 2 alone (``musicrep extract-features``): trained workdirs (one scale each) over
  ``data_dir`` (default: the first workdir's training data) into ``out``; prints the levels
  and returns the command's summary.

  The extractors are restored with ``train_data_dir`` (the data they were trained on), by
  default ``data_dir``; for synthetic configs without either, the embedded corpus.
  """
  from musicrep_jax.systems.multiscale import features
  from musicrep_jax.training.run_data import resolve_shards

  if names and len(names) != len(workdirs):
    raise UserError(f"Give one --name per --workdir ({len(workdirs)}), got {len(names)}.")
  names = names or [None] * len(workdirs)
  restore_data = train_data_dir or data_dir
  extractors = [features.load_extractor(w, n, which, restore_data)
                for w, n in zip(workdirs, names)]
  shards = resolve_shards(extractors[0].config, data_dir)
  with storage.local_dir(out) as local:  # Remote: written locally, copied up at the end.
    meta = features.extract_features(
        extractors, shards, local, splits=list(splits), pooling=pooling,
        segment_aggregation=segment_aggregation, batch_size=batch_size,
        max_segments=max_segments, label_field=label_field)
  print(features.describe(meta))
  return {"out": str(out), "dims": meta["dims"], "extractors": len(meta["extractors"]),
          **{f"{split}_clips": n for split, n in meta["splits"].items()}}


def aggregate(features_dir: str | pathlib.Path, config, *, scales: Optional[str] = None,
              levels: Optional[str] = None, sweep: bool = False,
              out: Optional[str | pathlib.Path] = None) -> dict:
  """Stage 3 alone (``musicrep aggregate``): the classifier of ``config`` (its ``classifier``
  and ``selection``; ``scales`` / ``levels`` replace the selection) on ``features_dir``, with
  ``sweep`` every comparison row; writes ``out`` (default ``FEATURES/results.json``), prints
  the table and returns the selected row's summary."""
  from musicrep_jax.systems.multiscale import classifier

  if scales is not None:
    config.selection.scales = scales
  if levels is not None:
    config.selection.levels = levels
  with storage.local_dir(features_dir, download=True, upload=False) as local:  # Remote: a copy.
    results = classifier.run_table(local, config, sweep=sweep,
                                   progress=config.get("progress_bar", True))
  out = out or f"{os.fspath(features_dir).rstrip('/')}/results.json"
  return report(results, storage.as_path(out) if storage.is_remote(out) else pathlib.Path(out))
