"""Paper 1 (SMC 2017), the 3^9 SampleCNN on MagnaTagATune; papers.md section 2.

22,050 Hz, 59,049-sample segments, 10 segments per clip from the start for evaluation, batch 23,
SGD with Nesterov momentum 0.9 and Keras decay 1e-6 from lr 0.01, and the code's re-training in
5 stages (papers.md 2.4, ``config.plateau``: training/plateau.py): each stage early-stops on the
validation loss with patience 3 (evaluated every epoch), then the next restarts from the best
checkpoint with a fresh optimizer at lr x 0.2 (0.01, 0.002, 4e-4, 8e-5, 1.6e-5); the run ends
with the fifth stage's plateau and is tested with the best checkpoint. [choice] The whole run
is capped at 100 epochs (tae-jun's port caps each stage at 100). Fixed boundaries instead:
``--config.plateau.num_stages=0 --config.optimizer.schedule=staged
--config.optimizer.stage_boundaries=...`` (steps). Data: prepare MTAT from a local copy and pass
``--data-dir``. ``:runlocal`` trains the same code path on the embedded corpus with a 3^5 model
at 16 kHz for 100 steps, evaluating every 10 steps with patience 1, from lr 0.3: high enough to
overshoot early (the validation loss rises at step 20), so the run restarts from the best
checkpoint at x 0.2 (0.01 only descends slowly for 100 steps and shows no stage).

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
      model_name="sample_cnn",
      model_kwargs=dict(m=3, n=9, channels=None, dropout_rate=0.5, pool_impl="auto"),
      batch_size=23, num_train_steps=EPOCH * 100,
      optimizer=sgd_nesterov(0.01, "keras_decay"), eval_every=EPOCH)
  c.plateau = plateau_stages(5, patience=3)
  if arg == "runlocal":
    make_runlocal(c, model_kwargs=dict(n=5, channels=(16, 16, 16, 32, 32, 64, 64)),
                  num_train_steps=100, batch_size=16, learning_rate=0.3)
    # Keep the paper's schedule and stages so the smoke run exercises them.
    c.optimizer.schedule = "keras_decay"
    c.eval_every = c.checkpoint_every = 10
    c.plateau.patience = 1
    c.log_every = 20
  elif arg:
    raise ValueError(f"configs/samplecnn_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
