"""Paper 1 (SMC 2017), the 3^9 SampleCNN on MagnaTagATune; papers.md section 2.

22,050 Hz, 59,049-sample segments, 10 segments per clip from the start for evaluation, batch 23,
SGD with Nesterov momentum 0.9 and Keras decay 1e-6 from lr 0.01, learning rate x 0.2 in stages
(the code early-stops each of 5 stages on validation loss with patience 3; here the stage
boundaries are in steps: set ``optimizer.stage_boundaries`` for your run). Data: prepare MTAT
from a local copy and pass ``--data-dir``. ``:runlocal`` trains the same code path on the
embedded corpus in a minute or two, with a 3^5 model at 16 kHz.
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(
      name="mtat",
      sample_rate=22050,
      synthetic=dict(num_clips=200, seed=0, clip_seconds=4.0),
      train_split="train",
      eval_split="validation",
      test_split="test",
      segments_per_clip=10,
      eval_placement="start",
      num_workers=8,
  )
  c.model = dict(name="sample_cnn", kwargs=dict(m=3, n=9, channels=None, dropout_rate=0.5))
  c.task = dict(name="tagging")
  c.batch_size = 23
  # One epoch of the Lee split = 15,244 clips x 10 segments / 23 = 6,628 steps; 5 stages.
  c.num_train_steps = 6628 * 60
  c.optimizer = dict(name="sgd", learning_rate=0.01, momentum=0.9, nesterov=True,
                     schedule="staged", decay=1e-6,
                     stage_boundaries=(6628 * 20, 6628 * 35, 6628 * 45, 6628 * 53),
                     stage_factor=0.2, warmup_steps=0, weight_decay=0.0, grad_clip_norm=0.0)
  c.mesh = dict(data=-1, fsdp=1)
  c.compute_dtype = "float32"
  c.log_every = 100
  c.eval_every = 6628
  c.checkpoint_every = 6628
  c.checkpoint = dict(keep=3, best_metric="loss", best_mode="min", async_save=True)
  c.progress_bar = True
  if arg == "runlocal":
    c.data.name = "synthetic"
    c.data.sample_rate = 16000
    c.data.segments_per_clip = 4
    c.data.eval_placement = "even"
    c.data.num_workers = 0
    c.model.kwargs.n = 5
    c.model.kwargs.channels = (16, 16, 16, 32, 32, 64, 64)
    c.batch_size = 16
    c.num_train_steps = 100
    c.optimizer.stage_boundaries = (60, 80)
    c.log_every = 20
    c.eval_every = 50
    c.checkpoint_every = 50
  elif arg:
    raise ValueError(f"configs/samplecnn_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
