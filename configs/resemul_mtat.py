"""Paper 5 (ICASSP 2018): sample-level CNN with ReSE-2 blocks and multi-level aggregation on
MagnaTagATune; papers.md section 6.

22,050 Hz, 3^9 model (59,049 samples), batch 23, SGD Nesterov lr 0.01 with Keras decay 1e-6 and
5 stages x 0.2 (the code early-stops each stage with patience 2; here stage boundaries are in
steps), 10 segments per clip for evaluation. ``--config.model.kwargs.block=`` picks basic, se,
res1, res2, rese1 or rese2; ``multi_level`` toggles the aggregation. ``:runlocal`` trains the same
code path on the embedded corpus (16 kHz, 3^7, narrow channels).
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(name="mtat", sample_rate=22050,
                synthetic=dict(num_clips=600, seed=0, clip_seconds=4.0),
                train_split="train", eval_split="validation", test_split="test",
                segments_per_clip=10, eval_placement="start", num_workers=8)
  c.model = dict(name="resemul", kwargs=dict(
      block="rese2", m=3, n=9, init_features=128, channels=None, amplifying_ratio=16.0,
      multi_level=True, multi_level_blocks=3, block_dropout_rate=0.2, dropout_rate=0.5))
  c.task = dict(name="tagging")
  c.batch_size = 23
  c.num_train_steps = 6628 * 60
  c.optimizer = dict(name="sgd", learning_rate=0.01, momentum=0.9, nesterov=True,
                     schedule="staged", decay=1e-6,
                     stage_boundaries=(6628 * 20, 6628 * 35, 6628 * 45, 6628 * 53),
                     stage_factor=0.2, warmup_steps=0, weight_decay=0.0, grad_clip_norm=0.0)
  c.mesh = dict(data=-1, fsdp=1)
  c.compute_dtype = "float32"
  c.log_every = 100
  c.eval_every = 6628
  c.checkpoint_every = 6628
  c.checkpoint = dict(keep=3, best_metric="loss", best_mode="min", async_save=True)
  c.progress_bar = True
  if arg == "runlocal":
    c.data.name = "synthetic"
    c.data.sample_rate = 16000
    c.data.segments_per_clip = 4
    c.data.eval_placement = "even"
    c.data.num_workers = 0
    c.model.kwargs.n = 7
    c.model.kwargs.channels = (16, 16, 16, 32, 32, 32, 32, 64)
    c.model.kwargs.amplifying_ratio = 2.0
    c.batch_size = 32
    c.num_train_steps = 600
    c.optimizer.learning_rate = 0.05
    c.optimizer.schedule = "cosine"
    c.log_every = 50
    c.eval_every = 300
    c.checkpoint_every = 300
  elif arg:
    raise ValueError(f"configs/resemul_mtat.py knows the argument 'runlocal', not {arg!r}")
  return c
