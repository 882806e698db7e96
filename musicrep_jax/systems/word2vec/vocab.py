"""Tokens, vocabulary, subsampling and the negative-sampling distribution (papers.md 13).

Follows Mikolov et al.'s word2vec (the C tool, which gensim reproduces):

* vocabulary: words with at least ``min_count`` occurrences, most frequent first (ties by first
  appearance), optionally capped at ``max_size``; other words are dropped from the text;
* subsampling of frequent words: a word of count ``c`` in a text of ``N`` kept words survives
  with probability ``min(1, (sqrt(c / (s N)) + 1) * s N / c)`` (``s = sample``, 1e-3 by
  default; 0 disables it), redrawn every epoch;
* negatives from the unigram distribution raised to 0.75.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable, Sequence

import numpy as np

from musicrep_jax.errors import UserError

_TOKEN = re.compile(r"[a-z0-9]+(?:['_][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
  """Lower-cased word tokens (letters, digits, inner ``'`` and ``_``); punctuation dropped."""
  return _TOKEN.findall(text.lower())


@dataclasses.dataclass(frozen=True)
class Vocab:
  """``words`` (most frequent first) and int64 ``counts`` ``[vocab]``."""

  words: tuple
  counts: np.ndarray

  def __post_init__(self):
    object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

  def __len__(self) -> int:
    return len(self.words)

  def __contains__(self, word: str) -> bool:
    return word in self._index

  def index(self, word: str) -> int:
    return self._index[word]

  def encode(self, tokens: Iterable[str]) -> np.ndarray:
    """int32 ids of the in-vocabulary tokens (unknown ones dropped)."""
    index = self._index
    return np.fromiter((index[t] for t in tokens if t in index), np.int32)


def build_vocab(sentences: Iterable[Sequence[str]], min_count: int = 5,
                max_size: int | None = None) -> Vocab:
  """The vocabulary of tokenised ``sentences`` (see the module docstring)."""
  counter = collections.Counter()
  for sentence in sentences:
    counter.update(sentence)
  # Counter keeps first-appearance order; a stable sort by count keeps it among ties.
  items = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda x: -x[1])
  if max_size:
    items = items[:max_size]
  if not items:
    raise UserError(f"No word occurs at least min_count={min_count} times in the text.")
  words, counts = zip(*items)
  return Vocab(tuple(words), np.asarray(counts, np.int64))


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
  """float64 ``[vocab]`` probability of keeping each occurrence (word2vec's subsampling)."""
  counts = np.asarray(counts, np.float64)
  if sample <= 0:
    return np.ones_like(counts)
  threshold = sample * counts.sum()
  return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_cdf(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
  """float32 ``[vocab]`` cumulative unigram^power distribution (last entry 1) for negatives."""
  weights = np.asarray(counts, np.float64) ** power
  cdf = np.cumsum(weights / weights.sum())
  cdf[-1] = 1.0
  return cdf.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class EncodedText:
  """A corpus as one stream: ``tokens`` int32 ``[N]`` and ``sentence`` int32 ``[N]`` (the
  sentence each token belongs to; windows never cross sentences)."""

  tokens: np.ndarray
  sentence: np.ndarray

  def __len__(self) -> int:
    return len(self.tokens)


def encode_sentences(vocab: Vocab, sentences: Iterable[Sequence[str]]) -> EncodedText:
  tokens, ids = [], []
  for number, sentence in enumerate(sentences):
    encoded = vocab.encode(sentence)
    tokens.append(encoded)
    ids.append(np.full(len(encoded), number, np.int32))
  if not tokens:
    raise UserError("The text has no sentence.")
  return EncodedText(np.concatenate(tokens), np.concatenate(ids))


def subsample(text: EncodedText, keep: np.ndarray, rng: np.random.Generator) -> EncodedText:
  """One epoch's text after dropping each token with probability ``1 - keep[token]``."""
  mask = rng.random(len(text)) < keep[text.tokens]
  return EncodedText(text.tokens[mask], text.sentence[mask])
