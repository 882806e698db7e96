"""Papers 2 and 3: multi-level, multi-scale feature aggregation on MagnaTagATune (papers.md 3, 4).

Run all three stages with ``musicrep train --config multiscale_mtat[:ARGS] --workdir W
[--data-dir D]`` (runner ``multiscale``), or ``musicrep multiscale --config multiscale_mtat[:ARGS]
--workdir W [--data-dir D] [--target-data-dir D2]``; ``ARGS`` is a comma-separated list of:

* (none): paper 2 (IEEE SPL 2017): three mel frame-level CNNs at 18, 27 and 54 frames
  (0.42 / 0.63 / 1.26 s, ``configs/mel_frame_cnn_mtat.py``), every conv layer as a level;
* ``sample``: paper 3 (ICML 2017 ML4MD): three SampleCNNs (``configs/samplecnn_mtat.py``), the
  3^8, 3^9 and 3^10 models (n = 8, 9, 10: 19,683 / 59,049 / 177,147 samples = 0.89 / 2.68 /
  8.03 s at 22,050 Hz; the set of lengths is [unknown], this is a choice; runlocal: n = 5, 6, 7
  at 16 kHz), the top three levels of each (papers.md 4.1);
* ``runlocal``: the same pipeline on the embedded corpus (16 kHz, narrow extractors, a few
  minutes on a laptop CPU);
* ``transfer``: paper 2's transfer: extractors trained on ``--data-dir`` (or the embedded
  corpus), features and classifier on another dataset: ``--target-data-dir``, or with
  ``runlocal`` the embedded corpus rendered with seed 1 (other tracks, the same 24 tags).

Stage 1 trains each ``extractors.NAME`` (a full trainer config; override e.g.
``--config.extractors.frames18.num_train_steps=2000``) into ``W/extractors/NAME`` (finished ones
are kept); feature columns follow the names' sorted order (ConfigDict sorts its keys). Stage 2
(``extraction``) writes ``W/features``; stage 3 (``classifier``, ``selection``) trains the
global classifier and, with ``sweep``, every single-level single-scale classifier for
comparison, into ``W/results.json``. The same stages run separately as ``musicrep
extract-features`` and ``musicrep aggregate``. Choices: see
``musicrep_jax/systems/multiscale/features.py`` and ``classifier.py``. ``target_data_dir``
(default: ``--data-dir``) is the dataset of stages 2-3 for ``transfer``.
"""

import pathlib

import ml_collections

from musicrep_jax.config_loading import load_config_file

_CONFIGS = pathlib.Path(__file__).resolve().parent
ARGS = ("runlocal", "sample", "transfer")
VARIANTS = ("runlocal", "sample", "transfer", "sample,runlocal", "transfer,runlocal")
# Conv layers of paper 2's frame CNN per excerpt length (papers.md 3.1 [slides]); the model's
# default (``musicrep_jax.models.mel_cnn.frame_cnn_num_convs``) agrees (a contract test checks).
FRAME_CNN_CONVS = {18: 3, 27: 3, 54: 4}


def _mel_extractor(frames: int, runlocal: bool) -> ml_collections.ConfigDict:
  c = load_config_file(f"{_CONFIGS / 'mel_frame_cnn_mtat.py'}:{'runlocal' if runlocal else ''}")
  c.model.kwargs.num_frames = frames
  if runlocal:
    c.model.kwargs.channels = (32,) * FRAME_CNN_CONVS[frames]
    c.num_train_steps = 400
    c.eval_every = c.checkpoint_every = 200
  return c


def _sample_extractor(n: int, runlocal: bool) -> ml_collections.ConfigDict:
  c = load_config_file(f"{_CONFIGS / 'samplecnn_mtat.py'}:{'runlocal' if runlocal else ''}")
  c.model.kwargs.n = n
  if runlocal:
    c.model.kwargs.channels = (16, 16, 16) + (32,) * (n - 3) + (64, 64)
    c.optimizer.update(dict(schedule="cosine", learning_rate=0.05, stage_boundaries=()))
    c.batch_size = 32
    c.num_train_steps = 400
    c.eval_every = c.checkpoint_every = 200
    c.plateau.num_stages = 0  # Paper 3's extractors: the cosine runs of the README's numbers.
  return c


def get_config(arg=None):
  args = set(filter(None, (arg or "").split(",")))
  if args - set(ARGS):
    raise ValueError(f"configs/multiscale_mtat.py knows the arguments {ARGS}, not {arg!r}")
  runlocal = "runlocal" in args
  c = ml_collections.ConfigDict()
  c.runner = "multiscale"
  c.extractors = ml_collections.ConfigDict()
  if "sample" in args:
    for n in ((5, 6, 7) if runlocal else (8, 9, 10)):
      c.extractors[f"sample_n{n:02d}"] = _sample_extractor(n, runlocal)
    levels = "-3,-2,-1"  # The top three hidden layers (papers.md 4.1).
  else:
    for frames in (18, 27, 54):
      c.extractors[f"frames{frames}"] = _mel_extractor(frames, runlocal)
    levels = "all"  # Every conv layer (papers.md 3.1).
  c.extraction = dict(pooling="max", segment_aggregation="mean", batch_size=64,
                      max_segments=0, label_field="tags", checkpoint="best",
                      splits=("train", "validation", "test"))
  c.selection = dict(scales="all", levels=levels)
  c.classifier = dict(hidden_units=(512, 512), dropout_rate=0.5, learning_rate=1e-3,
                      weight_decay=0.0, batch_size=64, max_epochs=200, patience=20,
                      standardize="per_dim", trials=1, seed=0, output="sigmoid",
                      optimizer="adam", momentum=0.9, lr_decay=0.0)
  c.sweep = True
  # Transfer: stages 2-3 on --target-data-dir, or (runlocal) on the embedded corpus rendered
  # with target_synthetic_seed (-1: none).
  c.transfer = "transfer" in args
  c.target_synthetic_seed = 1 if (c.transfer and runlocal) else -1
  c.target_data_dir = ""
  c.train_split, c.eval_split, c.test_split = "train", "validation", "test"
  c.progress_bar = True
  if runlocal:
    c.classifier.hidden_units = (256, 256)
    c.classifier.trials = 3
  return c
