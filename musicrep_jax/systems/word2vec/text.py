"""The texts the musical word embedding trains on (papers.md 13): general English plus music text.

General text (``general_sentences``), by name or path:

* ``"pydoc"`` (default): the English prose of Python's own reference documentation, which every
  Python installation ships in the standard library (``pydoc_data.topics``: about 64k words,
  PSF licence). No public-domain running English text small enough to ship was found inside a
  PyPI package the project already depends on, so the default needs no download and no extra
  dependency. It is general (non-music) English, though technical in tone.
* ``"gensim-lee"``: the Lee news corpus that gensim ships in its tests (about 60k words), when
  gensim is installed (the ``bench`` extra);
* ``"none"``: music text only;
* a path to a plain-text file (e.g. an English Wikipedia dump as text, as the paper used).

Music text (``music_sentences``), built from a corpus's metadata, never its audio: one sentence
per track with its tag words and the tokens ``track_<id>``, ``artist_<id>``, ``album_<id>``
("musical specificity", papers.md 13.2), in a seeded random order; optionally one sentence per
user listing the tracks they listened to, most played first (co-listening). Tracks in
``holdout`` lose the ``holdout_words`` (e.g. the mood words): the association evaluation then
asks the embedding to infer those listening contexts (``evaluate.association``).

``planted_sentences`` generates a text with known groups of related words, for testing that
training recovers planted relations.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

import numpy as np

from musicrep_jax.errors import UserError
from musicrep_jax.systems.word2vec.vocab import tokenize

GENERAL_SOURCES = ("pydoc", "gensim-lee", "none")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def split_sentences(text: str) -> list[list[str]]:
  """Plain text -> tokenised sentences (split at ``.!?`` + space and at blank lines)."""
  return [s for s in (tokenize(part) for part in _SENTENCE_END.split(text)) if len(s) > 1]


def general_text(source: str) -> str:
  """The raw general text of ``source`` (see the module docstring)."""
  if source == "none":
    return ""
  if source == "pydoc":
    from pydoc_data import topics  # pylint: disable=g-import-not-at-top

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
  if source == "gensim-lee":
    try:
      import gensim.test.utils  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise UserError("general text 'gensim-lee' needs gensim (pip install gensim, or the "
                      "project's bench extra); use 'pydoc' or a file path.") from None
    with open(gensim.test.utils.datapath("lee_background.cor"), encoding="utf-8") as f:
      return f.read()
  try:
    with open(source, encoding="utf-8", errors="replace") as f:
      return f.read()
  except OSError:
    raise UserError(f"general text {source!r} is neither one of {', '.join(GENERAL_SOURCES)} "
                    "nor a readable text file.") from None


def general_sentences(source: str) -> list[list[str]]:
  return split_sentences(general_text(source))


def tag_token(tag: str) -> str:
  """A tag name as one token: lower case, inner spaces and hyphens as ``_``."""
  return "_".join(tokenize(tag))


def music_sentences(tag_names: Sequence[str], tags: np.ndarray, track: np.ndarray,
                    artist: np.ndarray, album: np.ndarray, *, seed: int = 0,
                    interactions: Optional[np.ndarray] = None,
                    holdout: Optional[np.ndarray] = None,
                    holdout_words: Sequence[str] = (), repeats: int = 1) -> list[list[str]]:
  """Music text of a catalogue (module docstring).

  Args:
    tag_names: ``[T]``. tags: multi-hot ``[N, T]``. track, artist, album: int ``[N]``.
    seed: order of the tokens within sentences.
    interactions: optional int ``[M, 3]`` (user, track id, play count): user sentences of the
      tracks in the catalogue.
    holdout: optional bool ``[N]``: tracks whose text omits ``holdout_words``.
    repeats: copies of every track sentence (each in its own order).
  """
  rng = np.random.default_rng(seed)
  words = [tag_token(t) for t in tag_names]
  dropped = {tag_token(w) for w in holdout_words}
  holdout = np.zeros(len(track), bool) if holdout is None else np.asarray(holdout, bool)
  out = []
  for _ in range(repeats):
    for i in range(len(track)):
      sentence = [f"track_{int(track[i])}", f"artist_{int(artist[i])}", f"album_{int(album[i])}"]
      sentence += [words[t] for t in np.flatnonzero(tags[i])
                   if not (holdout[i] and words[t] in dropped)]
      out.append([sentence[j] for j in rng.permutation(len(sentence))])
  if interactions is not None and len(interactions):
    known = set(int(t) for t in track)
    inter = np.asarray(interactions)
    inter = inter[np.isin(inter[:, 1], list(known))]
    order = np.lexsort((-inter[:, 2], inter[:, 0]))
    inter = inter[order]
    for user in np.unique(inter[:, 0]):
      listened = inter[inter[:, 0] == user, 1]
      if len(listened) > 1:
        out.append([f"track_{int(t)}" for t in listened])
  return out


@dataclasses.dataclass(frozen=True)
class Catalogue:
  """A dataset's metadata, one row per track: ``tags`` {0,1} ``[N, T]``, ``track``, ``artist``,
  ``album`` int ``[N]``, ``split`` str ``[N]``, optional ``interactions`` int ``[M, 3]``."""

  tag_names: tuple
  tags: np.ndarray
  track: np.ndarray
  artist: np.ndarray
  album: np.ndarray
  split: np.ndarray
  interactions: Optional[np.ndarray] = None


def corpus_catalogue(corpus) -> Catalogue:
  """The catalogue of a ``musicrep_jax.data_pipelines.synthetic_corpus.SyntheticCorpus`` (no
  rendering)."""
  clips = corpus.clips
  return Catalogue(tuple(corpus.tag_names), np.stack([c.tags for c in clips]),
                   np.array([c.track for c in clips]), np.array([c.artist for c in clips]),
                   np.array([c.album for c in clips]), np.array([c.split for c in clips]),
                   corpus.interactions)


def shards_catalogue(shards) -> Catalogue:
  """The catalogue of prepared shards (reads every record; interactions from the side file)."""
  rows = {k: [] for k in ("tags", "track", "artist", "album", "split")}
  for split in shards.splits:
    source = shards.source(split)
    for i in range(len(source)):
      record = source[i]
      for k in ("tags", "track", "artist", "album"):
        rows[k].append(np.asarray(record[k]))
      rows["split"].append(split)
  side = (shards.metadata.get("side_files") or {}).get("interactions")
  path = shards.dataset_dir / side if side else None
  return Catalogue(tuple(shards.tag_names), np.stack(rows["tags"]), np.array(rows["track"]),
                   np.array(rows["artist"]), np.array(rows["album"]), np.array(rows["split"]),
                   np.load(path) if path is not None and path.exists() else None)


def catalogue_music_sentences(cat: Catalogue, *,
                              splits: Sequence[str] = ("train", "validation", "test"),
                              holdout_split: Optional[str] = "test",
                              holdout_words: Sequence[str] = (), user_sentences: bool = True,
                              repeats: int = 1, seed: int = 0) -> list[list[str]]:
  """``music_sentences`` of the tracks of ``splits``; ``holdout_split``'s tracks lose the
  ``holdout_words``."""
  rows = np.isin(cat.split, list(splits))
  return music_sentences(
      cat.tag_names, cat.tags[rows], cat.track[rows], cat.artist[rows], cat.album[rows],
      seed=seed, interactions=cat.interactions if user_sentences else None,
      holdout=cat.split[rows] == holdout_split, holdout_words=holdout_words, repeats=repeats)


def planted_sentences(num_groups: int = 10, group_size: int = 4, num_sentences: int = 3000,
                      filler_vocab: int = 400, sentence_length: int = 12,
                      seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
  """A generated text with planted relations: ``(sentences, groups)``.

  ``groups`` are ``num_groups`` lists of ``group_size`` related words ``g<i>_<j>``. Every
  sentence holds ``sentence_length`` filler words drawn from a Zipf(1.1) vocabulary ``w0..``
  and 3 distinct words of one group at random positions, so related words share their
  distinctive contexts (each other) and nothing else: a skip-gram model should make the other
  members of a word's group its nearest neighbours.
  """
  rng = np.random.default_rng(seed)
  ranks = np.arange(1, filler_vocab + 1, dtype=np.float64)
  p = ranks ** -1.1
  p /= p.sum()
  groups = [[f"g{i}_{j}" for j in range(group_size)] for i in range(num_groups)]
  sentences = []
  for _ in range(num_sentences):
    words = [f"w{int(j)}" for j in rng.choice(filler_vocab, sentence_length, p=p)]
    group = groups[int(rng.integers(num_groups))]
    members = rng.choice(group_size, min(3, group_size), replace=False)
    for at, j in zip(rng.choice(sentence_length, len(members), replace=False), members):
      words[int(at)] = group[int(j)]
    sentences.append(words)
  return sentences, groups
