"""The transfer protocols (``musicrep_jax.systems.transfer``; papers.md 3.3, 5.5): the protocol
settings, how labels choose softmax or sigmoid, and paper 4's downstream classifier (one softmax
layer, SGD with Nesterov momentum and Keras decay, patience 8) learning Gaussian classes and
stopping early."""

import json

import numpy as np
import pytest

from musicrep_jax.commands import transfer as transfer_command
from musicrep_jax.data.shards import open_shards
from musicrep_jax.errors import UserError
from musicrep_jax.systems import transfer
from musicrep_jax.systems.multiscale import classifier


def test_protocols_are_the_papers():
  assert set(transfer_command.PROTOCOL_NAMES) == set(transfer.PROTOCOLS)
  p4 = transfer.protocol_config("paper4")
  assert (p4.levels, p4.max_segments, p4.pooling, p4.segment_aggregation) == ("-1", 10, "max",
                                                                               "mean")
  c = p4.classifier
  assert (c.hidden_units, c.standardize, c.optimizer, c.learning_rate, c.momentum, c.lr_decay,
          c.batch_size, c.patience, c.trials) == ((), "global", "sgd", 0.01, 0.9, 1e-6, 16, 8, 10)
  p2 = transfer.protocol_config("paper2", ["--config.classifier.trials=3", "--config.levels=all"])
  assert p2.classifier.trials == 3 and p2.classifier.hidden_units == (512, 512)
  classifier.settings_from_config(p2.classifier)  # Every field is a ClassifierSettings field.
  for name, overrides, message in [("paper9", [], "Unknown transfer protocol"),
                                   ("paper4", ["--config.output=tanh"], "not one of auto"),
                                   ("paper4", ["--config.classifier.x=1"], "Unknown config key")]:
    with pytest.raises(UserError, match=message):
      transfer.protocol_config(name, overrides)


def _write_labels(folder, labels: dict) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for split, y in labels.items():
    np.save(folder / f"{split}_features.npy", np.zeros((len(y), 2), np.float32))
    np.save(folder / f"{split}_labels.npy", np.asarray(y, np.float32))
    np.save(folder / f"{split}_clip_ids.npy", np.arange(len(y)))


def test_labels_choose_softmax_or_sigmoid(tmp_path, tiny_data_dir):
  splits = ("train", "test")
  shards = open_shards(tiny_data_dir)  # The embedded corpus: 8 genre_names.
  _write_labels(tmp_path / "int", {"train": [0, 7, 1], "test": [1, 1]})
  assert transfer._label_kind(shards, tmp_path / "int", splits, "genre") == ("int", 8)
  transfer.one_hot_labels(tmp_path / "int", splits, 8)
  np.testing.assert_array_equal(np.load(tmp_path / "int" / "train_labels.npy"),
                                np.eye(8)[[0, 7, 1]])
  _write_labels(tmp_path / "neg", {"train": [0, -1]})
  with pytest.raises(UserError, match="class -1"):
    transfer.one_hot_labels(tmp_path / "neg", ("train",), 3)
  _write_labels(tmp_path / "one", {"train": np.eye(4)[[0, 3]], "test": np.eye(4)[[2]]})
  assert transfer._label_kind(shards, tmp_path / "one", splits, "tags") == ("one_hot", 4)
  _write_labels(tmp_path / "multi", {"train": [[1, 1, 0], [0, 1, 0]], "test": [[0, 0, 1]]})
  assert transfer._label_kind(shards, tmp_path / "multi", splits, "tags") == ("multi_hot", 3)
  assert transfer.choose_output("auto", "int") == transfer.choose_output("auto", "one_hot") \
      == "softmax"
  assert transfer.choose_output("auto", "multi_hot") == "sigmoid"
  assert transfer.choose_output("sigmoid", "one_hot") == "sigmoid"
  with pytest.raises(UserError, match="needs one label per clip"):
    transfer.choose_output("softmax", "multi_hot")


def test_paper4_classifier_learns_and_stops_early(tmp_path):
  """10 overlapping Gaussian classes in 16 dims (shifted and scaled, so the global
  standardisation matters): paper 4's classifier reaches > 0.8 test accuracy in each of 2
  seeded trials (measured 0.88 and 0.90; chance 0.1) and early-stops with the patience of 8."""
  rng = np.random.default_rng(0)
  centres = rng.normal(0, 1.0, (10, 16))
  labels = {"train": 300, "validation": 60, "test": 100}
  for split, n in labels.items():
    y = rng.integers(0, 10, n)
    x = 40.0 + 5.0 * (centres[y] + rng.normal(size=(n, 16)))
    np.save(tmp_path / f"{split}_features.npy", x.astype(np.float32))
    np.save(tmp_path / f"{split}_labels.npy", np.eye(10, dtype=np.float32)[y])
    np.save(tmp_path / f"{split}_clip_ids.npy", np.arange(n))
  (tmp_path / "features.json").write_text(json.dumps({
      "label_field": "tags",
      "extractors": [{"name": "x", "levels": [{"name": "l", "channels": 16, "start": 0,
                                                "stop": 16}]}]}))
  config = transfer.protocol_config("paper4", ["--config.classifier.trials=2"])
  settings = classifier.settings_from_config(dict(config.classifier.to_dict(),
                                                  output="softmax"))
  result = classifier.run_selection(tmp_path, "all", "-1", settings, progress=False)
  accuracies = [t["test_accuracy"] for t in result["trials"]]
  assert min(accuracies) > 0.8, result["trials"]
  assert result["accuracy"] == pytest.approx(np.mean(accuracies))
  assert result["accuracy_std"] == pytest.approx(np.std(accuracies))
  assert all(t["epochs"] - t["best_epoch"] == 8 and t["epochs"] < 1000
             for t in result["trials"]), result["trials"]  # Stopped by the patience.
  assert len({t["val_loss"] for t in result["trials"]}) == 2  # The seeds differ.
  with pytest.raises(UserError, match="exactly one tag per clip"):
    np.save(tmp_path / "test_labels.npy", np.ones((100, 10), np.float32))
    classifier.run_selection(tmp_path, "all", "-1", settings, progress=False)
