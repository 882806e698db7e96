"""Baseline of papers 1 and 2: Choi et al.'s 2-D mel CNN (FCN-4) tagging MagnaTagATune.

The 2-D CNN of Choi et al. (ISMIR 2016, FCN-4: "2D CNN (Choi et al.)", MTAT ROC-AUC 0.894 in
papers.md 2.6 and 3.3).

Choi's front end: 12 kHz audio, n_fft 512, hop 256, 96 mel bands, power mel in dB, the whole
29.1-s clip (1366 frames) as one input; prepare MTAT at 12 kHz
(``musicrep prepare folder ... --sample-rate 12000``) and pass ``--data-dir``. Evaluation uses one
segment per clip (the clip itself). Adam at 1e-3 with batch 32 [choice: the paper reports Adam;
rate and batch are not in papers.md]. Model choices: ``musicrep_jax/models/mel_cnn.py``
(``MelCNN2D``). ``:runlocal`` trains a narrow 4-layer version of the same code path on the
embedded corpus (16 kHz, 32 bands, 96 frames = 1.5 s).
"""

from musicrep_jax.configs.common import data_config, make_runlocal, sgd_nesterov, trainer_config

VARIANTS = ("runlocal",)


def get_config(arg=None):
  c = trainer_config(
      data=data_config("mtat", 12000, segments_per_clip=1),
      model_name="mel_cnn2d",
      model_kwargs=dict(num_frames=1366, n_fft=512, hop_length=256, n_mels=96,
                        channels=(128, 384, 768, 2048),
                        pools_mel_time=((2, 4), (4, 5), (3, 8), (4, 8)), dropout_rate=0.5),
      batch_size=32, num_train_steps=100_000,
      optimizer=sgd_nesterov(1e-3, "constant", name="adam"), eval_every=2000)
  if arg == "runlocal":
    make_runlocal(c, model_kwargs=dict(num_frames=96, n_mels=32, channels=(8, 16, 32, 32),
                                       pools_mel_time=((2, 4), (2, 4), (2, 3), (4, 2))),
                  num_train_steps=400, learning_rate=3e-3)
  elif arg:
    raise ValueError(f"configs/mel_cnn2d_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
