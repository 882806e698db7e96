"""Evaluating a word embedding: nearest neighbours, planted relations, and paper 12's association
between listening-context words and tracks (papers.md 13).

Association (``association``): for each context word ``w`` (e.g. a mood: "happy", "calm") and
each track token ``track_<id>``, the score is the cosine of their vectors; a track is a positive
for ``w`` when its ground-truth annotation has ``w``. Reported: ROC-AUC per context word over the
tracks (``musicrep_jax.ops.metrics``) and its mean. Scored on tracks whose text never paired them
with the context words (``text.music_sentences(holdout=...)``), it measures whether the
embedding infers a listening context from artists, genres, instruments and co-listening. The
paper's exact protocol is [unknown]; this is the analogue on the embedded corpus.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from musicrep_jax.ops import metrics


def unit_rows(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest(words: Sequence[str], vectors: np.ndarray, query: str, k: int = 10) -> list:
  """The ``k`` words closest to ``query`` by cosine (``query`` itself left out):
  ``[(word, cosine)]``, closest first."""
  index = list(words).index(query)
  unit = unit_rows(vectors)
  sims = unit @ unit[index]
  sims[index] = -np.inf
  top = np.argsort(-sims)[:k]
  return [(words[i], float(sims[i])) for i in top]


def planted_precision(words: Sequence[str], vectors: np.ndarray,
                      groups: Sequence[Sequence[str]]) -> float:
  """Mean over planted words of the fraction of its ``len(group) - 1`` nearest neighbours that
  are in its group (1 = every relation recovered; chance ~ group size / vocabulary)."""
  hits = []
  for group in groups:
    for word in group:
      found = {w for w, _ in nearest(words, vectors, word, len(group) - 1)}
      hits.append(len(found & set(group)) / (len(group) - 1))
  return float(np.mean(hits))


def association(words: Sequence[str], vectors: np.ndarray, context_words: Sequence[str],
                track_ids: Sequence[int], truth: np.ndarray) -> dict:
  """Listening-context association (module docstring).

  Args:
    words, vectors: the embedding (``[vocab]``, ``[vocab, dim]``).
    context_words: ``[C]`` words (must be in the vocabulary).
    track_ids: ``[N]`` track ids; tracks without a ``track_<id>`` vector are skipped.
    truth: {0, 1} ``[N, C]`` ground truth.

  Returns:
    ``{"association_auc": mean, "auc/<word>": per word, "tracks": scored tracks}``.
  """
  index = {w: i for i, w in enumerate(words)}
  rows = [index.get(f"track_{int(t)}", -1) for t in track_ids]
  have = np.array([r >= 0 for r in rows])
  unit = unit_rows(vectors)
  track_vecs = unit[[r for r in rows if r >= 0]]
  context = unit[[index[w] for w in context_words]]
  scores = track_vecs @ context.T
  auc = np.asarray(metrics.roc_auc_per_tag(scores, np.asarray(truth)[have]))
  out = {"association_auc": float(np.nanmean(auc)), "tracks": int(have.sum())}
  out.update({f"auc/{w}": float(a) for w, a in zip(context_words, auc)})
  return out
