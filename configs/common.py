"""Building blocks every experiment config shares, so a file in ``configs/`` states only what
makes its experiment different (data, model, optimizer, schedule).

``trainer_config`` assembles the full ``ConfigDict`` the trainer reads (``runner="trainer"``);
``sgd_nesterov`` is the papers' optimizer (papers.md 1.5); ``plateau_stages`` their staged
early stopping (``config.plateau``, off by default: ``PLATEAU_OFF``); ``make_runlocal`` turns
any config into the minute-or-two run on the embedded corpus that ``:runlocal`` asks for (same
code path, 16 kHz, narrow model).

Every other file of ``configs/`` is a config: a one-line docstring summary (``musicrep configs``
lists it), ``get_config(arg)`` returning a ``ConfigDict`` whose ``runner`` names what ``musicrep
train`` runs (``musicrep_jax.registry.RUNNERS``), and ``VARIANTS``, the arguments it documents
(``"runlocal"`` in every one). Configs import no JAX or Flax module (``musicrep configs`` and
``--print-config`` load them all), so numbers they share with a model live here or in the
config, and a test keeps the two equal.
"""

from __future__ import annotations

import ml_collections

# The embedded corpus every ``:runlocal`` variant trains on (the demo's settings, so its render
# is cached once and shared).
RUNLOCAL_CORPUS = dict(num_clips=600, seed=0, clip_seconds=4.0)
RUNLOCAL_SAMPLE_RATE = 16000


def sgd_nesterov(learning_rate: float = 0.01, schedule: str = "keras_decay",
                 stage_boundaries: tuple = (), **overrides) -> dict:
  """SGD, momentum 0.9, Nesterov, Keras decay 1e-6 (papers.md 1.5); see optimizers.py."""
  opt = dict(name="sgd", learning_rate=learning_rate, momentum=0.9, nesterov=True,
             schedule=schedule, decay=1e-6, stage_boundaries=tuple(stage_boundaries),
             stage_factor=0.2, warmup_steps=0, weight_decay=0.0, kernel_l2=0.0,
             grad_clip_norm=0.0)
  opt.update(overrides)
  return opt


# ``config.plateau`` (musicrep_jax/training/plateau.py): learning-rate stages that end when the
# validation metric ``config.checkpoint.best_metric`` stops improving. ``num_stages`` 0: off.
PLATEAU_OFF = dict(num_stages=0, patience=3, factor=0.2, min_learning_rate=0.0, reload_best=True,
                   stop_patience=0)


def plateau_stages(num_stages: int, patience: int, *, factor: float = 0.2,
                   reload_best: bool = True, stop_patience: int = 0,
                   min_learning_rate: float = 0.0) -> dict:
  """``config.plateau``: ``num_stages`` learning rates ``lr * factor ** k`` (floored at
  ``min_learning_rate``); a stage ends after ``patience`` evaluations without improvement of
  ``config.checkpoint.best_metric``. ``reload_best``: the next stage restarts from the best
  checkpoint with a fresh optimizer (the papers' re-training, papers.md 1.5), else only the rate
  drops (Keras ``ReduceLROnPlateau``). ``stop_patience`` > 0: the run ends after that many
  evaluations without a new best of the run (Keras ``EarlyStopping``) and the last stage's
  plateaus do not end it; 0: the last stage's plateau ends the run. See training/plateau.py."""
  return dict(num_stages=num_stages, patience=patience, factor=factor,
              min_learning_rate=min_learning_rate, reload_best=reload_best,
              stop_patience=stop_patience)


def data_config(name: str, sample_rate: int, *, segments_per_clip: int = 10,
                eval_placement: str = "start", num_workers: int = 8,
                train_segments: str = "random") -> dict:
  """``train_segments``: ``"random"`` (a random crop of each clip per visit, an epoch =
  clips) or ``"grid"`` (the papers' fixed segments: the ``segments_per_clip`` evaluation windows
  of each clip placed by ``eval_placement``, each (clip, segment) once per epoch, an epoch =
  clips x segments_per_clip; ``musicrep_jax.data.pipeline.TrainSegments``).
  ``placement``: ``"host"`` (the Grain pipeline) or ``"device"`` (the int16 training split held
  on the accelerators, crops gathered inside the step: ``training/device_resident.py``); its
  budget is ``device_budget_mb`` MiB per device when > 0, else ``device_budget_fraction`` of the
  chip's memory (CPU needs ``device_budget_mb``).
  ``cache_in_memory`` reads the training split into RAM once (``trainer.train_source``),
  refusing splits above ``cache_max_mb``; ``make_runlocal`` turns it on (the embedded corpus's
  training split is 61 MB decoded)."""
  return dict(name=name, sample_rate=sample_rate, synthetic=dict(RUNLOCAL_CORPUS),
              train_split="train", eval_split="validation", test_split="test",
              segments_per_clip=segments_per_clip, eval_placement=eval_placement,
              num_workers=num_workers, cache_in_memory=False, cache_max_mb=4096,
              train_segments=train_segments, placement="host", device_budget_mb=0,
              device_budget_fraction=0.5)


def trainer_config(*, data: dict, model_name: str, model_kwargs: dict, batch_size: int,
                   num_train_steps: int, optimizer: dict, task: str = "tagging",
                   log_every: int = 100, eval_every: int = 5000,
                   checkpoint_every: int | None = None, seed: int = 0) -> ml_collections.ConfigDict:
  """The full trainer config. Checkpoints follow evaluations unless told otherwise; the best
  checkpoint is chosen by validation loss, as the papers select models (papers.md 1.4)."""
  c = ml_collections.ConfigDict()
  c.runner = "trainer"
  c.seed = seed
  c.data = data
  c.model = dict(name=model_name, kwargs=model_kwargs)
  c.task = dict(name=task, kwargs={})
  # Evaluator names (musicrep_jax.registry.EVALUATORS), merged; empty: the task's defaults.
  c.evals = ()
  c.batch_size = batch_size
  c.num_train_steps = num_train_steps
  c.optimizer = optimizer
  # fsdp > 1 shards parameters and optimizer state (leaves >= fsdp_min_size elements).
  c.mesh = dict(data=-1, fsdp=1, fsdp_min_size=2 ** 14)
  # "auto": bfloat16 compute on TPU/GPU, float32 on CPU (training/precision.py).
  c.compute_dtype = "auto"
  c.log_every = log_every
  c.eval_every = eval_every
  c.checkpoint_every = checkpoint_every or eval_every
  c.checkpoint = dict(keep=3, best_metric="loss", best_mode="min", async_save=True)
  # Staged early stopping on checkpoint.best_metric (``plateau_stages``); off by default.
  c.plateau = dict(PLATEAU_OFF)
  c.progress_bar = True
  return c


def use_embedded_corpus(data: ml_collections.ConfigDict) -> None:
  """``config.data`` in place: the embedded corpus at 16 kHz, 4 evenly placed evaluation
  segments per clip, read in-process (what every ``:runlocal`` trains on)."""
  data.name = "synthetic"
  data.sample_rate = RUNLOCAL_SAMPLE_RATE
  data.synthetic = dict(RUNLOCAL_CORPUS)
  data.segments_per_clip = 4
  data.eval_placement = "even"
  data.num_workers = 0


def make_runlocal(c: ml_collections.ConfigDict, *, model_kwargs: dict,
                  num_train_steps: int = 600, batch_size: int = 32,
                  learning_rate: float = 0.05) -> None:
  """Shrinks ``c`` in place to a short run on the embedded corpus with the same code path."""
  use_embedded_corpus(c.data)
  c.data.cache_in_memory = True
  c.model.kwargs.update(model_kwargs)
  c.batch_size = batch_size
  c.num_train_steps = num_train_steps
  c.optimizer.learning_rate = learning_rate
  c.optimizer.schedule = "cosine"
  c.log_every = min(c.log_every, 50)
  c.eval_every = c.checkpoint_every = max(num_train_steps // 2, 1)
