"""A tiny config for the end-to-end tests: configs/demo.py:runlocal shrunk to seconds.

A 3^4 SampleCNN (243-sample input) with 8-16 channels on the prepared test shards (16 kHz);
every step logged so losses can be compared step by step.
"""

from musicrep_jax.configs import demo


def get_config(arg=None):
  c = demo.get_config("runlocal")
  c.model.kwargs.n = 4
  c.model.kwargs.channels = (8, 8, 8, 16, 16, 16)
  c.batch_size = 16
  c.num_train_steps = 20
  c.log_every = 1
  c.eval_every = 10
  c.checkpoint_every = 5
  c.data.segments_per_clip = 2
  c.progress_bar = False
  c.checkpoint.async_save = True
  if arg:
    raise ValueError(f"tests/configs/tiny.py takes no argument, got {arg!r}")
  return c
