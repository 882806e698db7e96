"""Transfer evaluation of trained representations (papers 2, 4, 11; papers.md 3.1, 3.3, 5.5, 12):
clip features of one or more training workdirs on a target dataset, a downstream classifier
trained on them ``trials`` times, the test metric as mean +- std. ``musicrep transfer`` runs it.

Steps (each reuses the multi-level feature machinery of ``systems/multiscale``):

1. Restore every workdir (any model family: SampleCNN, mel CNNs, resemul, an ``embedding_net``'s
   backbone, the audio branch of DCUE / zero-shot models; ``features.load_extractor``).
2. The target shards (``target_shards``): ``--target-data-dir`` (e.g. ``musicrep prepare gtzan``),
   or for a workdir trained on the embedded corpus, that corpus rendered with another seed as a
   stand-in (other tracks, the same labels; as ``configs/multiscale_mtat.py:transfer,runlocal``).
3. Clip features (``features.extract_features``): each clip tiled into non-overlapping segments
   of the model's input (at most ``max_segments``), every level max-pooled over time per
   segment, averaged over the clip's segments; the protocol's ``levels`` are kept.
4. Labels: ``label_field`` of the records: multi-hot ``tags`` (tagging: sigmoid, macro
   ROC-AUC / PR-AUC), one-hot ``tags`` (GTZAN genres: softmax, accuracy) or an integer field
   such as the embedded corpus' ``genre`` (made one-hot here; softmax). ``output="auto"``
   picks softmax when the field is an integer or every clip of every split has exactly one
   tag (or the builder marked the data ``single_label``), else sigmoid.
5. ``classifier.run_selection``: standardise, train ``trials`` classifiers with seeds
   ``seed .. seed + trials - 1``, select each one's epoch by validation loss, test each; the
   mean and standard deviation over trials.

Protocols (``PROTOCOLS``; every field overridable, ``--config.classifier.trials=3``):

* ``paper4`` (papers.md 5.5, ``run_gtzan_dnn.py`` / ``encoding_cnn.py`` of
  ``jongpillee/ismir2018-artist``): the last level only (the DCNN's 256-d conv5 output after
  BN + ReLU), max over time, averaged over at most **10** segments; one global mean/std
  scalar of the training features; a single ``Dense(C)`` softmax (no hidden layer, the only
  variant the script's loop runs); ``SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True)``,
  batch 16, up to 1,000 epochs, early stopping with patience 8 on validation loss and the best
  validation-loss weights reloaded for the test (its ``ModelCheckpoint(save_best_only)``),
  **10 trials**, top-1 accuracy. Minibatches are reshuffled every epoch (as Keras' ``fit``
  does) with the trial's seed; the Keras trials share one ``np.random.seed(0)`` stream.
* ``paper2`` (papers.md 3.1, 3.3: the global model of multi-level (+ multi-scale) features,
  GTZAN fault-filtered accuracy 0.720; also paper 11's supervised row, 0.7203): every level of
  every workdir (repeat ``--workdir`` for several scales), all segments, per-dimension
  standardisation, two ReLU layers of 512 with dropout 0.5, Adam 1e-3, batch 64, patience 20
  (``systems/multiscale/classifier.py``'s choices; the paper's DNN details are [unknown]),
  10 trials (the paper's trial count is [unknown]).

Paper 11's zero-shot GTZAN annotation accuracy (0.7310) trains no classifier: it is the zero-shot
model's own evaluation (``musicrep eval`` of a zero-shot workdir). ``musicrep transfer`` on a
zero-shot workdir evaluates its audio branch's conv features like any other representation.

Output (``out``, local or ``gs://...``): ``features/`` as ``musicrep extract-features`` writes it
and ``results.json`` (the protocol, the target, every trial).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Optional, Sequence

import ml_collections
import numpy as np

from musicrep_jax import config_loading, storage
from musicrep_jax.errors import UserError

OUTPUTS = ("auto", "sigmoid", "softmax")
STAND_IN_SEED = 1  # Seed of the embedded corpus rendered as the stand-in target.

# Shared by every protocol; the classifier fields are ``ClassifierSettings``'.
_COMMON = dict(
    scales="all",             # Workdirs (names or indices) whose features are used.
    pooling="max",            # Over time per segment (papers.md 3.1, 5.5).
    segment_aggregation="mean",  # Over a clip's segments (papers.md 3.1, 5.5).
    batch_size=64,            # Segments per jitted extraction batch.
    checkpoint="best",        # Which checkpoint of each workdir: "best" or "latest".
    label_field="tags",       # Record field with the labels ("tags", or e.g. "genre").
    output="auto",            # "auto", "sigmoid" (multi-label) or "softmax" (single-label).
    stand_in_seed=STAND_IN_SEED,  # Embedded-corpus stand-in target: render seed.
    train_split="train", eval_split="validation", test_split="test",
    progress_bar=True,
)
PROTOCOLS = {
    "paper4": dict(
        _COMMON, levels="-1", max_segments=10,
        classifier=dict(hidden_units=(), dropout_rate=0.0, learning_rate=0.01,
                        weight_decay=0.0, batch_size=16, max_epochs=1000, patience=8,
                        standardize="global", trials=10, seed=0, optimizer="sgd",
                        momentum=0.9, lr_decay=1e-6)),
    "paper2": dict(
        _COMMON, levels="all", max_segments=0,
        classifier=dict(hidden_units=(512, 512), dropout_rate=0.5, learning_rate=1e-3,
                        weight_decay=0.0, batch_size=64, max_epochs=200, patience=20,
                        standardize="per_dim", trials=10, seed=0, optimizer="adam",
                        momentum=0.9, lr_decay=0.0)),
}


def protocol_config(name: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """The ``PROTOCOLS[name]`` settings as a ConfigDict with ``--config.KEY=VALUE`` overrides."""
  if name not in PROTOCOLS:
    raise UserError(f"Unknown transfer protocol {name!r}; choose one of "
                    f"{', '.join(PROTOCOLS)}.")
  config = ml_collections.ConfigDict(dict(PROTOCOLS[name], protocol=name))
  config_loading.apply_overrides(config, overrides)
  if config.output not in OUTPUTS:
    raise UserError(f"config.output={config.output!r} is not one of {', '.join(OUTPUTS)}.")
  return config


def target_shards(extractor_config, target_data_dir: Optional[str], stand_in_seed: int):
  """The target dataset: ``target_data_dir`` (a remote one staged to this host), else for a
  workdir trained on the embedded corpus that corpus rendered with ``stand_in_seed``.
  Returns ``(shards, stand_in)``."""
  from musicrep_jax.systems.multiscale import pipeline
  from musicrep_jax.training import run_data

  if target_data_dir:
    if storage.is_remote(target_data_dir):
      target_data_dir = str(run_data.stage_data_dir(target_data_dir))
    elif not os.path.isdir(target_data_dir):
      raise UserError(f"--target-data-dir {target_data_dir} does not exist; prepare the target "
                      f"dataset with `musicrep prepare` (e.g. gtzan).")
  elif extractor_config.data.name != "synthetic":
    raise UserError(f"The workdir was trained on prepared shards ({extractor_config.data.name}); "
                    "pass --target-data-dir with the target dataset (e.g. `musicrep prepare "
                    "gtzan`).")
  stand_in = ml_collections.ConfigDict({"target_synthetic_seed": int(stand_in_seed),
                                        "transfer": True})
  shards = pipeline.target_shards(stand_in, extractor_config, None, target_data_dir)
  return shards, not target_data_dir


def _label_kind(shards, features_dir: pathlib.Path, splits: Sequence[str],
                label_field: str) -> tuple[str, int]:
  """``("int", classes)`` for an integer field, ``("one_hot" | "multi_hot", tags)`` for tags."""
  from musicrep_jax.systems.multiscale import features
  from musicrep_jax.tasks.classification import count_classes

  labels = [features.read_features(features_dir, s)["labels"] for s in splits]
  if labels[0].ndim == 1:
    return "int", count_classes(shards, label_field)
  if labels[0].ndim != 2:
    raise UserError(f"The {label_field!r} field is neither a class id nor a tag vector.")
  one_hot = shards.metadata.get("single_label", False) or all(
      np.all(np.sum(y != 0, axis=-1) == 1) for y in labels)
  return ("one_hot" if one_hot else "multi_hot"), labels[0].shape[1]


def one_hot_labels(features_dir: pathlib.Path, splits: Sequence[str], num_classes: int) -> None:
  """Rewrites each split's integer labels ``[clips]`` as one-hot ``[clips, num_classes]``."""
  from musicrep_jax.evaluators.classification import check_class_ids

  for split in splits:
    path = features_dir / f"{split}_labels.npy"
    ids = check_class_ids(np.load(path).astype(np.int64), num_classes, f"the {split} labels")
    np.save(path, np.eye(num_classes, dtype=np.float32)[ids])


def choose_output(requested: str, kind: str) -> str:
  """``config.output`` against the labels: ``auto`` -> softmax for single-label, else sigmoid;
  a sigmoid on integer class ids, or a softmax on multi-hot tags, is a ``UserError``."""
  single = kind in ("int", "one_hot")
  if requested == "auto":
    return "softmax" if single else "sigmoid"
  if requested == "softmax" and not single:
    raise UserError("config.output='softmax' needs one label per clip, but the clips have "
                    "several tags; use 'sigmoid' or an integer --label-field.")
  return requested


def _check_out(out: str) -> None:
  path = storage.as_path(out)
  if (path / "config.json").exists() or (path / "checkpoints").is_dir():
    raise UserError(f"--out {out} is a training workdir; choose a new folder (default: "
                    f"WORKDIR/transfer/PROTOCOL_TARGET).")


def default_out(workdir: str, protocol: str, target_data_dir: Optional[str],
                stand_in_seed: int) -> str:
  """``WORKDIR/transfer/<protocol>_<target folder name>`` (``synthetic_seed<k>`` for the
  stand-in)."""
  target = (os.path.basename(os.path.normpath(target_data_dir)) if target_data_dir
            else f"synthetic_seed{stand_in_seed}")
  return f"{os.fspath(workdir).rstrip('/')}/transfer/{protocol}_{target}"


def run_transfer(workdirs: Sequence[str], config: ml_collections.ConfigDict, *,
                 target_data_dir: Optional[str] = None, train_data_dir: Optional[str] = None,
                 names: Optional[Sequence[str]] = None, out: Optional[str] = None) -> dict:
  """The protocol ``config`` (``protocol_config``) for ``workdirs`` on the target; writes
  ``out`` (module docstring) and returns the summary: the headline metric's mean and ``_std``
  over trials, the second metric, ``trials``, ``dims``, ``clips``, ``output``, ``results``."""
  from musicrep_jax.systems.multiscale import classifier, features

  if not workdirs:
    raise UserError("Give at least one --workdir.")
  if names and len(names) != len(workdirs):
    raise UserError(f"Give one --name per --workdir ({len(workdirs)}), got {len(names)}.")
  settings = classifier.settings_from_config(config.classifier)  # Bad keys fail before work.
  out = out or default_out(workdirs[0], config.protocol, target_data_dir, config.stand_in_seed)
  _check_out(out)
  names = names or [None] * len(workdirs)
  # Restored on the data they were trained on (recorded in the workdir), not on the target.
  extractors = [features.load_extractor(w, n, config.checkpoint, train_data_dir)
                for w, n in zip(workdirs, names)]
  shards, stand_in = target_shards(extractors[0].config, target_data_dir, config.stand_in_seed)
  splits = (config.train_split, config.eval_split, config.test_split)
  progress = config.progress_bar
  print(f"Transfer ({config.protocol}): {len(extractors)} workdir(s) -> {shards.data_dir}"
        + (" (the embedded corpus rendered with another seed stands in)" if stand_in else ""),
        flush=True)
  with storage.local_dir(out) as local:  # Remote: written locally, copied up at the end.
    local = pathlib.Path(local)
    features_dir = local / "features"
    meta = features.extract_features(
        extractors, shards, features_dir, splits=splits, pooling=config.pooling,
        segment_aggregation=config.segment_aggregation, batch_size=config.batch_size,
        max_segments=config.max_segments, label_field=config.label_field, progress=progress)
    print(features.describe(meta))
    kind, num_classes = _label_kind(shards, features_dir, splits, config.label_field)
    if kind == "int":
      one_hot_labels(features_dir, splits, num_classes)
    output = choose_output(config.output, kind)
    settings = classifier.settings_from_config(dict(config.classifier.to_dict(), output=output))
    print(f"Downstream classifier: {output}, {settings.trials} trial(s), seeds "
          f"{settings.seed}..{settings.seed + settings.trials - 1}", flush=True)
    result = classifier.run_selection(
        features_dir, config.scales, config.levels, settings, train_split=config.train_split,
        eval_split=config.eval_split, test_split=config.test_split, progress=progress,
        name=config.protocol)
    results = {"protocol": config.to_dict(), "target": str(shards.data_dir),
               "stand_in": stand_in, "label_kind": kind, "classes": num_classes,
               "workdirs": [str(e.workdir) for e in extractors],
               "steps": [e.step for e in extractors], "result": result}
    (local / "results.json").write_text(json.dumps(results, indent=2, default=str))
  print(classifier.format_table([result]))
  first, second = classifier.OUTPUT_METRICS[output]
  print(f"{first}: {result[first]:.4f} ± {result[first + '_std']:.4f} over "
        f"{len(result['trials'])} trial(s) ({config.test_split}, {result['clips']} clips)")
  return {first: result[first], f"{first}_std": result[first + "_std"],
          second: result[second], "trials": len(result["trials"]), "dims": result["dims"],
          "clips": result["clips"], "split": config.test_split, "output": output,
          "protocol": config.protocol, "target": str(shards.data_dir),
          "results": f"{os.fspath(out).rstrip('/')}/results.json"}
