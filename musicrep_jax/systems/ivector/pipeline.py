"""The whole paper-8 system from a config: fit on the train split, save, load, evaluate.

``fit(config, workdir)``:

1. MFCCs of the train / validation / test splits (``features.split_features``);
2. UBM (``gmm.train_ubm``) on the train frames -> ``ubm.npz``;
3. Baum-Welch statistics, total variability (``total_variability``) -> ``tv.npz``;
4. i-vectors of every split, back end on the train i-vectors -> ``backend_ivector.npz``;
5. hybrid (``config.hybrid.enabled``): the DCNN workdir (trained here with the config's trainer
   keys into ``<workdir>/dcnn`` unless ``config.hybrid.dcnn_workdir`` is set), its clip
   embeddings, a back end on them (``backend_dcnn.npz``), the feature-fusion back end
   (``backend_fused.npz``) and the score-fusion weight chosen on the validation split
   (``fusion.json``);
6. metrics on the validation and test splits -> ``results.json``.

``run`` (the ``"ivector"`` runner: ``musicrep train --config ivector_hybrid``, alias ``musicrep
ivector fit``) fits and reports the test split. ``evaluate(workdir, split)`` loads the saved
models and recomputes everything for ``split`` from its audio. Accuracy is top-1 artist
identification among the training artists (closed set); ``chance`` is one over their number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import pathlib
import time
from typing import Optional

import jax.numpy as jnp
import ml_collections
import numpy as np

from musicrep_jax import config_loading, storage
from musicrep_jax.errors import UserError
from musicrep_jax.registry import RUNNERS
from musicrep_jax.systems.ivector import backend as backend_lib
from musicrep_jax.systems.ivector import features as features_lib
from musicrep_jax.systems.ivector import frames as frames_lib
from musicrep_jax.systems.ivector import gmm as gmm_lib
from musicrep_jax.systems.ivector import hybrid as hybrid_lib
from musicrep_jax.systems.ivector import mfcc as mfcc_lib
from musicrep_jax.systems.ivector import total_variability as tv_lib

MODELS_DIR = "ivector"


def _dataclass_from(cls, section: ml_collections.ConfigDict, name: str):
  return config_loading.build_from_config(cls, section,
                                          f"config.{name} does not fit {cls.__name__}")


@dataclasses.dataclass(frozen=True)
class Settings:
  """The typed sections of an i-vector config."""

  mfcc: mfcc_lib.MfccConfig
  ubm: gmm_lib.UbmConfig
  tv: tv_lib.TvConfig
  backend: backend_lib.BackendConfig

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "Settings":
    settings = cls(mfcc=_dataclass_from(mfcc_lib.MfccConfig, config.mfcc, "mfcc"),
                   ubm=_dataclass_from(gmm_lib.UbmConfig, config.ubm, "ubm"),
                   tv=_dataclass_from(tv_lib.TvConfig, config.tv, "tv"),
                   backend=_dataclass_from(backend_lib.BackendConfig, config.backend, "backend"))
    if settings.backend.scoring not in backend_lib.SCORINGS:
      raise UserError(f"config.backend.scoring must be one of {backend_lib.SCORINGS}, got "
                      f"{settings.backend.scoring!r}.")
    if config.hybrid.fusion not in hybrid_lib.FUSIONS:
      raise UserError(f"config.hybrid.fusion must be one of {hybrid_lib.FUSIONS}, got "
                      f"{config.hybrid.fusion!r}.")
    return settings


def _save(path: pathlib.Path, arrays: dict) -> None:
  np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})


def _load(path: storage.AnyPath) -> dict:
  if not path.exists():
    raise UserError(f"{path} is missing; run `musicrep ivector fit` for this workdir first.")
  with np.load(io.BytesIO(path.read_bytes()) if storage.is_remote(path) else path) as f:
    return {k: f[k] for k in f.files}


def _split_ivectors(config, settings: Settings, shards, split: str, ubm, t_matrix):
  """-> (i-vectors ``[n, R]``, labels ``[n]``) of a split, from its audio."""
  clips, labels = features_lib.split_features(
      shards.source(split), settings.mfcc, shards.sample_rate, label_field=config.label_field,
      clips_per_batch=config.clips_per_batch)
  pieces = frames_lib.cut_into_pieces(clips, settings.ubm.piece_frames)
  stats = tv_lib.baum_welch_statistics(ubm, pieces, settings.ubm.pieces_per_batch)
  return tv_lib.extract_ivectors(ubm, t_matrix, stats, settings.tv.clips_per_batch), labels


def _dcnn_workdir(config, workdir: storage.AnyPath) -> storage.AnyPath:
  named = config.hybrid.dcnn_workdir
  if named:
    return storage.as_path(named) if storage.is_remote(named) else pathlib.Path(named).expanduser()
  return workdir / "dcnn"


def _ensure_dcnn(config, workdir: pathlib.Path, data_dir: Optional[str]) -> pathlib.Path:
  """The DCNN workdir: ``config.hybrid.dcnn_workdir``, or ``<workdir>/dcnn`` trained (resumed,
  or reused when finished) with the config's own trainer keys."""
  from musicrep_jax.training import trainer

  dcnn_dir = _dcnn_workdir(config, workdir)
  if config.hybrid.dcnn_workdir and not (dcnn_dir / "config.json").exists():
    raise UserError(f"config.hybrid.dcnn_workdir={dcnn_dir} is not a training workdir.")
  if not config.hybrid.dcnn_workdir:
    print(f"Training the artist DCNN into {dcnn_dir} ...", flush=True)
    summary = trainer.train(config, dcnn_dir, data_dir)
    if "stopped_by" in summary:
      raise UserError(f"The DCNN run in {dcnn_dir} was stopped; rerun to resume it.")
  return dcnn_dir


def _system_metrics(scores: dict, labels: np.ndarray, class_ids: np.ndarray) -> dict:
  out = {}
  for name, s in scores.items():
    predicted = class_ids[np.argmax(s, axis=1)]
    out[f"{name}_accuracy"] = float(np.mean(predicted == labels))
  out["clips"] = int(len(labels))
  out["chance"] = 1.0 / len(class_ids)
  return out


class Models:
  """Fitted models of a workdir (``<workdir>/ivector/*.npz``)."""

  def __init__(self, directory: pathlib.Path):
    self.dir = directory

  def save(self, name: str, arrays: dict) -> None:
    self.dir.mkdir(parents=True, exist_ok=True)
    _save(self.dir / f"{name}.npz", arrays)

  def load(self, name: str) -> dict:
    return _load(self.dir / f"{name}.npz")

  def ubm(self) -> gmm_lib.DiagGMM:
    return gmm_lib.DiagGMM.from_numpy(self.load("ubm"))

  def t_matrix(self) -> jnp.ndarray:
    return jnp.asarray(self.load("tv")["t_matrix"])


def score_split(config, models: Models, vectors: dict) -> dict:
  """Scores of every system on one split's vectors (``ivectors``, and for the hybrid
  ``embedding`` / ``probs``) -> metrics."""
  iv_backend = models.load("backend_ivector")
  class_ids = iv_backend["class_ids"]
  scores = {"ivector": backend_lib.score(iv_backend, vectors["ivectors"])}
  if config.hybrid.enabled:
    dcnn_backend = models.load("backend_dcnn")
    fused_backend = models.load("backend_fused")
    fusion = json.loads((models.dir / "fusion.json").read_text())
    feature_params = models.load("fusion_features")
    scores["dcnn"] = backend_lib.score(dcnn_backend, vectors["embedding"])
    if "probs" in vectors:
      # The network's own softmax over artists (columns = artist ids of the DCNN's task).
      scores["dcnn_softmax"] = np.asarray(vectors["probs"])[:, class_ids]
    scores["hybrid_score"] = hybrid_lib.fuse_scores(scores["ivector"], scores["dcnn"],
                                                    fusion["weight"])
    scores["hybrid_feature"] = backend_lib.score(
        fused_backend, hybrid_lib.fusion_features(feature_params, vectors["ivectors"],
                                                  vectors["embedding"]))
    scores["hybrid"] = scores[f"hybrid_{config.hybrid.fusion}"]
  metrics = _system_metrics(scores, vectors["labels"], class_ids)
  if config.hybrid.enabled:
    metrics["fusion_weight"] = fusion["weight"]
  return metrics


def _check_labels(a: np.ndarray, b: np.ndarray, split: str) -> None:
  if not np.array_equal(a, b):
    raise UserError(f"The DCNN workdir's {split!r} clips are not the i-vector data's clips "
                    "(labels differ in order); give both the same --data-dir.")


@contextlib.contextmanager
def _timed(timing: dict, name: str):
  start = time.perf_counter()
  yield
  timing[name] = timing.get(name, 0.0) + time.perf_counter() - start


def fit(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
        data_dir: Optional[str] = None) -> dict:
  """Fits everything on the train split. A remote ``workdir`` (``gs://...``): the models and
  results are written in a local folder and copied up at the end (``storage.local_dir``); the
  DCNN trains straight into ``<workdir>/dcnn`` (the trainer writes remote workdirs).

  Returns:
    ``{eval split: metrics, test split: metrics, "timing": {phase: seconds}}``.
  """
  settings = Settings.from_config(config)
  if config.hybrid.enabled and not config.hybrid.dcnn_workdir:
    config_loading.validate(config)  # The DCNN trains with the config's trainer keys.
  with storage.local_dir(workdir) as local:
    return _fit(config, settings, local.absolute(), storage.as_path(workdir), data_dir)


def _fit(config: ml_collections.ConfigDict, settings: Settings, out: pathlib.Path,
         workdir: storage.AnyPath, data_dir: Optional[str]) -> dict:
  """``fit``: the files into the local folder ``out``, the DCNN into ``workdir``/dcnn."""
  from musicrep_jax.training.run_data import resolve_shards

  (out / "ivector_config.json").write_text(config_loading.to_json(config))
  models = Models(out / MODELS_DIR)
  shards = resolve_shards(config, data_dir)
  splits = (config.data.train_split, config.data.eval_split, config.data.test_split)
  for split in splits:
    if split not in shards.split_sizes:
      raise UserError(f"Split {split!r} is not in {shards.dataset_dir}; the i-vector system "
                      f"needs train, validation and test splits ({', '.join(splits)}).")

  timing = {}
  with _timed(timing, "train_mfcc_s"):
    train_clips, train_labels = features_lib.split_features(
        shards.source(splits[0]), settings.mfcc, shards.sample_rate,
        label_field=config.label_field, clips_per_batch=config.clips_per_batch)
    pieces = frames_lib.cut_into_pieces(train_clips, settings.ubm.piece_frames)
  with _timed(timing, "ubm_s"):
    ubm, ubm_history = gmm_lib.train_ubm(pieces, settings.ubm)
  models.save("ubm", ubm.to_numpy())
  with _timed(timing, "total_variability_s"):
    stats = tv_lib.baum_welch_statistics(ubm, pieces, settings.ubm.pieces_per_batch)
    t_matrix, tv_history = tv_lib.train_total_variability(ubm, stats, settings.tv)
  models.save("tv", {"t_matrix": t_matrix})
  (models.dir / "history.json").write_text(json.dumps({"ubm": ubm_history, "tv": tv_history}))

  with _timed(timing, "ivectors_s"):
    vectors = {splits[0]: {"ivectors": tv_lib.extract_ivectors(ubm, t_matrix, stats,
                                                               settings.tv.clips_per_batch),
                           "labels": train_labels}}
    for split in splits[1:]:
      iv, labels = _split_ivectors(config, settings, shards, split, ubm, t_matrix)
      vectors[split] = {"ivectors": iv, "labels": labels}
  train = vectors[splits[0]]
  models.save("backend_ivector", backend_lib.fit_backend(train["ivectors"], train["labels"],
                                                         settings.backend))
  if config.hybrid.enabled:
    with _timed(timing, "dcnn_training_s"):
      dcnn_dir = _ensure_dcnn(config, workdir, data_dir)
    with _timed(timing, "dcnn_embeddings_s"):
      deep = hybrid_lib.dcnn_clip_outputs(dcnn_dir, splits, data_dir, config.hybrid.checkpoint)
    for split in splits:
      _check_labels(deep[split].pop("labels", vectors[split]["labels"]),
                    vectors[split]["labels"], split)
      vectors[split].update(deep[split])
    _fit_hybrid(config, settings, models, vectors, splits)
  results = {split: score_split(config, models, vectors[split]) for split in splits[1:]}
  (out / "results.json").write_text(json.dumps(dict(results, timing=timing), indent=2))
  return dict(results, timing=timing)


@RUNNERS.register("ivector")
def run(config: ml_collections.ConfigDict, *, workdir: str | pathlib.Path,
        data_dir: Optional[str] = None) -> dict:
  """``fit`` into ``workdir``: the test split's metrics with ``split`` and ``workdir``, and
  ``report`` (every split's metrics and the seconds per phase, for the command to print)."""
  results = fit(config, workdir, data_dir)
  timing = results.pop("timing")
  report = [(f"{split} split:", metrics) for split, metrics in results.items()]
  return dict(results[config.data.test_split], split=config.data.test_split,
              workdir=str(workdir), report=report + [("seconds per phase:", timing)])


def _fit_hybrid(config, settings: Settings, models: Models, vectors: dict, splits) -> None:
  train, val = vectors[splits[0]], vectors[splits[1]]
  dcnn_backend = backend_lib.fit_backend(train["embedding"], train["labels"], settings.backend)
  models.save("backend_dcnn", dcnn_backend)
  feature_params = hybrid_lib.fit_fusion_features(train["ivectors"], train["embedding"])
  models.save("fusion_features", feature_params)
  models.save("backend_fused", backend_lib.fit_backend(
      hybrid_lib.fusion_features(feature_params, train["ivectors"], train["embedding"]),
      train["labels"], settings.backend))
  iv_backend = models.load("backend_ivector")
  weight = hybrid_lib.choose_fusion_weight(
      backend_lib.score(iv_backend, val["ivectors"]),
      backend_lib.score(dcnn_backend, val["embedding"]), val["labels"],
      iv_backend["class_ids"], config.hybrid.weight_grid)
  (models.dir / "fusion.json").write_text(json.dumps({"weight": weight, "chosen_on": splits[1]}))


def evaluate(workdir: str | pathlib.Path, split: str = "test",
             data_dir: Optional[str] = None) -> dict:
  """Loads a fitted workdir and scores every system on ``split`` from its audio."""
  from musicrep_jax.training.run_data import resolve_shards

  workdir = storage.as_path(workdir)  # Local or remote: read in place.
  config_file = workdir / "ivector_config.json"
  if not config_file.exists():
    raise UserError(f"{workdir} has no ivector_config.json; run `musicrep ivector fit` first.")
  config = config_loading.from_json(config_file.read_text())
  settings = Settings.from_config(config)
  models = Models(workdir / MODELS_DIR)
  shards = resolve_shards(config, data_dir)
  iv, labels = _split_ivectors(config, settings, shards, split, models.ubm(), models.t_matrix())
  vectors = {"ivectors": iv, "labels": labels}
  if config.hybrid.enabled:
    deep = hybrid_lib.dcnn_clip_outputs(_dcnn_workdir(config, workdir), (split,), data_dir,
                                        config.hybrid.checkpoint)[split]
    _check_labels(deep.pop("labels", labels), labels, split)
    vectors.update(deep)
  return dict(score_split(config, models, vectors), split=split)
