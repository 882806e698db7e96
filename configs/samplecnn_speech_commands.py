"""Paper 6 (NIPS 2017 ML4Audio workshop), keyword spotting on Speech Commands; papers.md 7.

``get_config("basic" | "improved")``, optionally ``",runlocal"`` (or ``"runlocal"`` alone, the
basic model): the 8-block sample-level models on 1-s segments (22,050 samples at 22,050 Hz,
'same' first conv; papers.md 7.2). ``basic`` is SampleCNN (basic blocks, no multi-level);
``improved`` is ReSE-2-Multi (ReSE-2 blocks, multi-level aggregation of the last 3 blocks,
SE alpha 16 as in paper 5). Single-label softmax classification over the 35 words of v0.02 (the
journal code's protocol; prepare with ``musicrep prepare speech_commands --manual-dir DIR --out
OUT``, ``--classes 12`` for the 12-class protocol), one 1-s segment per clip for evaluation,
clip accuracy. Training as paper 5 (papers.md 7.2): SGD Nesterov 0.01, Keras decay 1e-6, batch
23, 5 stages x 0.2, each early-stopped on the validation loss with patience 2 (evaluated every
epoch; ``config.plateau``: training/plateau.py), the next restarting from the best checkpoint with
a fresh optimizer. [choice] The whole run is capped at 100 epochs (the code caps each stage at
100). The best checkpoint, and what the stages monitor, is chosen by validation loss (papers.md
1.4); ``checkpoint.best_metric=accuracy`` and ``checkpoint.best_mode=max`` select (and stage)
by accuracy.

``:runlocal`` trains the same code path on the embedded corpus. The corpus has no speech, so the
single label is the clip's **genre** (8 classes, exactly one per clip; ``task.kwargs.label_field
= "genre"``), with 1-s segments at the corpus's 16 kHz (16,000 samples, 7 blocks) and narrow
channels: 400 steps of ``make_runlocal``'s cosine schedule from lr 0.05, the stages monitoring an
evaluation every 40 steps (a stage change, if the loss plateaus, restarts the cosine from the
best checkpoint at x 0.2). It shows the pipeline learns, not keyword-spotting accuracy.

Training visits each clip's one 1-s segment once per epoch (``data.train_segments="grid"``,
an epoch = clips, ``EPOCH`` steps).
"""

from musicrep_jax.configs.common import (data_config, make_runlocal, plateau_stages, sgd_nesterov,
                                         trainer_config)

EPOCH = 3689  # v0.02 train split: 84,843 clips / batch 23.
VARIANTS = ("runlocal", "basic", "improved", "improved,runlocal")
# Paper 6's two models (papers.md 7.1) as ``config.model.kwargs`` of ``sample_level_fixed_input``:
# the 8-block 1-s models of the journal code (papers.md 7.2) with paper 5's blocks (alpha = 16).
# ``musicrep_jax/models/sample_level_fixed_input.py`` holds the same (a contract test compares).
PAPER6_MODELS = {
    "basic": dict(block="basic", multi_level=False),
    "improved": dict(block="rese2", multi_level=True),
}
RUNLOCAL_MODEL = dict(input_samples=16000, n=7, channels=(16, 16, 16, 32, 32, 32, 32, 64),
                      amplifying_ratio=2.0)


def parse_arg(arg, config_file: str) -> tuple[str, bool]:
  """``"improved,runlocal"`` -> ``("improved", True)``; the model defaults to ``basic``."""
  tokens = [t for t in (arg or "").split(",") if t]
  unknown = [t for t in tokens if t not in PAPER6_MODELS and t != "runlocal"]
  models = [t for t in tokens if t in PAPER6_MODELS]
  if unknown or len(models) > 1:
    raise ValueError(f"{config_file} takes basic or improved, optionally with runlocal "
                     f"(e.g. 'improved,runlocal'); got {arg!r}")
  return (models or ["basic"])[0], "runlocal" in tokens


def paper6_model_kwargs(variant: str, input_samples: int = 22050) -> dict:
  """``config.model.kwargs`` of paper 6's ``"basic"`` (SampleCNN) or ``"improved"``
  (ReSE-2-Multi) model on ``input_samples``-sample segments (8 blocks, 'same' first conv)."""
  return dict(PAPER6_MODELS[variant], input_samples=input_samples, m=3, n=8, init_features=128,
              channels=None, amplifying_ratio=16.0, block_dropout_rate=0.2, dropout_rate=0.5,
              first_padding="SAME", bn_momentum=0.99, bn_epsilon=1e-3)


def paper6_config(data: dict, epoch: int, variant: str, runlocal: bool):
  """Paper 6's run on ``data`` (one of ``data_config``) with ``epoch`` steps per epoch (the
  evaluation interval of the plateau stages, patience 2; a cap of 100 epochs); shared with
  configs/samplecnn_dcase2017.py."""
  c = trainer_config(
      data=data, model_name="sample_level_fixed_input", model_kwargs=paper6_model_kwargs(variant),
      task="classification", batch_size=23, num_train_steps=epoch * 100,
      optimizer=sgd_nesterov(0.01, "keras_decay"), eval_every=epoch)
  c.plateau = plateau_stages(5, patience=2)
  c.task.kwargs = dict(label_field="tags", num_classes=0, top_k=(5,))
  if runlocal:
    make_runlocal(c, model_kwargs=dict(RUNLOCAL_MODEL), num_train_steps=400)
    c.task.kwargs.label_field = "genre"
    c.eval_every = c.checkpoint_every = 40
  return c


def get_config(arg=None):
  variant, runlocal = parse_arg(arg, "configs/samplecnn_speech_commands.py")
  data = data_config("speech_commands", 22050, segments_per_clip=1, train_segments="grid")
  return paper6_config(data, EPOCH, variant, runlocal)
