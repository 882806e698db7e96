"""The ``"word2vec"`` runner (``musicrep train --config word2vec``, alias ``musicrep word2vec``):
texts -> skip-gram -> vectors file -> association scores.

``run(config, workdir=OUT)`` writes ``OUT/vectors.txt`` (word2vec text format) and, last,
``OUT/summary.json``; OUT may be ``gs://...`` (``storage.local_dir``).
"""

from __future__ import annotations

import json
import pathlib
from typing import Optional

import ml_collections

from musicrep_jax import storage
from musicrep_jax.data import word_vectors
from musicrep_jax.errors import UserError
from musicrep_jax.registry import RUNNERS
from musicrep_jax.systems.word2vec import evaluate, sgns, text
from musicrep_jax.training import mesh as mesh_lib

VECTORS_FILE = "vectors.txt"
SUMMARY_FILE = "summary.json"


def catalogue(config: ml_collections.ConfigDict, data_dir: Optional[str]) -> text.Catalogue:
  """The music catalogue: ``data_dir``'s shards, or the embedded corpus's metadata."""
  if data_dir is not None:
    from musicrep_jax.data.shards import open_shards  # pylint: disable=g-import-not-at-top

    shards = open_shards(data_dir)
    if "corpus_config" in shards.metadata:  # Synthetic shards: rebuild the metadata, no reads.
      from musicrep_jax.data_pipelines import (  # pylint: disable=g-import-not-at-top
          synthetic_builder, synthetic_corpus)

      return text.corpus_catalogue(synthetic_corpus.SyntheticCorpus(
          synthetic_builder.corpus_config_from_metadata(shards.metadata)))
    return text.shards_catalogue(shards)
  from musicrep_jax.data_pipelines import synthetic_corpus  # pylint: disable=g-import-not-at-top

  corpus_kwargs = dict(config.music.corpus.to_dict())
  corpus_kwargs.pop("sample_rate", None)
  return text.corpus_catalogue(synthetic_corpus.SyntheticCorpus(
      synthetic_corpus.CorpusConfig(**corpus_kwargs)))


def skipgram_config(config: ml_collections.ConfigDict) -> sgns.SkipGramConfig:
  try:
    return sgns.SkipGramConfig(**config.skipgram.to_dict())
  except TypeError as e:
    raise UserError(f"config.skipgram does not fit SkipGramConfig: {e}") from None


def held_out_association(embedding: sgns.WordEmbedding, cat: text.Catalogue,
                         holdout_split: str, context_words) -> dict:
  """``evaluate.association`` of ``context_words`` (tag words) on ``holdout_split``'s tracks."""
  tag_tokens = [text.tag_token(t) for t in cat.tag_names]
  words = [text.tag_token(w) for w in context_words
           if text.tag_token(w) in tag_tokens and text.tag_token(w) in embedding.vocab]
  rows = cat.split == holdout_split
  if not words or not rows.any():
    return {}
  truth = cat.tags[rows][:, [tag_tokens.index(w) for w in words]]
  return evaluate.association(embedding.vocab.words, embedding.vectors, words, cat.track[rows],
                              truth)


def train_and_save(config: ml_collections.ConfigDict, out: pathlib.Path,
                   data_dir: Optional[str] = None) -> dict:
  """Trains on ``config.general_text`` + the music text; writes ``out/vectors.txt``."""
  m = config.music
  cat = catalogue(config, data_dir)
  general = text.general_sentences(config.general_text)
  music = text.catalogue_music_sentences(
      cat, splits=tuple(m.splits), holdout_split=m.holdout_split,
      holdout_words=tuple(m.holdout_words), user_sentences=m.user_sentences,
      repeats=m.repeats, seed=m.seed)
  mesh = mesh_lib.make_mesh(config.mesh.data, config.mesh.fsdp)
  embedding = sgns.train_skipgram(general + music, skipgram_config(config), mesh=mesh,
                                  progress=config.get("progress_bar", True))
  out.mkdir(parents=True, exist_ok=True)
  import jax  # pylint: disable=g-import-not-at-top

  if jax.process_index() == 0:
    word_vectors.save_word2vec_text(out / VECTORS_FILE, embedding.vocab.words,
                                    embedding.vectors)
  summary = dict(embedding.stats, dim=int(embedding.vectors.shape[1]),
                 general_sentences=len(general), music_sentences=len(music),
                 vectors=str(out / VECTORS_FILE))
  summary.update(held_out_association(embedding, cat, m.holdout_split, m.holdout_words))
  summary["neighbours"] = {w: [n for n, _ in evaluate.nearest(embedding.vocab.words,
                                                              embedding.vectors, w, 5)]
                           for w in map(text.tag_token, cat.tag_names) if w in embedding.vocab}
  return summary


@RUNNERS.register("word2vec")
def run(config: ml_collections.ConfigDict, *, workdir: str | pathlib.Path,
        data_dir: Optional[str] = None) -> dict:
  """``train_and_save`` into ``workdir``, then ``summary.json`` (written last: a finished run).
  A remote ``workdir`` (``gs://...``) is written in a local folder and copied up at the end
  (``storage.local_dir``). Returns the summary with ``report``, its one-line description."""
  with storage.local_dir(workdir) as local:
    out = storage.as_path(workdir) if storage.is_remote(workdir) else local  # As shown.
    summary = train_and_save(config, local, data_dir=data_dir)
    summary["vectors"] = str(out / VECTORS_FILE)
    (local / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
  line = (f"Vectors: {out / VECTORS_FILE} ({summary['vocab_size']} words, {summary['dim']}-d); "
          f"{summary['words_per_s']:.0f} words/s; mood association ROC-AUC on held-out tracks "
          f"{summary.get('association_auc', float('nan')):.4f}")
  return dict(summary, report=[line])
