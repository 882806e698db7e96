"""Paper 4's 5-layer mel "DCNN" (ISMIR 2018, papers.md 5.2) tagging MagnaTagATune (50 tags).

The same network as the artist model, with a sigmoid-per-tag head instead of the softmax over
artists.

Input 129 frames (~3 s) of the 22,050 Hz log-mel front end (papers.md 1.3); evaluation averages
the 10 non-overlapping 129-frame excerpts from the start of each clip (papers.md 5.5). Optimiser
as paper 4's training [code, papers.md 5.4]: SGD lr 0.1, momentum 0.9, Nesterov, Keras decay
1e-6, batch 15, L2 1e-5 on the conv kernels (``optimizer.kernel_l2``: Keras' regularizer, 1e-5 *
||W||^2 in the loss). Paper 4 never trained this model on tags, so
these settings are a choice; lower the rate with ``--config.optimizer.learning_rate=0.01`` if a
run diverges. ``:runlocal`` keeps the 129-frame layer list but halves the STFT (n_fft 512,
hop 256: 2.1 s at 16 kHz, which a 4-s embedded clip holds) with narrow channels.
"""

from musicrep_jax.configs.common import data_config, make_runlocal, sgd_nesterov, trainer_config

VARIANTS = ("runlocal",)


def get_config(arg=None):
  c = trainer_config(
      data=data_config("mtat", 22050),
      model_name="mel_dcnn",
      model_kwargs=dict(num_frames=129, n_mels=128, channels=(128, 128, 128, 128, 256),
                        dropout_rate=0.0),
      batch_size=15, num_train_steps=300_000,
      optimizer=sgd_nesterov(0.1, kernel_l2=1e-5), eval_every=5000)
  if arg == "runlocal":
    make_runlocal(c, model_kwargs=dict(n_fft=512, hop_length=256, n_mels=64,
                                       channels=(32, 32, 32, 32, 64)))
    c.optimizer.kernel_l2 = 0.0
  elif arg:
    raise ValueError(f"configs/mel_dcnn_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
