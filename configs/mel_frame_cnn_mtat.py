"""Paper 2 (IEEE SPL 2017), stage 1: a frame-level mel-spectrogram CNN trained on tags over
excerpts of 18, 27 or 54 frames (``--config.model.kwargs.num_frames=``); papers.md section 3.

Mel front end of papers.md 1.3 computed on device (n_fft 1024, hop 512, 128 Slaney bands,
log10(1 + 10 S), standardised). Layer widths, optimiser and schedule are [unknown] in the paper:
the choices are in ``musicrep_jax/models/mel_cnn.py`` and below (SGD Nesterov as in the group's
other code). The multi-level, multi-scale aggregation stages (2-3) are not wired yet.
``:runlocal`` trains the same code path on the embedded corpus at 16 kHz.
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(name="mtat", sample_rate=22050,
                synthetic=dict(num_clips=600, seed=0, clip_seconds=4.0),
                train_split="train", eval_split="validation", test_split="test",
                segments_per_clip=10, eval_placement="even", num_workers=8)
  c.model = dict(name="mel_frame_cnn", kwargs=dict(
      num_frames=27, n_mels=128, channels=None, hidden_units=0, dropout_rate=0.5))
  c.task = dict(name="tagging")
  c.batch_size = 64
  c.num_train_steps = 200_000
  c.optimizer = dict(name="sgd", learning_rate=0.01, momentum=0.9, nesterov=True,
                     schedule="keras_decay", decay=1e-6, stage_boundaries=(),
                     stage_factor=0.2, warmup_steps=0, weight_decay=0.0, grad_clip_norm=0.0)
  c.mesh = dict(data=-1, fsdp=1)
  c.compute_dtype = "float32"
  c.log_every = 100
  c.eval_every = 5000
  c.checkpoint_every = 5000
  c.checkpoint = dict(keep=3, best_metric="loss", best_mode="min", async_save=True)
  c.progress_bar = True
  if arg == "runlocal":
    c.data.name = "synthetic"
    c.data.sample_rate = 16000
    c.data.segments_per_clip = 4
    c.data.num_workers = 0
    c.model.kwargs.n_mels = 64
    c.model.kwargs.channels = (32, 32, 32)
    c.batch_size = 32
    c.num_train_steps = 600
    c.optimizer.learning_rate = 0.05
    c.optimizer.schedule = "cosine"
    c.log_every = 50
    c.eval_every = 300
    c.checkpoint_every = 300
  elif arg:
    raise ValueError(f"configs/mel_frame_cnn_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
