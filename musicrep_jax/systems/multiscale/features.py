"""Stage 2 of multi-level, multi-scale feature aggregation (papers 2 and 3; papers.md 3.1, 4.1):
every conv layer's output of trained extractors, pooled over time per segment, averaged per clip.

For each extractor (a training workdir, e.g. ``mel_frame_cnn`` at 18 / 27 / 54 frames or
``sample_cnn`` at several m^n input lengths, restored by ``trainer.restore_workdir`` and run in
float32: ``load_extractor``), each clip of a split is tiled into
non-overlapping segments of the model's input length from its start (``floor(len / L)``
segments, at least one; a clip shorter than ``L`` is one zero-padded segment), as papers.md 1.2
and 3.1 slide the CNN "over the whole song". Per segment, every *level* (a direct child conv
layer or block of the model: ``ConvBNReLU`` / ``Conv2DBNAct`` / a resemul block, or of an
``embedding_net``'s ``backbone`` (named ``backbone/ConvBNReLU_0``, ...); captured with Flax
``capture_intermediates``, so the models stay unchanged) is pooled over time (and mel, for 2-D
maps) to one vector of its channel count; per clip, the segments' vectors are averaged.

Choices (papers.md 3.2 leaves them open; each is an argument):
  * ``pooling="max"`` over time per segment [slides: "max-pool each feature map over time to
    length 1"]; ``"mean"`` is the alternative.
  * ``segment_aggregation="mean"`` over a clip's segments [slides: "average over all excerpts"];
    ``"max"`` is the alternative.
  * Segments do not overlap (the excerpt hop is [unknown]); ``max_segments`` caps them per clip.
  * Levels are taken *after* the layer's BatchNorm + ReLU and before the pool that follows it
    (a max over time is the same either side of a max-pool, up to the frames the pool's floor
    drops). For resemul the block output (after its pool) is the level.

The loop is one jitted step per batch of segments that updates an on-device ``[clips, dims]``
accumulator (``segment_sum``/``segment_max`` by clip index, donated), so nothing returns to the
host until a split is done. Single process; the batch runs on the default device.

On disk (``write_features``), per split: ``{split}_features.npy`` float32 [clips, dims],
``{split}_labels.npy`` float32 [clips, tags], ``{split}_clip_ids.npy`` int64 [clips]; and
``features.json`` describing extractors (scales), their levels and each level's column range.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Any, Iterator, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from musicrep_jax.errors import UserError

POOLINGS = ("max", "mean")
FEATURES_JSON = "features.json"
FORMAT_VERSION = 1
ACC_ROWS = 4096  # Accumulator rows come in multiples of this (one compilation per extractor).


@dataclasses.dataclass(frozen=True)
class Level:
  """One captured layer: its module name, channel count and column range in the features."""

  name: str
  channels: int
  start: int
  stop: int


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A trained model restored from a workdir, ready to extract level features."""

  name: str
  workdir: pathlib.Path
  config: Any  # ml_collections.ConfigDict of the training run.
  model: nn.Module
  variables: dict  # {"params": ..., "batch_stats": ...} as numpy.
  step: int

  @property
  def input_length(self) -> int:
    return int(self.model.input_length)


def level_types() -> tuple[type, ...]:
  """Module classes whose outputs are levels: the conv layers and blocks of the zoo's models
  (the Inception network's stem and each stride and normal module)."""
  from musicrep_jax.models.inception import ConvBN2D, NormalModule, StrideModule
  from musicrep_jax.models.mel_cnn import Conv2DBNAct
  from musicrep_jax.models.resemul import _BlockBase
  from musicrep_jax.models.sample_cnn import ConvBNReLU

  return (ConvBNReLU, Conv2DBNAct, _BlockBase, ConvBN2D, StrideModule, NormalModule)


def is_level(module: nn.Module, method_name: str) -> bool:
  """``capture_intermediates`` filter of the levels: the conv layers and blocks
  (``level_types``) that are direct children of the model or of an embedding network's
  ``backbone`` (``embedding_net``: papers 4, 9, 13, 14), and the convs of a mel audio branch
  ``audio`` (DCUE, zero-shot)."""
  path = tuple(module.path)
  if method_name != "__call__":
    return False
  if path[:1] == ("backbone",):
    path = path[1:]
  if len(path) == 1:
    return isinstance(module, level_types())
  return len(path) == 2 and path[0] == "audio" and isinstance(module, nn.Conv)


def captured_levels(tree: dict, prefix: tuple = ()) -> list[tuple[str, Any]]:
  """Flax ``intermediates`` -> ``[("a/b", value)]`` in call order (``backbone/conv0``)."""
  found = []
  for name, node in tree.items():
    if name == "__call__":
      found.append(("/".join(prefix), node[0]))
    else:
      found += captured_levels(node, prefix + (name,))
  return found


def level_outputs(model: nn.Module, variables: dict,
                  audio: jnp.ndarray) -> list[tuple[str, jnp.ndarray]]:
  """``[(level name, [batch, time, ..., channels])]`` in call order, eval mode (running BN).

  A list, not a dict: pytree dicts come back from ``jax.eval_shape``/``jit`` with sorted keys
  (``block0`` before ``conv0``, ``ConvBNReLU_10`` before ``ConvBNReLU_2``).
  """
  _, state = model.apply(variables, audio, train=False, capture_intermediates=is_level,
                         mutable=["intermediates"])
  return captured_levels(state.get("intermediates", {}))


def pool_level(x: jnp.ndarray, pooling: str) -> jnp.ndarray:
  """``[batch, time, (mel,) channels]`` -> ``[batch, channels]``: max or mean over every axis
  between batch and channels."""
  axes = tuple(range(1, x.ndim - 1))
  if pooling == "max":
    return jnp.max(x, axis=axes)
  if pooling == "mean":
    return jnp.mean(x, axis=axes)
  raise UserError(f"pooling={pooling!r} is not one of {POOLINGS}.")


def segment_features(model: nn.Module, variables: dict, audio: jnp.ndarray,
                     pooling: str = "max") -> jnp.ndarray:
  """Audio segments ``[batch, input_length, 1]`` -> concatenated pooled levels ``[batch, dims]``."""
  levels = level_outputs(model, variables, audio)
  return jnp.concatenate([pool_level(x, pooling).astype(jnp.float32) for _, x in levels],
                         axis=-1)


def describe_levels(model: nn.Module, variables: dict) -> list[Level]:
  """The model's levels with their channel counts and column ranges (from shapes only)."""
  audio = jax.ShapeDtypeStruct((1, model.input_length, 1), jnp.float32)
  names = []

  def shapes_only(v, a):
    outputs = level_outputs(model, v, a)
    names.extend(name for name, _ in outputs)
    return [x for _, x in outputs]

  shapes = jax.eval_shape(shapes_only, variables, audio)
  if not shapes:
    raise UserError(f"Model {type(model).__name__} has no conv layers to extract features from.")
  levels, start = [], 0
  for name, shape in zip(names, shapes):
    levels.append(Level(name=name, channels=int(shape.shape[-1]), start=start,
                        stop=start + int(shape.shape[-1])))
    start += int(shape.shape[-1])
  return levels


# ------------------------------------------------------------------------- restoring a workdir


def load_extractor(workdir: str | pathlib.Path, name: Optional[str] = None,
                   which: str = "best", data_dir: Optional[str] = None) -> Extractor:
  """A training workdir -> its model (in float32) and host variables, restored by the one
  restore path (``musicrep_jax.training.trainer.restore_workdir``); ``data_dir``: the shards it
  was trained on, which give the model its number of outputs (default: the embedded corpus'
  cache for ``synthetic`` configs). ``UserError`` if ``workdir`` is not a training workdir or
  holds no checkpoint."""
  from musicrep_jax.training.trainer import restore_workdir

  restored = restore_workdir(workdir, data_dir, which)
  model = restored.run.model
  if "dtype" in getattr(type(model), "__dataclass_fields__", {}):
    model = model.clone(dtype=jnp.float32)  # Features in float32 whatever the training dtype.
  host = jax.device_get(restored.variables)
  variables = {"params": host["params"], "batch_stats": host.get("batch_stats") or {}}
  return Extractor(name=name or restored.workdir.name, workdir=restored.workdir,
                   config=restored.config, model=model, variables=variables, step=restored.step)


# ---------------------------------------------------------------------------------- extraction


def clip_segments(num_samples: int, segment_length: int, max_segments: int = 0) -> np.ndarray:
  """Start samples of a clip's non-overlapping segments from its start -> int64 [segments].

  ``max(1, num_samples // segment_length)`` segments (capped at ``max_segments`` when > 0).
  """
  count = max(1, num_samples // segment_length)
  if max_segments > 0:
    count = min(count, max_segments)
  return np.arange(count, dtype=np.int64) * segment_length


def segment_batches(source, segment_length: int, batch_size: int, max_segments: int = 0,
                    label_field: str = "tags") -> Iterator[tuple[dict, list]]:
  """Fixed-size batches of every clip's segments, in clip order.

  Yields ``(batch, clips)``: ``batch`` holds ``audio`` float32 [batch, segment_length, 1],
  ``clip_index`` int32 [batch] and ``valid`` bool [batch] (False for the padding rows of the
  last batch); ``clips`` lists ``(clip_index, clip_id, label)`` of the clips whose reading
  started in this batch.
  """
  from musicrep_jax.data.pipeline import convert_field, window
  from musicrep_jax.data.schema import pcm16_to_float

  def empty():
    return {"audio": np.zeros((batch_size, segment_length, 1), np.float32),
            "clip_index": np.zeros((batch_size,), np.int32),
            "valid": np.zeros((batch_size,), bool)}

  batch, row, clips = empty(), 0, []
  for clip_index in range(len(source)):
    record = source[clip_index]
    audio = np.asarray(record["audio"])
    if label_field not in record:
      raise UserError(f"The records have no {label_field!r} field (fields: "
                      f"{', '.join(sorted(record))}).")
    clips.append((clip_index, int(record["clip_id"]), convert_field(label_field,
                                                                    record[label_field])))
    for start in clip_segments(audio.shape[0], segment_length, max_segments):
      batch["audio"][row, :, 0] = pcm16_to_float(window(audio, int(start), segment_length))
      batch["clip_index"][row] = clip_index
      batch["valid"][row] = True
      row += 1
      if row == batch_size:
        yield batch, clips
        batch, row, clips = empty(), 0, []
  if row or clips:
    yield batch, clips


def make_accumulate_step(model: nn.Module, pooling: str, segment_aggregation: str):
  """Jitted ``(acc, variables, batch) -> acc``; ``acc = (values [clips, dims], counts [clips])``
  with the clip-wise sum (mean) or max of the segment features. ``acc`` is donated. Cached per
  model, except for models that cannot be hashed (``embedding_net``: a dict of backbone
  arguments), which get a fresh step."""
  try:
    hash(model)
  except TypeError:
    return _accumulate_step.__wrapped__(model, pooling, segment_aggregation)
  return _accumulate_step(model, pooling, segment_aggregation)


@functools.lru_cache(maxsize=32)
def _accumulate_step(model: nn.Module, pooling: str, segment_aggregation: str):
  if segment_aggregation not in ("mean", "max"):
    raise UserError(f"segment_aggregation={segment_aggregation!r} is not 'mean' or 'max'.")

  def step(acc, variables, batch):
    values, counts = acc
    features = segment_features(model, variables, batch["audio"], pooling)
    valid = batch["valid"]
    index = jnp.where(valid, batch["clip_index"], values.shape[0])  # Padding -> dropped.
    if segment_aggregation == "mean":
      values = values.at[index].add(features, mode="drop")
    else:
      values = values.at[index].max(features, mode="drop")
    return values, counts.at[index].add(1, mode="drop")

  return jax.jit(step, donate_argnums=0)


def extract_split(extractor: Extractor, source, *, pooling: str = "max",
                  segment_aggregation: str = "mean", batch_size: int = 64,
                  max_segments: int = 0, label_field: str = "tags",
                  desc: str = "", progress: bool = True) -> dict[str, np.ndarray]:
  """One extractor over one split -> ``features`` float32 [clips, dims], ``labels`` [clips, ...],
  ``clip_ids`` int64 [clips], ``segments`` int32 [clips] (segments averaged per clip)."""
  from tqdm.auto import tqdm

  levels = describe_levels(extractor.model, extractor.variables)
  num_clips, dims = len(source), levels[-1].stop
  # Rows rounded up to ACC_ROWS so that splits of any size share one compiled step.
  rows = -(-num_clips // ACC_ROWS) * ACC_ROWS
  fill = 0.0 if segment_aggregation == "mean" else -jnp.inf
  acc = (jnp.full((rows, dims), fill, jnp.float32), jnp.zeros((rows,), jnp.int32))
  step = make_accumulate_step(extractor.model, pooling, segment_aggregation)
  variables = jax.device_put(extractor.variables)
  labels, clip_ids = [None] * num_clips, np.zeros((num_clips,), np.int64)
  with tqdm(total=num_clips, unit="clip", desc=desc or extractor.name, dynamic_ncols=True,
            disable=not progress) as bar:
    for batch, clips in segment_batches(source, extractor.input_length, batch_size,
                                        max_segments, label_field):
      acc = step(acc, variables, batch)
      for clip_index, clip_id, label in clips:
        labels[clip_index], clip_ids[clip_index] = label, clip_id
      bar.update(len(clips))
  values, counts = (x[:num_clips] for x in jax.device_get(acc))
  if segment_aggregation == "mean":
    values = values / np.maximum(counts, 1)[:, None]
  return {"features": np.asarray(values, np.float32), "labels": np.stack(labels),
          "clip_ids": clip_ids, "segments": np.asarray(counts, np.int32)}


def _unique_names(extractors: Sequence[Extractor]) -> None:
  names = [e.name for e in extractors]
  if len(set(names)) != len(names):
    raise UserError(f"Extractor names must differ, got {names}; give the workdirs distinct "
                    f"names.")


def extract_features(extractors: Sequence[Extractor], shards, out_dir: str | pathlib.Path, *,
                     splits: Sequence[str] = ("train", "validation", "test"),
                     pooling: str = "max", segment_aggregation: str = "mean",
                     batch_size: int = 64, max_segments: int = 0,
                     label_field: str = "tags", progress: bool = True) -> dict:
  """Every extractor over every split of ``shards``; writes ``out_dir`` (see module docstring)
  and returns the ``features.json`` dict. Columns: extractors in the given order, each one's
  levels in call order."""
  if pooling not in POOLINGS:
    raise UserError(f"pooling={pooling!r} is not one of {POOLINGS}.")
  _unique_names(extractors)
  missing = [s for s in splits if s not in shards.split_sizes]
  if missing:
    raise UserError(f"Split(s) {', '.join(missing)} not in {shards.dataset_dir}; available: "
                    f"{', '.join(sorted(shards.split_sizes))}.")
  for e in extractors:
    if e.config.data.sample_rate != shards.sample_rate:
      raise UserError(f"Extractor {e.name} was trained at {e.config.data.sample_rate} Hz but "
                      f"{shards.data_dir} is at {shards.sample_rate} Hz; prepare the data at "
                      f"{e.config.data.sample_rate} Hz.")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  meta = {"format": FORMAT_VERSION, "data_dir": str(shards.data_dir),
          "sample_rate": shards.sample_rate, "pooling": pooling,
          "segment_aggregation": segment_aggregation, "label_field": label_field,
          "tag_names": list(shards.tag_names), "splits": {}, "extractors": []}
  offset = 0
  for e in extractors:
    levels = describe_levels(e.model, e.variables)
    meta["extractors"].append({
        "name": e.name, "workdir": str(e.workdir), "model": e.config.model.name,
        "step": e.step, "input_length": e.input_length,
        "seconds": e.input_length / shards.sample_rate,
        "levels": [dict(dataclasses.asdict(l), start=l.start + offset, stop=l.stop + offset)
                   for l in levels]})
    offset += levels[-1].stop
  meta["dims"] = offset
  for split in splits:
    source = shards.source(split)
    parts, reference = [], None
    for e in extractors:
      result = extract_split(e, source, pooling=pooling, segment_aggregation=segment_aggregation,
                             batch_size=batch_size, max_segments=max_segments,
                             label_field=label_field, desc=f"{e.name} {split}",
                             progress=progress)
      if reference is not None and not np.array_equal(reference["clip_ids"], result["clip_ids"]):
        raise AssertionError("extractors read the clips in different orders")
      if reference is None:
        reference = result
      parts.append(result["features"])
    np.save(out_dir / f"{split}_features.npy", np.concatenate(parts, axis=1))
    np.save(out_dir / f"{split}_labels.npy", reference["labels"].astype(np.float32))
    np.save(out_dir / f"{split}_clip_ids.npy", reference["clip_ids"])
    meta["splits"][split] = len(source)
  (out_dir / FEATURES_JSON).write_text(json.dumps(meta, indent=2))
  return meta


def describe(meta: dict) -> str:
  """Lines naming each extractor (scale), its levels and widths, for the CLI."""
  lines = [f"Features in {meta['splits']} clips per split, {meta['dims']} dims "
           f"({meta['pooling']} over time, {meta['segment_aggregation']} over segments):"]
  for e in meta["extractors"]:
    levels = ", ".join(f"{l['name']} {l['channels']}" for l in e["levels"])
    lines.append(f"  {e['name']} ({e['model']}, {e['seconds']:.2f} s per segment): {levels}")
  return "\n".join(lines)


def read_features(features_dir: str | pathlib.Path, split: str) -> dict[str, np.ndarray]:
  """``{features, labels, clip_ids}`` of one split written by ``extract_features``."""
  features_dir = pathlib.Path(features_dir)
  if not (features_dir / f"{split}_features.npy").exists():
    raise UserError(f"No {split!r} features in {features_dir}; run `musicrep extract-features` "
                    f"with that split.")
  return {k: np.load(features_dir / f"{split}_{k}.npy") for k in ("features", "labels",
                                                                   "clip_ids")}


def read_meta(features_dir: str | pathlib.Path) -> dict:
  path = pathlib.Path(features_dir) / FEATURES_JSON
  if not path.exists():
    raise UserError(f"{features_dir} holds no {FEATURES_JSON}; run `musicrep extract-features` "
                    f"first.")
  return json.loads(path.read_text())
