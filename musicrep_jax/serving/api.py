"""The Python API: a trained model in three lines (docs/python_api.md).

::

  import musicrep_jax
  model = musicrep_jax.load("workdirs/demo")     # a training workdir or a model folder
  model.tags("song.mp3", top_k=5)                 # {"guitar": 0.91, "rock": 0.88, ...}

``musicrep_jax.load`` (the package's ``__init__``) picks the source: a folder holding
``musicrep.json`` is a model folder (``musicrep export --format pretrained``), anything else a
training workdir (``inference.load_trained``, the one restore path); both become a ``Model``.

What a ``Model`` does with its input ``x`` (a path, a list of paths and/or 1-D arrays, or an
array ``[samples]`` / ``[sounds, samples]`` with its ``sample_rate=``) is what ``musicrep
embed`` does with a file, through the same code (``serving/embed.py``: ``stream_inputs``,
``clip_outputs``): decoded (or cut) in blocks, resampled explicitly to the model's rate with the
resampler of ``musicrep prepare`` (``audio_io.resample``, streamed), tiled into
``input_length``-sample segments from the start with one end-aligned tail segment (one
zero-padded segment for a short input), segments of all inputs batched into fixed
``[batch_size, input_length, 1]`` batches (the last padded; eval-mode models treat rows
independently, so padding and batch-mates do not change a row), and the segment outputs averaged
per input (papers.md 1.4: clip score = mean over segments). With the same ``batch_size`` a file
gets exactly the numbers ``musicrep embed`` writes.

Layers (``Model.layers``; ``embed(x, layer=...)``): ``"embedding"`` (the family's embedding,
``inference.EMBEDDING_OUTPUTS``), the model's other per-example vectors (``"features"``: an
embedding network's backbone vector; ``"multi_level"``: paper 2's concatenated levels of
``mel_frame_cnn``), and every conv layer or block as a *level* (papers 2, 3, 5: papers.md 3.1,
4.1, 6.2): its output ``[batch, time, (mel,) channels]`` pooled over time (and mel) per segment
(``pooling="max"`` as the papers; ``"mean"`` the alternative), then averaged over the input's
segments, the features of ``musicrep extract-features`` (``systems/multiscale/features.py``).
Level names are module paths: ``ConvBNReLU_3`` (SampleCNN, the mel CNNs), ``conv0`` /
``block4`` (ReSE), ``backbone/ConvBNReLU_2`` (an embedding network's backbone),
``audio/Conv_1`` (the DCUE and zero-shot audio branch: the conv output before its ReLU).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional

import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.serving import embed as streaming
from musicrep_jax.serving import inference
from musicrep_jax.systems.multiscale.features import captured_levels, is_level

POOLINGS = ("max", "mean")
# Per-example model outputs that are scores or constants, not features.
NOT_FEATURES = ("logits", "masks", "label_embedding")


@dataclasses.dataclass
class Outputs:
  """One call's results, one entry per input in order.

  ``embeddings`` float32 ``[inputs, d]`` and ``scores`` float32 ``[inputs, k]`` are the clip
  means; with ``per_segment``, ``segment_starts[i]`` int64 ``[segments_i]`` (samples at the
  model's rate) and ``segment_embeddings[i]`` float32 ``[segments_i, d]``. ``single``: the call
  was given one input (a path or a 1-D array), not a list or a batch."""

  single: bool
  names: list[str]
  embeddings: np.ndarray
  scores: np.ndarray
  segment_starts: list[np.ndarray]
  segment_embeddings: list[np.ndarray]


def layer_outputs(model, variables: dict, audio, pooling: str = "max") -> list[tuple[str, Any]]:
  """Every layer of ``Model.layers`` for a batch ``audio [batch, input_length, 1]`` ->
  ``[(name, [batch, width])]``: the per-example vectors the model returns, then the levels
  pooled over time (``features.pool_level``), eval mode."""
  from musicrep_jax.systems.multiscale.features import pool_level

  out, state = model.apply(variables, audio, train=False, capture_intermediates=is_level,
                           mutable=["intermediates"])
  vectors = [(k, v) for k, v in out.items()
             if k not in NOT_FEATURES and not isinstance(v, (tuple, list)) and v.ndim == 2]
  vectors.sort(key=lambda item: item[0] != "embedding")
  levels = captured_levels(state.get("intermediates", {}))
  return vectors + [(name, pool_level(x, pooling).astype("float32")) for name, x in levels]


class Model:
  """A trained model for inference (module doc). Made by ``musicrep_jax.load``.

  Attributes:
    family: the ``MODELS`` name (``"sample_cnn"``, ``"embedding_net"``, ...).
    sample_rate: Hz the model runs at (inputs at another rate are resampled explicitly).
    input_length: samples per segment.
    tag_names: names of the score columns (tags; zero-shot: the labels scored through their
      side-information vectors; empty for unnamed classes and for models without scores).
    scores_kind: ``"tag_scores"`` (sigmoid), ``"class_scores"`` (softmax), ``"label_scores"``
      (zero-shot cosines), ``"logits"``, or ``""`` for an embedding-only model.
    layers: names usable as ``embed(x, layer=...)``.
    batch_size: segments per forward pass.
  """

  def __init__(self, trained: inference.Trained, *, batch_size: int = 32,
               block_seconds: float = 10.0):
    if batch_size < 1 or block_seconds <= 0:
      raise UserError("batch_size and block_seconds must be positive.")
    self.trained = trained
    self.batch_size, self.block_seconds = int(batch_size), float(block_seconds)
    self._forward, self.spec = streaming.make_forward(trained, self.batch_size)
    self._layer_forwards: dict[tuple, Callable] = {}
    self._widths: Optional[dict[str, int]] = None

  @classmethod
  def from_workdir(cls, workdir, *, data_dir: Optional[str] = None, checkpoint: str = "best",
                   **options) -> "Model":
    """A training workdir's ``checkpoint`` ("best" or "latest"), ``inference.load_trained``."""
    return cls(inference.load_trained(workdir, data_dir, checkpoint), **options)

  @classmethod
  def from_folder(cls, path, model, config, variables: dict, info: dict, **options) -> "Model":
    """A model folder's parts (``serving.export.pretrained``: ``read_model_folder`` and the
    Flax ``model`` of ``flax_model``), ``inference.trained_from_folder``."""
    return cls(inference.trained_from_folder(path, model, config, variables, info), **options)

  # --- What the model is ----------------------------------------------------------------------

  family = property(lambda self: self.spec.family)
  sample_rate = property(lambda self: self.trained.sample_rate)
  input_length = property(lambda self: self.trained.input_length)
  scores_kind = property(lambda self: self.spec.scores)
  tag_names = property(lambda self: self.spec.score_names)

  @property
  def layers(self) -> tuple[str, ...]:
    return tuple(self._layer_widths())

  @property
  def embedding_size(self) -> int:
    return self.width()

  def width(self, layer=None) -> int:
    """Width of ``embed(x, layer=layer)``'s vectors (a list of layers: their sum)."""
    widths = self._layer_widths()
    return sum(widths[n] for n in self._layer_names("embedding" if layer is None else layer))

  def __repr__(self) -> str:
    return (f"Model(family={self.family!r}, sample_rate={self.sample_rate}, "
            f"input_length={self.input_length}, scores={self.scores_kind or None!r}, "
            f"outputs={len(self.tag_names)}, layers={len(self.layers)})")

  def _layer_widths(self) -> dict[str, int]:
    """``{layer: width}`` in order, from shapes only (``jax.eval_shape``)."""
    if self._widths is None:
      import jax
      import jax.numpy as jnp

      names = []

      def shapes(variables, audio):
        outputs = layer_outputs(self.trained.model, variables, audio)
        names.extend(name for name, _ in outputs)
        return [x for _, x in outputs]

      audio = jax.ShapeDtypeStruct((1, self.input_length, 1), jnp.float32)
      found = jax.eval_shape(shapes, self.trained.variables, audio)
      self._widths = {name: int(x.shape[-1]) for name, x in zip(names, found)}
    return self._widths

  # --- Inputs ---------------------------------------------------------------------------------

  def _inputs(self, x, sample_rate: Optional[float]) -> tuple[list, bool]:
    """``x`` -> (``stream_inputs`` items, whether ``x`` was one input)."""
    if isinstance(x, (str, os.PathLike)):
      items, single = [os.fspath(x)], True
    elif isinstance(x, (list, tuple)):
      if not x:
        raise UserError("No inputs: pass a path, a list of paths or an audio array.")
      items, single = [], False
      for i, item in enumerate(x):
        if isinstance(item, (str, os.PathLike)):
          items.append(os.fspath(item))
        else:
          items += self._arrays(item, sample_rate, i, allow_batch=False)
    else:
      array = self._as_float_array(x)
      single = array.ndim == 1
      items = self._arrays(array, sample_rate, 0, allow_batch=True)
    if sample_rate is not None and all(isinstance(i, str) for i in items):
      raise UserError("sample_rate= is the rate of array inputs; audio files carry their own, "
                      "so pass it only with arrays.")
    return items, single

  @staticmethod
  def _as_float_array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
      x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.floating):
      raise UserError(f"Audio arrays must be float samples in [-1, 1], not {array.dtype} "
                      f"(int16 PCM: divide by 32768).")
    return array.astype(np.float32, copy=False)

  def _arrays(self, x, sample_rate: Optional[float], first: int,
              allow_batch: bool) -> list[streaming.ArraySource]:
    array = self._as_float_array(x)
    if sample_rate is None:
      raise UserError(f"An audio array needs its sample rate: pass sample_rate= (Hz); it is "
                      f"resampled to the model's {self.sample_rate} Hz.")
    if sample_rate != int(sample_rate) or sample_rate <= 0:
      raise UserError(f"sample_rate must be a positive whole number of Hz, got {sample_rate}.")
    if array.ndim == 2 and allow_batch:
      rows = list(array)
    elif array.ndim == 1:
      rows = [array]
    else:
      raise UserError(f"Audio arrays are mono: [samples], or [sounds, samples] for a batch of "
                      f"equal-length sounds; got shape {array.shape} (downmix channels first).")
    for row in rows:
      if row.size == 0:
        raise UserError("An audio array is empty.")
      if not np.all(np.isfinite(row)):
        raise UserError("An audio array holds NaN or infinite samples.")
    return [streaming.ArraySource(row, int(sample_rate), f"<array {first + i}>")
            for i, row in enumerate(rows)]

  # --- Running --------------------------------------------------------------------------------

  def _layer_forward(self, names: tuple[str, ...], pooling: str) -> Callable:
    """A jitted ``forward`` for ``stream_inputs`` giving the concatenated ``names`` layers."""
    key = (names, pooling)
    if key not in self._layer_forwards:
      import jax
      import jax.numpy as jnp

      model = self.trained.model

      @jax.jit
      def apply(variables, audio):
        found = dict(layer_outputs(model, variables, audio, pooling))
        features = jnp.concatenate([found[n].astype(jnp.float32) for n in names], axis=-1)
        return features, jnp.zeros((audio.shape[0], 0), jnp.float32), {}

      variables = jax.device_put(self.trained.variables)
      self._layer_forwards[key] = lambda audio: apply(variables, audio)
    return self._layer_forwards[key]

  def _layer_names(self, layer) -> tuple[str, ...]:
    names = (layer,) if isinstance(layer, str) else tuple(layer)
    unknown = [n for n in names if n not in self._layer_widths()]
    if unknown or not names:
      raise UserError(f"No layer {unknown[0] if unknown else '(none given)'!r} in this "
                      f"{self.family} model; model.layers lists {', '.join(self.layers)}.")
    return names

  def run(self, x, *, sample_rate: Optional[float] = None, layer=None, pooling: str = "max",
          hop: Optional[int] = None, per_segment: bool = False) -> Outputs:
    """Streams the inputs of ``x`` through the model (module doc) -> ``Outputs``.

    ``layer=None`` is the forward of ``musicrep embed`` (the embedding and the scores); a layer
    name or a list of them gives those layers concatenated (no scores). ``hop``: samples
    between segment starts (default ``input_length``). ``UserError`` naming the first input
    that could not be read."""
    if pooling not in POOLINGS:
      raise UserError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}.")
    items, single = self._inputs(x, sample_rate)
    forward = (self._forward if layer is None
               else self._layer_forward(self._layer_names(layer), pooling))
    records, batcher = streaming.stream_inputs(
        items, forward, sample_rate=self.sample_rate, input_length=self.input_length,
        batch_size=self.batch_size, hop=hop, per_segment=per_segment,
        block_seconds=self.block_seconds, progress=False)
    failed = [r for r in records if r.status != "ok"]
    if failed:
      more = f" ({len(failed) - 1} more inputs failed)" if len(failed) > 1 else ""
      raise UserError(f"Cannot use {failed[0].path}: {failed[0].reason}{more}.")
    embeddings, scores = streaming.clip_outputs(records)
    starts = [[] for _ in records]
    segment_embeddings = [[] for _ in records]
    for (index, start), (embedding, _) in zip(batcher.segment_rows, batcher.segment_outputs):
      starts[index].append(start)
      segment_embeddings[index].append(embedding)
    return Outputs(single=single, names=[r.path for r in records], embeddings=embeddings, scores=scores,
                   segment_starts=[np.asarray(s, np.int64) for s in starts],
                   segment_embeddings=[np.asarray(e, np.float32) for e in segment_embeddings])

  def embed(self, x, layer=None, *, sample_rate: Optional[float] = None,
            pooling: str = "max") -> np.ndarray:
    """Clip embeddings: float32 ``[d]`` for one input (a path or a 1-D array), ``[inputs, d]``
    for a list or a ``[sounds, samples]`` array. ``layer``: a name of ``layers`` or a list of
    them (concatenated); ``None`` is the family's embedding, as ``musicrep embed`` writes."""
    out = self.run(x, sample_rate=sample_rate, layer=layer, pooling=pooling)
    return out.embeddings[0] if out.single else out.embeddings

  def scores(self, x, *, sample_rate: Optional[float] = None) -> np.ndarray:
    """Clip scores (``scores_kind``, columns ``tag_names``): float32 ``[k]`` for one input,
    ``[inputs, k]`` for several. ``UserError`` for a model without a tag head."""
    if not self.scores_kind:
      raise UserError(f"This {self.family} model has no tag head: it gives embeddings only "
                      f"(model.embed).")
    out = self.run(x, sample_rate=sample_rate)
    return out.scores[0] if out.single else out.scores

  def tags(self, x, top_k: Optional[int] = 5, *,
           sample_rate: Optional[float] = None) -> dict | list[dict]:
    """The ``top_k`` best-scored tags (all with ``None``) as ``{name: score}``, best first: one
    dict for one input, a list of dicts for several. Unnamed outputs (classes) are named by
    their index."""
    if top_k is not None and top_k < 1:
      raise UserError(f"top_k must be at least 1 (or None for every tag), got {top_k}.")
    scores = self.scores(x, sample_rate=sample_rate)
    names = self.tag_names or tuple(str(i) for i in range(scores.shape[-1]))

    def top(row: np.ndarray) -> dict:
      order = np.argsort(-row, kind="stable")[:top_k]
      return {names[i]: float(row[i]) for i in order}

    return top(scores) if scores.ndim == 1 else [top(row) for row in scores]
