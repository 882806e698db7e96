"""A tiny multiscale config for the end-to-end test: two mel frame CNN extractors (18 and 27
frames, 16 channels, 40 steps) and a small global classifier; configs/multiscale_mtat.py's
runlocal shrunk to seconds."""

from musicrep_jax.config_loading import load_config_file, resolve_config_spec


def get_config(arg=None):
  if arg:
    raise ValueError(f"tests/configs/multiscale_tiny.py takes no argument, got {arg!r}")
  c = load_config_file(resolve_config_spec("multiscale_mtat:runlocal"))
  del c.extractors["frames54"]
  for e in c.extractors.values():
    e.model.kwargs.channels = (16, 16, 16)
    e.batch_size = 16
    e.num_train_steps = 40
    e.eval_every = e.checkpoint_every = 20
    e.log_every = 20
  c.classifier.update(dict(hidden_units=(64,), max_epochs=80, patience=15, trials=1,
                           batch_size=32))
  c.extraction.batch_size = 32
  c.progress_bar = False
  return c
