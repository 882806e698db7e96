"""The embedded default: a small SampleCNN tagging the synthetic corpus the package renders itself.

Same code path as the paper's MTAT run (configs/samplecnn_mtat.py), scaled to a 2-core CPU:
16 kHz audio, a 3^7 model (6,561-sample input, ~0.41 s) with narrow channels, a few minutes of
training. ``:runlocal`` shrinks it further for smoke tests.
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(
      name="synthetic",            # rendered into a cache when --data-dir is not given
      sample_rate=16000,
      synthetic=dict(num_clips=600, seed=0, clip_seconds=4.0),
      train_split="train",
      eval_split="validation",     # evaluated during training; selects the best checkpoint
      test_split="test",           # evaluated at the end
      segments_per_clip=4,
      eval_placement="even",
      num_workers=0,               # Grain worker processes (frozen for resume)
  )
  c.model = dict(name="sample_cnn",
                 kwargs=dict(m=3, n=7, channels=(16, 16, 16, 32, 32, 32, 32, 64, 64),
                             dropout_rate=0.5))
  c.task = dict(name="tagging")
  c.batch_size = 32                # global, over all devices and hosts
  c.num_train_steps = 1200
  c.optimizer = dict(name="sgd", learning_rate=0.05, momentum=0.9, nesterov=True,
                     schedule="cosine", decay=1e-6, stage_boundaries=(), stage_factor=0.2,
                     warmup_steps=0, weight_decay=0.0, grad_clip_norm=0.0)
  c.mesh = dict(data=-1, fsdp=1)
  c.compute_dtype = "float32"
  c.log_every = 50
  c.eval_every = 400
  c.checkpoint_every = 400
  c.checkpoint = dict(keep=3, best_metric="loss", best_mode="min", async_save=True)
  c.progress_bar = True
  if arg == "runlocal":
    c.data.synthetic.num_clips = 200
    c.num_train_steps = 120
    c.log_every = 20
    c.eval_every = 60
    c.checkpoint_every = 60
  elif arg:
    raise ValueError(f"configs/demo.py knows the argument 'runlocal', not {arg!r}")
  return c
