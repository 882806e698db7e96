"""The embedded default: a small SampleCNN tagging the synthetic corpus the package renders.

Same code path as the paper's MTAT run (configs/samplecnn_mtat.py), scaled to a 2-core CPU:
16 kHz audio, a 3^7 model (6,561-sample input, ~0.41 s) with narrow channels, 1,200 steps of
batch 32. The training split (480 clips, 61 MB decoded) is read into memory once
(``data.cache_in_memory``): the model consumes ~1,150 samples/s on 2 cores, more than a quarter
of what the shards alone deliver (~4,200; docs/benchmarks.md, "Input pipeline").
``:runlocal`` shrinks it further (200 clips, 120 steps) for smoke tests.
"""

from musicrep_jax.configs.common import data_config, sgd_nesterov, trainer_config

VARIANTS = ("runlocal",)


def get_config(arg=None):
  c = trainer_config(
      data=data_config("synthetic", 16000, segments_per_clip=4, eval_placement="even",
                       num_workers=0),
      model_name="sample_cnn",
      model_kwargs=dict(m=3, n=7, channels=(16, 16, 16, 32, 32, 32, 32, 64, 64),
                        dropout_rate=0.5),
      batch_size=32, num_train_steps=1200,
      optimizer=sgd_nesterov(learning_rate=0.05, schedule="cosine"),
      log_every=50, eval_every=400)
  c.data.cache_in_memory = True
  if arg == "runlocal":
    c.data.synthetic.num_clips = 200
    c.num_train_steps = 120
    c.log_every = 20
    c.eval_every = c.checkpoint_every = 60
  elif arg:
    raise ValueError(f"configs/demo.py knows the argument 'runlocal', not {arg!r}")
  return c
