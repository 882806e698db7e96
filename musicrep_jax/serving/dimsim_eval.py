"""dim-sim agreement of a trained workdir (``musicrep dimsim``): paper 13's user-study benchmark
(papers.md 14.5-14.6) for any model that gives an embedding, papers 13 / 14's above all.

1. The triplets: ``data.dimsim.load_dimsim`` (the CSV release; ``min_consensus`` 0.9 keeps the
   clean 879 of the raw release, a no-op on the clean file).
2. The clips: ``data.dimsim.clip_audio`` cuts each 3-s clip ``[clips, samples]`` from the user's
   MSD audio, decoded at the model's sample rate.
3. The embeddings: the Python API's forward (``serving.api.Model.run``, the code of ``musicrep
   embed``): each clip tiled into ``input_length`` windows (one end-aligned tail window; one
   zero-padded window for a clip shorter than the input), the window embeddings averaged per clip
   (paper 13's song embedding: the mean of 3-s windows; a 3-s model input is one window)
   -> ``[clips, D]``.
4. The space, as the metric-learning evaluator's (``evaluators.retrieval``): unit rows when the
   task compares directions (``normalize`` or a cosine loss), else the raw embedding; for a
   disentangled model (CSN) also each trained dimension's subspace, ``unit(embedding * mask)``
   (the masks of ``models.embedding.subspace_masks``).
5. ``data.dimsim.agreement`` (Euclidean distance, paper 13) in the complete space
   (``dimsim/agreement``) and per subspace (``dimsim/<label>/agreement``).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from musicrep_jax.data import dimsim as dimsim_lib
from musicrep_jax.evaluators.retrieval import evaluation_space
from musicrep_jax.models.embedding import subspace_masks
from musicrep_jax.serving import api


def clip_embeddings(model: api.Model, data: dimsim_lib.DimSim,
                    audio_dir: str | os.PathLike) -> np.ndarray:
  """Steps 2-3: float32 ``[len(data.clips), D]``, the mean window embedding of each clip."""
  clips = dimsim_lib.clip_audio(data, audio_dir, model.sample_rate)
  return model.run(clips, sample_rate=model.sample_rate).embeddings


def evaluate(workdir: str | os.PathLike, csv_path: str | os.PathLike,
             audio_dir: str | os.PathLike, *, min_consensus: float = 0.9,
             checkpoint: str = "best", data_dir: Optional[str] = None,
             batch_size: int = 32) -> dict:
  """The module's steps for ``workdir``'s ``checkpoint`` -> ``{"dimsim/agreement": float,
  "dimsim/<label>/agreement": float (disentangled models), "dimsim/triplets",
  "dimsim/clips", "dimsim/skipped_tied", "dimsim/skipped_below_consensus", "step"}``.
  ``UserError`` (one line) for a bad CSV, missing or unreadable audio (checked before the model
  loads), or a workdir without a checkpoint; the workdir is only read."""
  data = dimsim_lib.load_dimsim(csv_path, min_consensus=min_consensus)
  dimsim_lib.find_audio(data, audio_dir)  # Missing audio: an error before the model loads.
  model = api.Model.from_workdir(workdir, data_dir=data_dir, checkpoint=checkpoint,
                                 batch_size=batch_size)
  embeddings = clip_embeddings(model, data, audio_dir)
  task = model.trained.task
  unit, _ = evaluation_space(task)
  out = {"dimsim/agreement": dimsim_lib.agreement(unit(embeddings), data, metric="euclidean")}
  if getattr(task, "disentangled", False):
    masks = subspace_masks(model.trained.variables["params"], len(task.labels),
                           embeddings.shape[-1])
    for label, mask in zip(task.labels, masks):
      out[f"dimsim/{label}/agreement"] = dimsim_lib.agreement(
          unit(embeddings * mask), data, metric="euclidean")
  out.update({"dimsim/triplets": int(len(data.triplets)), "dimsim/clips": len(data.clips),
              "dimsim/skipped_tied": data.skipped["tied"],
              "dimsim/skipped_below_consensus": data.skipped["below_consensus"],
              "step": int(model.trained.step)})
  return out
