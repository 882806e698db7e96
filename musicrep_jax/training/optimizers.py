"""Optimizers and learning-rate schedules from the config (``config.optimizer``).

The papers' recipe (papers.md 1.5, 2.4): SGD, momentum 0.9, Nesterov, with Keras' per-step
``decay``: ``lr_t = lr_0 / (1 + decay * t)``. The official code also restarts training in five
stages at lr x 0.2 each, early-stopping each stage on validation loss (patience 3 in paper 1, 2 in
papers 5 and 6), reloading the best weights and starting a fresh optimizer: that is
``config.plateau`` (``musicrep_jax.training.plateau``), which multiplies every update by the
stage's scale, a leaf of the optimizer state (``stage_scale``: the step is compiled once for every
stage). The ``staged`` schedule is the fixed-boundary alternative: it multiplies the rate by
``stage_factor`` at fixed ``stage_boundaries`` (steps) and composes with the Keras decay, which
restarts at each stage as in the code; the momentum (optimizer state) carries across its stages.
The Keras ``decay`` field applies to the ``keras_decay`` and ``staged`` schedules whatever the
optimizer (Adam included): a config that does not want it sets ``decay=0.0`` explicitly.

Two kinds of weight penalty, both applied to the gradient before the optimizer (coupled):

- ``kernel_l2`` (lambda): Keras' ``kernel_regularizer=l2(lambda)`` on convolution kernels only,
  the papers' "L2 1e-5 on conv kernels" (papers.md 5.2, 11.3). Keras adds
  ``lambda * sum(W ** 2)`` to the loss, so each convolution kernel ``W`` (a parameter named
  ``kernel`` with 3 or more dimensions: Flax ``Conv``) gets ``2 * lambda * W`` added to its
  gradient; biases, BatchNorm scales and offsets, Dense kernels, embeddings and every other
  parameter get nothing. Because it is added to the gradient (as the loss term would be), Adam
  normalises it like the rest of the gradient, exactly as Keras does; the penalty is not added to
  the logged loss.
- ``weight_decay`` (w): ``w * p`` added to the gradient of every parameter (the gradient of
  ``0.5 * w * ||p||^2``); with ``adamw`` it is AdamW's decoupled decay instead. For SGD a
  coupled L2 and a decoupled decay differ only by the learning-rate factor; for Adam they do not.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from musicrep_jax.errors import UserError

SCHEDULES = ("constant", "keras_decay", "staged", "cosine", "warmup_cosine")
OPTIMIZERS = ("sgd", "adam", "adamw")


def keras_decay(learning_rate: float, decay: float) -> optax.Schedule:
  """Keras-1 SGD decay: ``lr / (1 + decay * step)``."""
  return lambda step: learning_rate / (1.0 + decay * step)


def is_conv_kernel(path, leaf) -> bool:
  """True for a convolution kernel: a parameter named ``kernel`` with >= 3 dimensions."""
  last = path[-1] if path else None
  name = getattr(last, "key", getattr(last, "name", None))
  return name == "kernel" and getattr(leaf, "ndim", 0) >= 3


def kernel_l2(coefficient: float) -> optax.GradientTransformation:
  """Keras ``l2(coefficient)`` on convolution kernels: adds ``2 * coefficient * W`` to the
  gradient of each convolution kernel ``W`` (the gradient of ``coefficient * ||W||^2``), nothing
  to any other parameter."""
  mask = lambda params: jax.tree_util.tree_map_with_path(is_conv_kernel, params)
  return optax.masked(optax.add_decayed_weights(2.0 * coefficient), mask)


def make_schedule(opt: ml_collections.ConfigDict, num_train_steps: int) -> optax.Schedule:
  name = opt.schedule
  lr = opt.learning_rate
  if name == "constant":
    return optax.constant_schedule(lr)
  if name == "keras_decay":
    return keras_decay(lr, opt.decay)
  if name == "staged":
    boundaries = sorted(int(b) for b in opt.stage_boundaries)
    stages = [keras_decay(lr * opt.stage_factor**i, opt.decay) for i in range(len(boundaries) + 1)]
    return optax.join_schedules(stages, boundaries)
  if name == "cosine":
    return optax.cosine_decay_schedule(lr, max(num_train_steps, 1))
  if name == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, opt.warmup_steps, max(num_train_steps, opt.warmup_steps + 1))
  raise UserError(f"config.optimizer.schedule={name!r} is not one of {', '.join(SCHEDULES)}.")


class StageScaleState(NamedTuple):
  """The learning-rate scale of the current plateau stage (``factor ** stage``): float32 ``[]``."""

  scale: jax.Array


def stage_scale() -> optax.GradientTransformation:
  """Multiplies the final updates by ``StageScaleState.scale`` (1 at init), a leaf of the
  optimizer state: the plateau stages change it between steps (``set_stage_scale``) without
  recompiling the step. After the learning rate, so for SGD and Adam alike the update is the one
  of the rate ``lr_t * scale`` (the momentum and Adam moments hold gradients, not updates)."""

  def init(params):
    del params
    return StageScaleState(scale=jnp.ones((), jnp.float32))

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u: (u * state.scale).astype(u.dtype), updates), state

  return optax.GradientTransformation(init, update)


def set_stage_scale(opt_state: Any, scale) -> Any:
  """``opt_state`` with every ``StageScaleState`` holding ``scale`` (float32 ``[]``)."""
  value = jnp.asarray(scale, jnp.float32)
  return jax.tree.map(
      lambda s: StageScaleState(scale=value) if isinstance(s, StageScaleState) else s, opt_state,
      is_leaf=lambda s: isinstance(s, StageScaleState))


def make_optimizer(opt: ml_collections.ConfigDict, num_train_steps: int,
                   with_stage_scale: bool = False) -> optax.GradientTransformation:
  """``config.optimizer`` -> optax transformation (with optional global-norm clipping);
  ``with_stage_scale``: followed by ``stage_scale`` (plateau stages, ``config.plateau``)."""
  schedule = make_schedule(opt, num_train_steps)
  if opt.name == "sgd":
    tx = optax.sgd(schedule, momentum=opt.momentum or None, nesterov=opt.nesterov)
  elif opt.name == "adam":
    tx = optax.adam(schedule)
  elif opt.name == "adamw":
    tx = optax.adamw(schedule, weight_decay=opt.weight_decay)
  else:
    raise UserError(f"config.optimizer.name={opt.name!r} is not one of {', '.join(OPTIMIZERS)}.")
  if opt.get("kernel_l2", 0.0):
    tx = optax.chain(kernel_l2(opt.kernel_l2), tx)
  if opt.get("weight_decay", 0.0) and opt.name != "adamw":
    tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
  if opt.get("grad_clip_norm", 0.0):
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  if with_stage_scale:
    tx = optax.chain(tx, stage_scale())
  return tx
