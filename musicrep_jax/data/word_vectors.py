"""Word vectors in the standard file formats: word2vec text and binary, GloVe text.

* word2vec text (``.txt``/``.vec``): a header line ``"<vocab> <dim>"``, then one line per word,
  ``word v1 ... vD`` separated by single spaces (what the C tool, gensim and fastText write).
* word2vec binary (``.bin``): the same header line, then per word ``word`` + a space + ``dim``
  little-endian float32 values (+ an optional newline).
* GloVe text: word2vec text without the header line.

``load_word_vectors(path)`` detects the format (``format="auto"``); ``save_word2vec_text`` and
``save_word2vec_binary`` write them. Tag names map to vectors through ``phrase_vector``
(multi-word tags such as ``"hip-hop"`` or ``"female vocalists"``: the mean of the known words,
papers.md 12 leaves the exact mapping [unknown]).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from typing import Iterable, Optional, Sequence

import numpy as np

from musicrep_jax.errors import UserError

FORMATS = ("auto", "word2vec_text", "word2vec_binary", "glove")
_SPLIT_PHRASE = re.compile(r"[\s_\-/&,]+")


@dataclasses.dataclass(frozen=True)
class WordVectors:
  """``words`` (one per row) and float32 ``vectors`` ``[vocab, dim]``."""

  words: tuple
  vectors: np.ndarray

  def __post_init__(self):
    if len(self.words) != len(self.vectors):
      raise ValueError(f"{len(self.words)} words but {len(self.vectors)} vectors")
    object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

  @property
  def dim(self) -> int:
    return int(self.vectors.shape[1])

  def __contains__(self, word: str) -> bool:
    return word in self._index

  def index(self, word: str) -> int:
    return self._index[word]

  def get(self, word: str) -> Optional[np.ndarray]:
    i = self._index.get(word)
    return None if i is None else self.vectors[i]

  def phrase_vector(self, phrase: str, lowercase: bool = True) -> Optional[np.ndarray]:
    """float32 ``[dim]`` for a word or a multi-word tag: the word itself (as given, lower-cased,
    or with its parts joined by ``_``, the phrase token of ``word2vec.text.tag_token``) if
    known, else the mean of its known parts (split on spaces, ``_``, ``-``, ``/``, ``&``, ``,``); None if none known."""
    parts = [p for p in _SPLIT_PHRASE.split(phrase.lower() if lowercase else phrase) if p]
    for candidate in (phrase, phrase.lower() if lowercase else phrase, "_".join(parts)):
      if candidate in self._index:
        return self.vectors[self._index[candidate]]
    known = [self.vectors[self._index[p]] for p in parts if p in self._index]
    return np.mean(known, axis=0).astype(np.float32) if known else None

  def label_matrix(self, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 [len(labels), dim] vectors, bool [len(labels)] found)``; rows of labels with
    no known word are zeros and ``found`` False."""
    out = np.zeros((len(labels), self.dim), np.float32)
    found = np.zeros(len(labels), bool)
    for i, label in enumerate(labels):
      v = self.phrase_vector(label)
      if v is not None:
        out[i], found[i] = v, True
    return out, found


def _check_rows(words: Sequence[str], vectors: np.ndarray) -> np.ndarray:
  vectors = np.asarray(vectors, np.float32)
  if vectors.ndim != 2 or len(words) != vectors.shape[0]:
    raise ValueError(f"need one row of vectors [vocab, dim] per word; got {len(words)} words and "
                     f"shape {vectors.shape}")
  bad = [w for w in words if not w or any(c.isspace() for c in w)]
  if bad:
    raise ValueError(f"words must be non-empty without whitespace; got {bad[:3]}")
  return vectors


def save_word2vec_text(path: str | os.PathLike, words: Sequence[str], vectors) -> None:
  """Writes the word2vec text format (header ``"V D"``, then ``word v1 .. vD`` per line)."""
  vectors = _check_rows(words, vectors)
  with open(path, "w", encoding="utf-8") as f:
    f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
    for word, row in zip(words, vectors):
      f.write(word + " " + " ".join(f"{x:.6g}" for x in row) + "\n")


def save_word2vec_binary(path: str | os.PathLike, words: Sequence[str], vectors) -> None:
  """Writes the word2vec binary format (header line, then ``word `` + float32 LE row + ``\\n``)."""
  vectors = _check_rows(words, vectors)
  with open(path, "wb") as f:
    f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n".encode())
    for word, row in zip(words, vectors):
      f.write(word.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")


def _parse_text_lines(lines: Iterable[str], dim: Optional[int], where: str) -> WordVectors:
  words, rows = [], []
  for number, line in enumerate(lines, 1):
    parts = line.rstrip("\n").rstrip(" ").split(" ")
    if len(parts) < 2:
      continue
    if dim is None:
      dim = len(parts) - 1
    if len(parts) != dim + 1:
      raise UserError(f"{where}: line {number} has {len(parts) - 1} values, expected {dim}.")
    try:
      rows.append(np.asarray(parts[1:], np.float32))
    except ValueError:
      raise UserError(f"{where}: line {number} has a value that is not a number.") from None
    words.append(parts[0])
  if not words:
    raise UserError(f"{where} holds no word vectors.")
  return WordVectors(tuple(words), np.stack(rows))


def _header(line: str) -> Optional[tuple[int, int]]:
  parts = line.split()
  if len(parts) == 2 and all(p.isdigit() for p in parts):
    return int(parts[0]), int(parts[1])
  return None


def _load_binary(path: pathlib.Path) -> WordVectors:
  data = path.read_bytes()
  newline = data.find(b"\n")
  header = _header(data[:newline].decode("utf-8", "replace")) if newline > 0 else None
  if header is None:
    raise UserError(f"{path} is not a word2vec binary file (no 'VOCAB DIM' header line).")
  count, dim = header
  words, vectors, pos = [], np.empty((count, dim), np.float32), newline + 1
  for i in range(count):
    while pos < len(data) and data[pos:pos + 1] in (b"\n", b" "):
      pos += 1
    space = data.find(b" ", pos)
    end = space + 1 + 4 * dim
    if space < 0 or end > len(data):
      raise UserError(f"{path} ends after {i} of the {count} vectors its header announces.")
    words.append(data[pos:space].decode("utf-8", "replace"))
    vectors[i] = np.frombuffer(data[space + 1:end], "<f4")
    pos = end
  return WordVectors(tuple(words), vectors)


def detect_format(path: str | os.PathLike) -> str:
  """``word2vec_binary``, ``word2vec_text`` or ``glove`` from the file's first bytes."""
  with open(path, "rb") as f:
    head = f.read(4096)
  first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
  if _header(first) is None:
    return "glove"
  rest = head[len(first) + 1:]
  try:
    rest.decode("utf-8")
  except UnicodeDecodeError as e:
    if e.start < len(rest) - 4:  # Not a character cut at the end of the buffer.
      return "word2vec_binary"
  return "word2vec_text"


def load_word_vectors(path: str | os.PathLike, format: str = "auto") -> WordVectors:  # pylint: disable=redefined-builtin
  """Reads word vectors from ``path`` (formats: module docstring; ``"auto"`` detects)."""
  path = pathlib.Path(path).expanduser()
  if format not in FORMATS:
    raise UserError(f"word-vector format {format!r} is not one of {', '.join(FORMATS)}.")
  if not path.is_file():
    raise UserError(f"The word-vector file {path} does not exist.")
  if format == "auto":
    format = detect_format(path)
  if format == "word2vec_binary":
    return _load_binary(path)
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = iter(f)
    dim = None
    if format == "word2vec_text":
      header = _header(next(lines, ""))
      if header is None:
        raise UserError(f"{path} has no 'VOCAB DIM' header line; is it GloVe "
                        "(format='glove')?")
      dim = header[1]
    return _parse_text_lines(lines, dim, str(path))
