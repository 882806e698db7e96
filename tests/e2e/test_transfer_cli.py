"""`musicrep transfer` (papers 2, 4, 11; issue 18 item 5): clip features of a workdir of each model
family (a SampleCNN, paper 4's mel DCNN, an ``embedding_net``) on the embedded corpus, the
papers' downstream classifier trained over seeded trials, mean ± std reported.

The workdirs are untrained (``tests.helpers.make_workdir`` / ``make_config_workdir``: the
initial state with randomised BatchNorm statistics), so the features are random-convolution
features; the target is the prepared embedded corpus (``tiny_data_dir``, 96 / 12 / 12 clips), or
its stand-in rendering with another seed. What is checked: the protocol (levels, segments,
softmax or sigmoid), the trial statistics against ``results.json``, distinct seeded trials, one
learning threshold (the multi-scale paper-2 classifier beats chance on the 24 tags), and one-line
errors that leave workdirs alone."""

import json

import numpy as np
import pytest

from musicrep_jax import cli
from musicrep_jax.systems.multiscale import features as fx
from tests.configs import tiny as tiny_config
from tests.helpers import lazy_workdirs, make_config_workdir, save_untrained_workdir

MEL_DCNN = dict(n_fft=256, hop_length=128, n_mels=16, channels=(8, 8, 8, 8, 16))  # 16,512 samples
ARTIST_DCNN = dict(num_frames=16, n_fft=256, hop_length=128, n_mels=16, channels=(8, 8, 16),
                   kernel_sizes=(3, 3, 1), pool_sizes=(2, 2, 1))
FAMILIES = {
    "sample_cnn": None,  # tests/configs/tiny.py: a 3^4 SampleCNN, 8-16 channels.
    "mel_dcnn": ("mel_dcnn_mtat:runlocal", MEL_DCNN),
    "embedding_net": ("artist_dcnn:runlocal", dict(backbone_kwargs=ARTIST_DCNN)),
}
QUIET = ["--config.progress_bar=false"]


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory, tiny_data_dir):
  def make(name, path):
    if FAMILIES[name] is None:
      config = tiny_config.get_config()
      # The stand-in target renders the embedded corpus of this config with another seed: small.
      config.data.synthetic.update(dict(num_clips=60, clip_seconds=2.0))
      return save_untrained_workdir(path, config, tiny_data_dir)
    spec, kwargs = FAMILIES[name]
    return make_config_workdir(path, tiny_data_dir, spec, **kwargs)

  return lazy_workdirs(tmp_path_factory, make)


def transfer(args, capsys) -> dict:
  """``musicrep transfer ARGS``; returns its JSON line (asserts exit status 0)."""
  capsys.readouterr()
  assert cli.main(["transfer", *args, *QUIET]) == 0, capsys.readouterr().err
  return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def check_trials(line: dict, out, metric: str, trials: int) -> dict:
  """The JSON line's mean ± std are those of the trials in results.json; the trials differ."""
  saved = json.loads((out / "results.json").read_text())
  values = [t[f"test_{metric}"] for t in saved["result"]["trials"]]
  assert len(values) == line["trials"] == trials
  assert line[metric] == pytest.approx(np.mean(values))
  assert line[f"{metric}_std"] == pytest.approx(np.std(values))
  assert len({t["val_loss"] for t in saved["result"]["trials"]}) == trials  # Seeded apart.
  assert all(t["best_epoch"] >= 1 for t in saved["result"]["trials"])
  return saved


@pytest.mark.parametrize("family,last_level,stand_in", [
    ("embedding_net", "backbone/ConvBNReLU_2", False),
    ("sample_cnn", "ConvBNReLU_5", True),
])
def test_paper4_protocol_genre_accuracy(family, last_level, stand_in, workdirs, tiny_data_dir,
                                        tmp_path, capsys):
  """Paper 4's protocol: the last level (16 channels here), at most 10 segments, one global
  standardisation, a single softmax layer over the 8 genres (the integer ``genre`` field stands
  in for GTZAN's one-hot genres), accuracy over 2 seeded trials. The target is the prepared
  embedded corpus, or (``stand_in``, no --target-data-dir) the workdir's embedded corpus
  rendered with seed 1, written to WORKDIR/transfer/paper4_synthetic_seed1."""
  workdir = workdirs(family)
  out = workdir / "transfer" / "paper4_synthetic_seed1" if stand_in else tmp_path / "transfer"
  target = [] if stand_in else ["--target-data-dir", str(tiny_data_dir), "--out", str(out)]
  line = transfer(["--workdir", str(workdir), *target, "--train-data-dir", str(tiny_data_dir),
                   "--config.classifier.trials=2", "--config.label_field=genre"], capsys)
  clips = (48, 6) if stand_in else (96, 12)  # The stand-in: 60 clips, 48 / 6 / 6.
  assert line["protocol"] == "paper4" and line["output"] == "softmax"
  assert line["dims"] == 16 and line["clips"] == clips[1] and 0.0 <= line["accuracy"] <= 1.0
  assert line["results"] == str(out / "results.json")
  saved = check_trials(line, out, "accuracy", trials=2)
  assert saved["stand_in"] == stand_in and (saved["target"] == str(tiny_data_dir)) != stand_in
  assert saved["result"]["columns"] == [f"{workdir.name}/{last_level}"]
  assert saved["protocol"]["max_segments"] == 10 and saved["classes"] == 8
  train = fx.read_features(out / "features", "train")
  assert train["features"].shape[0] == clips[0] and train["labels"].shape == (clips[0], 8)
  assert np.all(train["labels"].sum(axis=1) == 1)  # The integer field, made one-hot.


def test_paper2_protocol_two_scales_beats_chance(workdirs, tiny_data_dir, tmp_path, capsys):
  """Paper 2's protocol with a mel DCNN and a SampleCNN workdir as two scales: every level of
  both, per-dimension standardisation, an MLP (narrowed to 64 units), sigmoid on the 24 tags
  (multi-hot: ROC-AUC). Measured 0.704 ± 0.028 (3 trials) on the random-convolution features;
  chance is 0.5."""
  out = tmp_path / "p2"
  line = transfer(["--protocol", "paper2", "--workdir", str(workdirs("mel_dcnn")),
                   "--workdir", str(workdirs("sample_cnn")), "--name", "mel", "--name", "wave",
                   "--target-data-dir", str(tiny_data_dir), "--train-data-dir",
                   str(tiny_data_dir), "--out", str(out), "--config.classifier.trials=3",
                   "--config.classifier.hidden_units=(64,)"], capsys)
  assert line["output"] == "sigmoid" and line["dims"] == 48 + 72  # All levels of both.
  check_trials(line, out, "roc_auc", trials=3)
  assert line["roc_auc"] >= 0.62, line
  assert [e["name"] for e in fx.read_meta(out / "features")["extractors"]] == ["mel", "wave"]


def test_bad_input_is_one_line_and_leaves_workdirs_alone(workdirs, tiny_data_dir, tmp_path,
                                                         capsys):
  workdir = workdirs("sample_cnn")
  before = sorted(p.relative_to(workdir) for p in workdir.rglob("*") if "transfer" not in p.parts)
  data = ["--target-data-dir", str(tiny_data_dir), "--train-data-dir", str(tiny_data_dir)]
  cases = [
      (["--workdir", str(tmp_path)], "is not a training workdir"),
      (["--workdir", str(workdir), *data, "--out", str(workdir)], "is a training workdir"),
      (["--workdir", str(workdir), *data, "--config.output=softmax"],
       "needs one label per clip"),
      (["--workdir", str(workdir), *data, "--config.classifier.nope=1"], "nope"),
      (["--workdir", str(workdir), "--train-data-dir", str(tiny_data_dir), "--target-data-dir",
        str(tmp_path / "none")], "does not exist"),
      (["--workdir", str(workdir), *data, "--name", "a", "--name", "b"], "one --name per"),
  ]
  for args, message in cases:
    capsys.readouterr()
    assert cli.main(["transfer", *args, *QUIET]) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], (args, err)
  after = sorted(p.relative_to(workdir) for p in workdir.rglob("*") if "transfer" not in p.parts)
  assert after == before
  with pytest.raises(SystemExit) as exit_:
    cli.main(["transfer", "--help"])
  assert exit_.value.code == 0
  assert "paper4" in capsys.readouterr().out
