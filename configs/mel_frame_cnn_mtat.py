"""Paper 2 (IEEE SPL 2017), stage 1: a frame-level mel CNN tagging MTAT; papers.md section 3.

The CNN is trained on tags over excerpts of 18, 27 or 54 frames
(``--config.model.kwargs.num_frames=``).

Mel front end of papers.md 1.3 computed on device (n_fft 1024, hop 512, 128 Slaney bands,
log10(1 + 10 S), standardised). Layer widths, optimiser and schedule are [unknown] in the paper:
the choices are in ``musicrep_jax/models/mel_cnn.py`` and below (SGD Nesterov as in the group's
other code). The multi-level, multi-scale aggregation stages (2-3) are
``configs/multiscale_mtat.py`` (runner ``multiscale``: this CNN at 18, 27 and 54 frames as the
extractors, then ``musicrep extract-features`` and ``musicrep aggregate``).
``:runlocal`` trains the same code path on the embedded corpus at 16 kHz.
"""

from musicrep_jax.configs.common import data_config, make_runlocal, sgd_nesterov, trainer_config

VARIANTS = ("runlocal",)


def get_config(arg=None):
  c = trainer_config(
      data=data_config("mtat", 22050, eval_placement="even"),
      model_name="mel_frame_cnn",
      model_kwargs=dict(num_frames=27, n_mels=128, channels=None, hidden_units=0,
                        dropout_rate=0.5),
      batch_size=64, num_train_steps=200_000, optimizer=sgd_nesterov(0.01), eval_every=5000)
  if arg == "runlocal":
    make_runlocal(c, model_kwargs=dict(n_mels=64, channels=(32, 32, 32)))
  elif arg:
    raise ValueError(f"configs/mel_frame_cnn_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
