"""Train state, the jitted train step and the jitted eval step.

The step is compiled once per run: ``jax.jit`` with explicit shardings (state replicated, batch
split over the mesh) and buffer donation of the state and the log accumulator. Nothing in it
talks to the host: losses, the gradient norm and the first non-finite step are accumulated on
device and fetched only at logging steps (``LogAccumulator``).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh

from musicrep_jax.training import mesh as mesh_lib


class TrainState(struct.PyTreeNode):
  """Everything a checkpoint must hold to resume bit-exactly (with the data iterator state)."""

  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any


class LogAccumulator(struct.PyTreeNode):
  """Sums of the step metrics since the last log, and the first step whose loss was not finite
  (-1 when none). Lives on device; ``reset`` after each read."""

  sums: dict
  count: jnp.ndarray
  first_nonfinite_step: jnp.ndarray

  @classmethod
  def zeros(cls, metric_names) -> "LogAccumulator":
    return cls(sums={k: jnp.zeros((), jnp.float32) for k in metric_names},
               count=jnp.zeros((), jnp.int32),
               first_nonfinite_step=jnp.full((), -1, jnp.int32))


def init_variables(model: nn.Module, rng: jax.Array, input_length: int, task=None) -> dict:
  """Model variables from the bound task's dummy inputs (``task.init_inputs``; without a task
  one ``[1, input_length, 1]`` crop)."""
  inputs = (task.init_inputs(input_length) if task is not None
            else (jnp.zeros((1, input_length, 1), jnp.float32),))
  return model.init({"params": rng}, *inputs, train=False)


def make_create_state(model: nn.Module, tx: optax.GradientTransformation, input_length: int,
                      mesh: Mesh, task=None,
                      fsdp_min_size: int = 2 ** 14) -> Callable[[jax.Array], TrainState]:
  """A jitted ``rng -> TrainState`` laid out on ``mesh`` by ``sharding.state_shardings``
  (replicated unless the mesh has an ``fsdp`` axis > 1). The layout is ``.state_sharding``."""

  def create(rng):
    variables = init_variables(model, rng, input_length, task)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))

  shapes = jax.eval_shape(create, jax.random.key(0))
  state_sharding = mesh_lib.state_shardings(shapes, mesh, fsdp_min_size)
  create_jit = jax.jit(create, out_shardings=state_sharding)
  create_jit.state_sharding = state_sharding
  return create_jit


def make_train_step(model: nn.Module, task, tx: optax.GradientTransformation, mesh: Mesh,
                    seed: int, state_sharding=None):
  """Returns ``step(state, acc, batch) -> (state, acc)``, jitted with donation: the bound
  ``task``'s ``forward(model, ...)`` and ``loss``.

  ``state_sharding`` is the state's layout (``make_create_state(...).state_sharding``); None
  means replicated.

  Dropout keys are ``fold_in(key(seed), step)``: identical on any number of devices or hosts
  (JAX's threefry is partitionable), so a run on 8 devices matches one on 1.
  """
  base_key = jax.random.key(seed)

  def step(state: TrainState, acc: LogAccumulator, batch: dict):
    dropout_key = jax.random.fold_in(base_key, state.step)

    def loss_fn(params):
      outputs, updates = task.forward(
          model, {"params": params, "batch_stats": state.batch_stats}, batch, train=True,
          rngs={"dropout": dropout_key}, mutable=["batch_stats"])
      loss, metrics = task.loss(outputs, batch)
      return loss, (metrics, updates)

    (loss, (metrics, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, param_updates)
    metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=updates.get("batch_stats", state.batch_stats),
                              opt_state=opt_state)
    finite = jnp.isfinite(loss) & jnp.isfinite(metrics["grad_norm"])
    first_bad = jnp.where((acc.first_nonfinite_step < 0) & ~finite, state.step,
                          acc.first_nonfinite_step)
    new_acc = LogAccumulator(
        sums={k: acc.sums[k] + metrics[k].astype(jnp.float32) for k in acc.sums},
        count=acc.count + 1, first_nonfinite_step=first_bad)
    return new_state, new_acc

  replicated = mesh_lib.replicated(mesh)
  state_sharding = replicated if state_sharding is None else state_sharding
  return jax.jit(step,
                 in_shardings=(state_sharding, replicated, mesh_lib.batch_sharding(mesh)),
                 out_shardings=(state_sharding, replicated), donate_argnums=(0, 1))


def make_eval_step(model: nn.Module, task, mesh: Mesh, state_sharding=None):
  """Returns ``eval_step(state, batch) -> task.eval_outputs`` (per-segment arrays ``[batch,
  ...]``, batch-sharded) for the evaluators; ``task`` is the bound task, ``model`` is passed to
  its ``forward``."""

  def eval_step(state: TrainState, batch: dict):
    outputs = task.forward(model, {"params": state.params, "batch_stats": state.batch_stats},
                           batch, train=False)
    return task.eval_outputs(outputs, batch)

  batch = mesh_lib.batch_sharding(mesh)
  state_sharding = mesh_lib.replicated(mesh) if state_sharding is None else state_sharding
  return jax.jit(eval_step, in_shardings=(state_sharding, batch), out_shardings=batch)
