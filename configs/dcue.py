"""Deep content-user embedding (paper 7, DLRS 2018; papers.md 8): users and audio in one space.

Paper settings: 130-frame mel excerpts at 22,050 Hz (papers.md 1.3), the basic model (audio
branch 128-256-256-256-256, 256-d, user branch 300-300-256), 20 negatives per (user, track),
hinge margin 0.2 on cosines summed over negatives and batch, SGD-Nesterov lr 0.2 with Keras
decay 1e-6, batch 10, no early stopping (the best checkpoint by validation cold-start AUC is
kept here). Data: prepared shards (``--data-dir``) with a ``user,item,count`` CSV of listening
counts (``--config.task.kwargs.interactions_csv=PATH``, items = the shards' paths, track names
or track ids; the paper's Echo Nest Taste Profile subset of 20,000 users x 10,000 songs).
``--config.model.kwargs.multi=true`` is the paper's multi model. Padding: every conv of the audio
branch is ``'same'``, as the official code's five convs are (``jongpillee/deep-content-user``
``model.py``: conv1-conv5 ``padding='same'``; papers.md 8.3 names it on the first only), so there
is no padding deviation.

``:runlocal``: the embedded corpus (600 clips of 4 s at 16 kHz, 200 synthetic users, their
listening counts), 64-frame (~1 s) crops, a 32-channel multi model with a linear conv5 and
BatchNorm after each conv (``batch_norm``, not in the paper), 4 negatives, Adam 3e-3, 1,600
steps. Without BatchNorm the randomly initialised audio branch maps every track to nearly the
same vector (mean pairwise cosine 0.96) and the net barely leaves that state in this budget:
on a 480-clip corpus, 400-1,600 steps left cold-start AUC at 0.49-0.55 and warm AUC at or below
popularity's 0.648. With BatchNorm, 1,200-1,600 steps reach warm AUC 0.69 (popularity 0.648)
and cold-start AUC 0.61 (popularity 0.5) on the held-out test tracks, seeds 0 and 1
(``tests/unit/tasks/test_dcue.py`` checks it). The ceiling is set by the audio: the same branch
trained directly on genre labels reaches 40 % test accuracy (8 genres) on this corpus, and a ranking
by the true genre and mood of each track would give 0.79 warm / 0.78 cold.
"""

from musicrep_jax.configs.common import data_config, make_runlocal, sgd_nesterov, trainer_config

VARIANTS = ("runlocal",)


def get_config(arg=None):
  c = trainer_config(
      data=data_config("msd", 22050, segments_per_clip=9),
      model_name="dcue",
      model_kwargs=dict(num_frames=130, channels=(128, 256, 256, 256, 256), dim=256,
                        user_hidden=300, multi=False, batch_norm=False),
      task="dcue", batch_size=10, num_train_steps=1_000_000,
      optimizer=sgd_nesterov(learning_rate=0.2), eval_every=20_000)
  c.task.kwargs = dict(interactions_csv="", heldout_fraction=0.2, split_seed=0, negatives=20,
                       margin=0.2, ks=(10, 50), train_split=c.data.train_split,
                       eval_placement=c.data.eval_placement, eval_batch_size=64)
  c.eval_batch_size = 64
  c.checkpoint.best_metric = "cold/auc"
  c.checkpoint.best_mode = "max"
  if arg == "runlocal":
    make_runlocal(c, model_kwargs=dict(num_frames=64, n_fft=512, hop_length=256, n_mels=64,
                                       channels=(32, 32, 32, 32, 32),
                                       pool_sizes=(2, 2, 2, 2, 1), dim=32, user_hidden=32,
                                       multi=True, last_relu=False, batch_norm=True),
                  num_train_steps=1600, batch_size=32, learning_rate=3e-3)
    c.optimizer.name = "adam"
    c.task.kwargs.update(negatives=4, eval_placement=c.data.eval_placement)
  elif arg:
    raise ValueError(f"configs/dcue.py knows the argument 'runlocal', not {arg!r}")
  return c
