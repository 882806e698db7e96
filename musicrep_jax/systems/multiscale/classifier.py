"""Stage 3 of multi-level, multi-scale feature aggregation (papers 2 and 3; papers.md 3.1, 4.1):
a fully-connected classifier on the clip-level features ``feature_extraction`` wrote; also the
downstream classifier of the transfer protocols (papers 2, 4, 11; ``systems/transfer.py``).

Choose levels and scales (columns of the features, ``select_columns``), standardise with the
training split's statistics, train ``AggregateMLP`` (papers.md 3.1: "fc1 -> fc2 -> sigmoid(50)")
with sigmoid binary cross-entropy (``output="sigmoid"``, multi-label), or a softmax
cross-entropy (``output="softmax"``, single-label: GTZAN genres, papers.md 3.3, 5.5), select the
epoch by validation loss (the papers' selection rule, papers.md 1.4) and report clip-level macro
ROC-AUC / PR-AUC (``musicrep_jax.ops.metrics``), or accuracy and balanced accuracy
(``musicrep_jax.evaluators.classification``), on the test split. ``sweep_selections`` lists the
comparisons of the papers' tables: every single level of every scale, each scale's levels
together (multi-level), the last level of every scale (multi-scale) and everything
(multi-level + multi-scale).

Choices where papers.md 3.2 / 4.1 are silent (``ClassifierSettings`` fields):
  * two ReLU hidden layers of 512 units, dropout 0.5 after each, a sigmoid output layer (the
    slides' fc1, fc2, then the 50 sigmoids);
  * per-dimension standardisation (``"per_dim"``); ``"global"`` is the one-scalar mean/std of
    the MIREX code (papers.md 4.2);
  * Adam, learning rate 1e-3, minibatches of 64 reshuffled every epoch (an epoch is one jitted
    ``lax.scan``), up to 200 epochs, early stopping after 20 epochs without a lower validation
    loss, keeping the best epoch's weights; ``optimizer="sgd"`` is SGD with Nesterov momentum
    and ``lr_decay`` Keras' per-step ``lr / (1 + decay * step)`` (paper 4's
    ``run_gtzan_dnn.py``: lr 0.01, decay 1e-6, batch 16, patience 8, no hidden layer);
  * ``trials`` independent seeds, reported as mean and standard deviation (paper 4's transfer
    protocol averages 10 trials, papers.md 5.5).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from musicrep_jax import config_loading
from musicrep_jax.evaluators.classification import classification_metrics, labels_from_tags
from musicrep_jax.systems.multiscale import features as feature_extraction
from musicrep_jax.ops import metrics
from musicrep_jax.ops.losses import sigmoid_cross_entropy, softmax_cross_entropy
from musicrep_jax.training.optimizers import keras_decay
from musicrep_jax.errors import UserError

STANDARDIZE = ("per_dim", "global", "none")
OPTIMIZERS = ("adam", "sgd")
# Test metrics per output: the first is the headline (mean +- std over trials).
OUTPUT_METRICS = {"sigmoid": ("roc_auc", "pr_auc"), "softmax": ("accuracy", "balanced_accuracy")}
Selection = Union[str, Sequence]


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
  """Training settings of the global classifier (defaults: the choices in the module doc)."""

  hidden_units: tuple = (512, 512)
  dropout_rate: float = 0.5
  learning_rate: float = 1e-3
  weight_decay: float = 0.0
  batch_size: int = 64
  max_epochs: int = 200
  patience: int = 20
  standardize: str = "per_dim"
  trials: int = 1
  seed: int = 0
  output: str = "sigmoid"  # "sigmoid": multi-label BCE; "softmax": single-label cross-entropy.
  optimizer: str = "adam"  # "adam" (AdamW with weight_decay) or "sgd" (Nesterov momentum).
  momentum: float = 0.9  # SGD only; 0: plain SGD.
  lr_decay: float = 0.0  # Keras per-step decay: lr / (1 + lr_decay * step).

  def __post_init__(self):
    if self.standardize not in STANDARDIZE:
      raise UserError(f"classifier.standardize={self.standardize!r} is not one of "
                      f"{STANDARDIZE}.")
    if self.output not in OUTPUT_METRICS:
      raise UserError(f"classifier.output={self.output!r} is not one of "
                      f"{tuple(OUTPUT_METRICS)}.")
    if self.optimizer not in OPTIMIZERS:
      raise UserError(f"classifier.optimizer={self.optimizer!r} is not one of {OPTIMIZERS}.")
    if self.max_epochs < 1 or self.trials < 1 or self.learning_rate <= 0:
      raise UserError("classifier.max_epochs, classifier.trials and "
                      "classifier.learning_rate must be positive.")


class AggregateMLP(nn.Module):
  """``[batch, dims]`` standardised clip features -> ``[batch, num_outputs]`` logits."""

  hidden_units: Sequence[int]
  num_outputs: int
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    for width in self.hidden_units:
      x = nn.relu(nn.Dense(width, kernel_init=nn.initializers.xavier_uniform())(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_outputs, kernel_init=nn.initializers.xavier_uniform())(x)


# ----------------------------------------------------------------------------------- selection


def _pick(items: list, spec: Selection, what: str, names: Optional[list] = None) -> list:
  """``"all"`` or a sequence of indices (negative from the end) or names -> chosen items."""
  if isinstance(spec, str):
    if spec == "all":
      return list(items)
    spec = [s for s in spec.split(",") if s]
  chosen = []
  for s in spec:
    if names is not None and s in names:
      chosen.append(items[names.index(s)])
      continue
    try:
      chosen.append(items[int(s)])
    except (ValueError, IndexError):
      known = f" or one of {', '.join(names)}" if names else ""
      raise UserError(f"{what} {s!r} is not an index in -{len(items)}..{len(items) - 1}"
                      f"{known}.") from None
  if not chosen:
    raise UserError(f"No {what}s selected.")
  return chosen


def select_columns(meta: dict, scales: Selection = "all",
                   levels: Selection = "all") -> tuple[np.ndarray, list[str]]:
  """Feature columns of the chosen scales (extractor names or indices) and levels (indices into
  each chosen extractor's levels, e.g. ``(-3, -2, -1)`` for the top three as in paper 3).

  Returns ``(int64 column indices, ["extractor/level", ...])``.
  """
  extractors = meta["extractors"]
  chosen = _pick(extractors, scales, "scale", [e["name"] for e in extractors])
  columns, labels = [], []
  for e in chosen:
    for level in _pick(e["levels"], levels, f"level of {e['name']}"):
      columns.append(np.arange(level["start"], level["stop"]))
      labels.append(f"{e['name']}/{level['name']}")
  return np.concatenate(columns), labels


def sweep_selections(meta: dict) -> list[tuple[str, Selection, Selection]]:
  """``(row name, scales, levels)`` of the comparison table: every single level of every scale,
  each scale multi-level, all scales at their last level, and all scales with all levels."""
  rows = []
  for e in meta["extractors"]:
    for i, level in enumerate(e["levels"]):
      rows.append((f"{e['name']} level {i} ({level['name']})", [e["name"]], [i]))
  for e in meta["extractors"]:
    rows.append((f"{e['name']} multi-level", [e["name"]], "all"))
  if len(meta["extractors"]) > 1:
    rows.append(("multi-scale, last level", "all", [-1]))
    rows.append(("multi-level + multi-scale", "all", "all"))
  return rows


# ------------------------------------------------------------------------------------ training


def standardizer(train_x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
  """``(mean, std)`` to apply as ``(x - mean) / std``: per column, one scalar, or identity."""
  if kind == "per_dim":
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
  elif kind == "global":
    mean, std = train_x.mean(), train_x.std()
  else:
    mean, std = np.zeros(()), np.ones(())
  std = np.where(std > 1e-8, std, 1.0)
  return mean.astype(np.float32), std.astype(np.float32)


def make_model(settings: ClassifierSettings, num_outputs: int) -> AggregateMLP:
  return AggregateMLP(tuple(settings.hidden_units), num_outputs, settings.dropout_rate)


def make_optimizer(settings: ClassifierSettings) -> optax.GradientTransformation:
  """Adam (AdamW when ``weight_decay``), or SGD with Nesterov momentum (a coupled L2 when
  ``weight_decay``); the rate decays per step as Keras' ``decay`` when ``lr_decay > 0``."""
  rate = (keras_decay(settings.learning_rate, settings.lr_decay) if settings.lr_decay
          else settings.learning_rate)
  if settings.optimizer == "sgd":
    tx = optax.sgd(rate, momentum=settings.momentum or None, nesterov=settings.momentum > 0)
    if settings.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(settings.weight_decay), tx)
    return tx
  if settings.weight_decay:
    return optax.adamw(rate, weight_decay=settings.weight_decay)
  return optax.adam(rate)


def _loss(settings, params, x, y, *, train=False, key=None):
  """Sigmoid BCE against multi-hot ``y`` [batch, tags], or softmax cross-entropy against
  one-hot ``y`` [batch, classes] (``settings.output``)."""
  logits = make_model(settings, y.shape[-1]).apply({"params": params}, x, train=train,
                                                   rngs={"dropout": key} if train else None)
  if settings.output == "softmax":
    return softmax_cross_entropy(logits, jnp.argmax(y, axis=-1))[0]
  return sigmoid_cross_entropy(logits, y)[0]


@functools.partial(jax.jit, static_argnames="settings")
def train_epoch(params, opt_state, x, y, key, *, settings: ClassifierSettings):
  """One epoch: ``(params, opt_state, mean training loss)``. Minibatches of
  ``settings.batch_size`` rows (``<= 0``: full batch) of a new permutation, one ``lax.scan``;
  the remainder rows sit out that epoch. Compiled once per (settings, shapes), so every trial
  and every selection of the same width reuse it."""
  num_rows = x.shape[0]
  batch = num_rows if settings.batch_size <= 0 else min(settings.batch_size, num_rows)
  steps = num_rows // batch
  tx = make_optimizer(settings)
  perm_key, dropout_key = jax.random.split(key)
  order = jax.random.permutation(perm_key, num_rows)[:steps * batch].reshape(steps, batch)

  def body(carry, inputs):
    params, opt_state = carry
    rows, i = inputs
    loss, grads = jax.value_and_grad(lambda p: _loss(
        settings, p, x[rows], y[rows], train=True, key=jax.random.fold_in(dropout_key, i)))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (params, opt_state), losses = jax.lax.scan(body, (params, opt_state),
                                             (order, jnp.arange(steps)))
  return params, opt_state, jnp.mean(losses)


@functools.partial(jax.jit, static_argnames=("settings", "num_outputs"))
def init_params(key, x, *, settings: ClassifierSettings, num_outputs: int):
  """The classifier's initial parameters for inputs like ``x`` [1, dims] (jitted: one
  compilation per shape instead of an eager, op-by-op ``init`` in every trial)."""
  return make_model(settings, num_outputs).init(key, x)["params"]


@functools.partial(jax.jit, static_argnames="settings")
def eval_loss(params, x, y, *, settings: ClassifierSettings):
  return _loss(settings, params, x, y)


@functools.partial(jax.jit, static_argnames=("settings", "num_outputs"))
def predict(params, x, *, settings: ClassifierSettings, num_outputs: int):
  """Sigmoid (or, for ``output="softmax"``, softmax) scores ``[clips, num_outputs]``."""
  logits = make_model(settings, num_outputs).apply({"params": params}, x)
  if settings.output == "softmax":
    return jax.nn.softmax(logits, axis=-1)
  return jax.nn.sigmoid(logits)


def train_classifier(train: dict, validation: dict, settings: ClassifierSettings,
                     seed: int, progress: bool = True, desc: str = "classifier"):
  """Trains on standardised ``train["x"]`` [clips, dims] / ``train["y"]`` [clips, tags] and keeps
  the epoch with the lowest validation loss. Returns ``(best params, info)``."""
  from tqdm.auto import tqdm

  init_key, key = jax.random.split(jax.random.key(seed))
  params = init_params(init_key, jnp.asarray(train["x"][:1]), settings=settings,
                       num_outputs=train["y"].shape[1])
  opt_state = make_optimizer(settings).init(params)
  x, y = jnp.asarray(train["x"]), jnp.asarray(train["y"])
  vx, vy = jnp.asarray(validation["x"]), jnp.asarray(validation["y"])
  best = (np.inf, params, 0)
  with tqdm(total=settings.max_epochs, unit="epoch", desc=desc, disable=not progress,
            dynamic_ncols=True, leave=False) as bar:
    for i in range(settings.max_epochs):
      params, opt_state, train_loss = train_epoch(params, opt_state, x, y,
                                                  jax.random.fold_in(key, i), settings=settings)
      val_loss = float(eval_loss(params, vx, vy, settings=settings))  # One sync per epoch.
      if val_loss < best[0]:
        best = (val_loss, params, i + 1)
      bar.update(1)
      bar.set_postfix(val_loss=f"{val_loss:.4f}", best=best[2])
      if i + 1 - best[2] >= settings.patience:
        break
  info = {"val_loss": best[0], "best_epoch": best[2], "epochs": i + 1,
          "train_loss": float(train_loss)}
  return best[1], info


def clip_metrics(settings: ClassifierSettings, params, x: np.ndarray, y: np.ndarray) -> dict:
  """Macro ROC-AUC / PR-AUC of the sigmoid scores over the clips (papers.md 1.4); for
  ``output="softmax"``, top-1 accuracy and balanced accuracy against one-hot ``y``."""
  scores = predict(params, jnp.asarray(x), settings=settings, num_outputs=y.shape[1])
  if settings.output == "softmax":
    return classification_metrics(np.asarray(scores), labels_from_tags(y, "the test labels"),
                                  y.shape[1], top_k=())
  result = metrics.tagging_metrics(scores, jnp.asarray(y))
  return {k: float(v) for k, v in result.items()}


def _split_xy(features_dir, split: str, columns: np.ndarray) -> dict:
  data = feature_extraction.read_features(features_dir, split)
  return {"x": data["features"][:, columns], "y": data["labels"]}


def run_selection(features_dir, scales: Selection = "all", levels: Selection = "all",
                  settings: ClassifierSettings = ClassifierSettings(), *,
                  train_split: str = "train", eval_split: str = "validation",
                  test_split: str = "test", progress: bool = True, name: str = "") -> dict:
  """Stage 3 for one selection of scales and levels: standardise, train ``settings.trials``
  classifiers, evaluate each on ``test_split``. Returns the mean (and std over trials) of the
  ``OUTPUT_METRICS`` of ``settings.output`` (``roc_auc`` / ``pr_auc``, or ``accuracy`` /
  ``balanced_accuracy``) with the selection, its width and the training info."""
  meta = feature_extraction.read_meta(features_dir)
  columns, labels = select_columns(meta, scales, levels)
  splits = {s: _split_xy(features_dir, s, columns) for s in (train_split, eval_split, test_split)}
  if splits[train_split]["y"].ndim != 2:
    raise UserError(f"The labels ({meta['label_field']}) are not multi-hot [clips, tags] (or "
                    f"one-hot [clips, classes] for classifier.output='softmax').")
  if settings.output == "softmax":  # Every clip exactly one class (UserError naming a row).
    for split, data in splits.items():
      labels_from_tags(data["y"], f"the {split} labels ({meta['label_field']})")
  mean, std = standardizer(splits[train_split]["x"], settings.standardize)
  for data in splits.values():
    data["x"] = (data["x"] - mean) / std
  trials = []
  for t in range(settings.trials):
    params, info = train_classifier(splits[train_split], splits[eval_split], settings,
                                    seed=settings.seed + t, progress=progress,
                                    desc=name or "classifier")
    test = clip_metrics(settings, params, splits[test_split]["x"], splits[test_split]["y"])
    trials.append(dict(info, **{f"{test_split}_{k}": v for k, v in test.items()}))
  summary = {"name": name, "scales": scales if isinstance(scales, str) else list(scales),
             "levels": levels if isinstance(levels, str) else list(levels),
             "columns": labels, "dims": int(columns.size), "trials": trials,
             "split": test_split, "clips": int(splits[test_split]["x"].shape[0]),
             "output": settings.output}
  for key in OUTPUT_METRICS[settings.output]:
    values = np.array([t[f"{test_split}_{key}"] for t in trials])
    summary[key], summary[f"{key}_std"] = float(values.mean()), float(values.std())
  summary["val_loss"] = float(np.mean([t["val_loss"] for t in trials]))
  return summary


def settings_from_config(classifier) -> ClassifierSettings:
  """``config.classifier`` (a ConfigDict or dict) -> ``ClassifierSettings``, naming bad keys."""
  return config_loading.build_from_config(ClassifierSettings, classifier,
                                          "config.classifier does not fit ClassifierSettings")


def run_table(features_dir, config, *, sweep: bool, progress: bool = True) -> dict:
  """The configured selection (``config.selection.scales`` / ``.levels``), and with ``sweep``
  every row of ``sweep_selections`` (a row with the selected columns reuses its result):
  ``{"selected": result, "rows": [result, ...]}``."""
  settings = settings_from_config(config.classifier)
  splits = dict(train_split=config.get("train_split", "train"),
                eval_split=config.get("eval_split", "validation"),
                test_split=config.get("test_split", "test"))
  selected = run_selection(features_dir, config.selection.scales, config.selection.levels,
                           settings, progress=progress, name="selected", **splits)
  rows = [selected]
  if sweep:
    meta = feature_extraction.read_meta(features_dir)
    for name, scales, levels in sweep_selections(meta):
      if select_columns(meta, scales, levels)[1] == selected["columns"]:
        rows.append(dict(selected, name=f"{name} (= selected)"))
      else:
        rows.append(run_selection(features_dir, scales, levels, settings, progress=progress,
                                  name=name, **splits))
  return {"selected": selected, "rows": rows}


def format_table(rows: Sequence[dict]) -> str:
  """A Markdown table of ``run_selection`` results (all of one ``output``)."""
  first, second = OUTPUT_METRICS[rows[0].get("output", "sigmoid")]
  titles = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "accuracy": "accuracy",
            "balanced_accuracy": "balanced accuracy"}
  lines = [f"| features | dims | {titles[first]} | {titles[second]} | val loss |",
           "| --- | --- | --- | --- | --- |"]
  for r in rows:
    spread = f" ± {r[first + '_std']:.4f}" if len(r["trials"]) > 1 else ""
    lines.append(f"| {r['name']} | {r['dims']} | {r[first]:.4f}{spread} | "
                 f"{r[second]:.4f} | {r['val_loss']:.4f} |")
  return "\n".join(lines)
