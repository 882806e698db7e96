"""Paper 1 (SMC 2017), the 3^9 SampleCNN on MagnaTagATune; papers.md section 2.

22,050 Hz, 59,049-sample segments, 10 segments per clip from the start for evaluation, batch 23,
SGD with Nesterov momentum 0.9 and Keras decay 1e-6 from lr 0.01, learning rate x 0.2 in stages
(the code early-stops each of 5 stages on validation loss with patience 3; here the stage
boundaries are in steps: set ``optimizer.stage_boundaries`` for your run). Data: prepare MTAT
from a local copy and pass ``--data-dir``. ``:runlocal`` trains the same code path on the
embedded corpus with a 3^5 model at 16 kHz.
"""

from musicrep_jax.configs.common import data_config, make_runlocal, sgd_nesterov, trainer_config

VARIANTS = ("runlocal",)

EPOCH = 6628  # Lee split: 15,244 clips x 10 segments / batch 23.


def get_config(arg=None):
  c = trainer_config(
      data=data_config("mtat", 22050),
      model_name="sample_cnn",
      model_kwargs=dict(m=3, n=9, channels=None, dropout_rate=0.5),
      batch_size=23, num_train_steps=EPOCH * 60,
      optimizer=sgd_nesterov(0.01, "staged", (EPOCH * 20, EPOCH * 35, EPOCH * 45, EPOCH * 53)),
      eval_every=EPOCH)
  if arg == "runlocal":
    make_runlocal(c, model_kwargs=dict(n=5, channels=(16, 16, 16, 32, 32, 64, 64)),
                  num_train_steps=100, batch_size=16, learning_rate=0.01)
    # Keep the paper's staged schedule so the smoke run exercises it.
    c.optimizer.update(dict(schedule="staged", stage_boundaries=(60, 80)))
    c.log_every = 20
  elif arg:
    raise ValueError(f"configs/samplecnn_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
