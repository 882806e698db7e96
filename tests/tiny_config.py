"""A tiny config for the end-to-end tests: configs/demo.py:runlocal shrunk to seconds.

A 3^4 SampleCNN (243-sample input) with 8-16 channels on the prepared test shards (16 kHz);
every step logged so losses can be compared step by step.
"""

import importlib.util
import pathlib

_DEMO = pathlib.Path(__file__).resolve().parent.parent / "configs" / "demo.py"


def get_config(arg=None):
  spec = importlib.util.spec_from_file_location("_demo_config", _DEMO)
  demo = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(demo)
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
    raise ValueError(f"tests/tiny_config.py takes no argument, got {arg!r}")
  return c
