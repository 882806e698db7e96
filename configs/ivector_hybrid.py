"""Paper 8 (ICML 2018 workshop, papers.md 9): artist recognition, i-vectors + DCNN hybrid.

Artist recognition with MFCC i-vectors, deep features of paper 4's artist DCNN (papers.md 5.2),
and their hybrid (runner ``ivector``)::

    musicrep train --config ivector_hybrid:runlocal --workdir /tmp/ivec   # = musicrep ivector fit
    musicrep ivector eval --workdir /tmp/ivec --split test

The file holds a trainer config for the DCNN (the ``mel_dcnn`` model with the ``classification``
task over ``artist``) plus the i-vector sections. ``fit`` trains the DCNN with it into
``<workdir>/dcnn`` (or finishes / reuses the run there) unless ``config.hybrid.dcnn_workdir``
names a trained one (``musicrep train --config ivector_hybrid --config.runner=trainer`` trains
the DCNN alone); then it fits the i-vector chain on the train split (20 MFCCs + deltas +
delta-deltas -> 256-component UBM -> total variability -> i-vectors -> LDA / WCCN / PLDA), the
same back end on the DCNN's clip embeddings, and the hybrid. Paper 8's data is the MSD artist
split (papers.md 1.1, 17,591 artists x 20 tracks, songs 1-15 train, 16-18 validation, 19-20
test), which needs ``--data-dir`` with shards whose splits follow it and whose ``artist`` field
holds the artist. ``:runlocal``: the embedded corpus (600 clips of 4 s at 16 kHz, 30 artists;
its track-level split puts every validation and test artist in the train split), 64 UBM
components, 200-d i-vectors, a narrower DCNN with dropout.

[unknown] in the paper and chosen here (each a field): MFCC framing (25 ms / 10 ms), 40 mel
bands, deltas, CMVN; i-vector size (100); EM iteration counts; the back end before PLDA (LDA to
classes - 1, WCCN, length normalisation); the fusion (``"score"``: per-clip z-normalised
scores of both systems, weighted by the weight that scores best on the validation split;
``"feature"``: concatenated length-normalised vectors through one back end).
"""

from musicrep_jax.configs.common import (data_config, make_runlocal, sgd_nesterov,
                                          trainer_config)

VARIANTS = ("runlocal",)


def get_config(arg=None):
  # The trainer keys are paper 4's basic artist model (papers.md 5.2-5.4): the mel DCNN with a
  # softmax over artists on 129 frames, SGD Nesterov 0.1, batch 15, L2 1e-5 on the conv kernels.
  c = trainer_config(
      data=data_config("msd_artist", 22050),
      model_name="mel_dcnn",
      model_kwargs=dict(num_frames=129, n_mels=128, channels=(128, 128, 128, 128, 256),
                        dropout_rate=0.0),
      batch_size=15, num_train_steps=300_000,
      optimizer=sgd_nesterov(0.1, kernel_l2=1e-5), task="classification", eval_every=5000)
  c.runner = "ivector"
  c.task.kwargs = dict(label_field="artist")
  c.checkpoint.best_metric = "accuracy"
  c.checkpoint.best_mode = "max"
  # The i-vector system and the hybrid (read by `musicrep ivector`, ignored by the trainer).
  c.label_field = "artist"
  c.mfcc = dict(n_mfcc=20, n_mels=40, n_fft=1024, win_length=551, hop_length=220, fmin=20.0,
                fmax=None, delta_order=2, delta_width=9, cmvn=True, center=True,
                pad_mode="constant")
  c.clips_per_batch = 16
  c.ubm = dict(num_components=256, num_iterations=10, iterations_per_split=4, split_offset=0.2,
               variance_floor=1e-3, piece_frames=512, pieces_per_batch=64)
  c.tv = dict(ivector_dim=100, num_iterations=10, init_scale=0.1, min_divergence=False,
              clips_per_batch=64, seed=0)
  c.backend = dict(scoring="plda", lda_dim=0, whiten=True, wccn=True, regularization=1e-3)
  c.hybrid = dict(enabled=True, dcnn_workdir="", fusion="score", weight_grid=21,
                  checkpoint="best")
  if arg == "runlocal":
    # 480 training clips overfit the DCNN (train 94% vs validation 22% without them):
    # dropout 0.5 before the softmax and weight decay 1e-4 (every parameter, instead of the
    # paper's kernel L2) are small-data choices.
    make_runlocal(c, model_kwargs=dict(n_fft=512, hop_length=256, n_mels=64,
                                       channels=(64, 64, 64, 64, 128), dropout_rate=0.5),
                  num_train_steps=800, batch_size=32, learning_rate=0.05)
    c.optimizer.weight_decay = 1e-4
    c.optimizer.kernel_l2 = 0.0
    c.mfcc.update(n_fft=512, win_length=400, hop_length=160)
    c.ubm.update(num_components=64, num_iterations=6, iterations_per_split=3)
    c.tv.update(ivector_dim=200, num_iterations=6)
  elif arg:
    raise ValueError(f"configs/ivector_hybrid.py knows the argument 'runlocal', not {arg!r}")
  return c
