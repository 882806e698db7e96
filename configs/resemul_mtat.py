"""Paper 5 (ICASSP 2018): sample-level CNN with ReSE-2 blocks tagging MTAT; papers.md section 6.

The blocks' outputs are aggregated over several levels (multi-level).

22,050 Hz, 3^9 model (59,049 samples), batch 23, SGD Nesterov lr 0.01 with Keras decay 1e-6,
10 segments per clip for evaluation, and the code's 5 stages x 0.2 (papers.md 6.3,
``config.plateau``: training/plateau.py): each stage early-stops on the validation loss with
patience 2 (evaluated every epoch) and the next restarts from the best checkpoint with a fresh
optimizer; the run ends with the fifth stage's plateau. [choice] The whole run is capped at 100
epochs (the code caps each stage at 100). ``--config.model.kwargs.block=`` picks basic, se, res1,
res2, rese1 or rese2; ``multi_level`` toggles the aggregation. ``:runlocal`` trains the same code
path on the embedded corpus (16 kHz, 3^7, narrow channels): 600 steps of ``make_runlocal``'s
cosine schedule from lr 0.05, with the stages monitoring its two evaluations (steps 300, 600).
[choice] Not denser: evaluated every 50 steps, the validation BCE does not improve on step 50's
until the cosine has lowered the rate (after step 300), and the stages' restarts from the
step-50 checkpoint cost the run test ROC-AUC (0.69 against 0.81, CPU); the ``:runlocal`` of
configs/samplecnn_mtat.py shows stage changes.

Training visits the same grid (``data.train_segments="grid"``: each (clip, segment) once
per epoch, an epoch = clips x 10 segments as the papers count it, so ``EPOCH`` steps);
``--config.data.train_segments=random`` draws one random crop per clip visit instead.
"""

from musicrep_jax.configs.common import (data_config, make_runlocal, plateau_stages, sgd_nesterov,
                                         trainer_config)

VARIANTS = ("runlocal",)

EPOCH = 6628  # Lee split: 15,244 clips x 10 segments / batch 23.


def get_config(arg=None):
  c = trainer_config(
      data=data_config("mtat", 22050, train_segments="grid"),
      model_name="resemul",
      model_kwargs=dict(block="rese2", m=3, n=9, init_features=128, channels=None,
                        amplifying_ratio=16.0, multi_level=True, multi_level_blocks=3,
                        block_dropout_rate=0.2, dropout_rate=0.5, pool_impl="auto"),
      batch_size=23, num_train_steps=EPOCH * 100,
      optimizer=sgd_nesterov(0.01, "keras_decay"), eval_every=EPOCH)
  c.plateau = plateau_stages(5, patience=2)
  if arg == "runlocal":
    make_runlocal(c, model_kwargs=dict(n=7, channels=(16, 16, 16, 32, 32, 32, 32, 64),
                                       amplifying_ratio=2.0))
  elif arg:
    raise ValueError(f"configs/resemul_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
