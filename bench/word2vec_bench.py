"""Skip-gram throughput: the JAX trainer (``musicrep_jax.systems.word2vec.sgns``) against gensim's
``Word2Vec`` (the widely used CPU implementation, optimised C with one thread per worker).

Both train skip-gram with negative sampling on the same sentences with the same settings (dim,
window, negatives, sample, min_count, epochs): the default text is the ``musicrep word2vec``
one (general text + the embedded corpus's music text), repeated ``--repeat`` times so the run
is long enough to time. Reported: raw words per second (in-vocabulary tokens before
subsampling x epochs / wall seconds of training; vocabulary building excluded for both; JAX
with and without its one compilation), and the planted-relation precision each reaches on the
generated text of the tests (same settings), so speed is not bought with quality.
``--write-doc`` updates this benchmark's section of ``docs/benchmarks.md``.

  musicrep bench word2vec [--threads 2] [--repeat 10] [--write-doc]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from typing import Optional, Sequence

from musicrep_jax.bench.report import DOC, machine, machine_line, pin_threads, replace_section


def parse_args(argv):
  p = argparse.ArgumentParser(prog="musicrep bench word2vec",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--threads", type=int, default=None, help="CPUs to use (default: all)")
  p.add_argument("--repeat", type=int, default=10, help="copies of the text (default 10)")
  p.add_argument("--dim", type=int, default=100)
  p.add_argument("--epochs", type=int, default=5)
  p.add_argument("--batch", type=int, default=1024, help="JAX centres per step")
  p.add_argument("--write-doc", action="store_true", help=f"update a section of {DOC.name}")
  return p.parse_args(argv)


def bench_text(repeat: int) -> list:
  from musicrep_jax.config_loading import load_config_file, resolve_config_spec
  from musicrep_jax.systems.word2vec import pipeline, text

  config = load_config_file(resolve_config_spec("word2vec"))
  m = config.music
  music = text.catalogue_music_sentences(
      pipeline.catalogue(config, None), splits=tuple(m.splits), holdout_split=m.holdout_split,
      holdout_words=tuple(m.holdout_words), user_sentences=m.user_sentences, repeats=m.repeats)
  return (text.general_sentences(config.general_text) + music) * repeat


def run_jax(sentences, cfg) -> dict:
  from musicrep_jax.systems.word2vec import sgns

  emb = sgns.train_skipgram(sentences, cfg, progress=False)
  s = emb.stats
  return {"words_per_s": s["words_per_s"],
          "steady_words_per_s": s["words"] * s["epochs"] / (s["train_s"] - s["compile_s"]),
          "train_s": s["train_s"], "compile_s": s["compile_s"], "vocab": s["vocab_size"],
          "words": s["words"], "vectors": emb}


def run_gensim(sentences, cfg, workers: int) -> dict:
  from gensim.models import Word2Vec

  model = Word2Vec(vector_size=cfg.dim, window=cfg.window, negative=cfg.negatives, hs=0, sg=1,
                   sample=cfg.sample, min_count=cfg.min_count, workers=workers, seed=cfg.seed,
                   alpha=cfg.learning_rate)
  model.build_vocab(sentences)
  t0 = time.perf_counter()
  _, raw = model.train(sentences, total_examples=len(sentences), epochs=cfg.epochs)
  seconds = time.perf_counter() - t0
  return {"words_per_s": raw / seconds, "train_s": seconds, "vocab": len(model.wv),
          "words": raw // cfg.epochs, "model": model}


def planted_quality(cfg_kwargs: dict, workers: int) -> dict:
  import numpy as np
  from gensim.models import Word2Vec

  from musicrep_jax.systems.word2vec import evaluate, sgns, text

  sentences, groups = text.planted_sentences()
  cfg = sgns.SkipGramConfig(**dict(cfg_kwargs, dim=32, min_count=2, batch_size=256))
  emb = sgns.train_skipgram(sentences, cfg, progress=False)
  model = Word2Vec(sentences, vector_size=32, window=cfg.window, negative=cfg.negatives, sg=1,
                   sample=cfg.sample, min_count=2, workers=workers, seed=cfg.seed,
                   epochs=cfg.epochs)
  words = list(model.wv.index_to_key)
  return {"jax": evaluate.planted_precision(emb.vocab.words, emb.vectors, groups),
          "gensim": evaluate.planted_precision(words, np.asarray(model.wv.vectors), groups)}


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args = parse_args(argv)
  threads = pin_threads(args.threads)
  from musicrep_jax.systems.word2vec import sgns

  cfg = sgns.SkipGramConfig(dim=args.dim, epochs=args.epochs, batch_size=args.batch)
  sentences = bench_text(args.repeat)
  jax_r = run_jax(sentences, cfg)
  gensim_r = run_gensim(sentences, cfg, threads)
  quality = planted_quality({"epochs": args.epochs}, threads)
  import gensim
  r = {"jax_words_per_s": jax_r["words_per_s"],
       "jax_steady_words_per_s": jax_r["steady_words_per_s"],
       "jax_compile_s": jax_r["compile_s"], "gensim_words_per_s": gensim_r["words_per_s"],
       "ratio": jax_r["words_per_s"] / gensim_r["words_per_s"],
       "words_per_epoch": jax_r["words"], "gensim_words_per_epoch": int(gensim_r["words"]),
       "vocab": jax_r["vocab"], "planted_precision": quality, "gensim": gensim.__version__,
       "machine": machine(), "threads": threads, "date": datetime.date.today().isoformat(),
       "command": "musicrep bench word2vec " + shlex.join(
           list(argv) if argv is not None else sys.argv[1:])}
  table = "\n".join([
      "| implementation | raw words/s | words/epoch | vocab | planted precision |",
      "|---|---|---|---|---|",
      f"| JAX SGNS (compile included) | {r['jax_words_per_s']:,.0f} | "
      f"{r['words_per_epoch']:,} | {r['vocab']:,} | {quality['jax']:.2f} |",
      f"| JAX SGNS (after the {r['jax_compile_s']:.1f} s compile) | "
      f"{r['jax_steady_words_per_s']:,.0f} | | | |",
      f"| gensim {r['gensim']} Word2Vec, {threads} workers | {r['gensim_words_per_s']:,.0f} | "
      f"{r['gensim_words_per_epoch']:,} | {gensim_r['vocab']:,} | {quality['gensim']:.2f} |"])
  print(table)
  print(json.dumps(r, sort_keys=True, default=str))
  if args.write_doc:
    body = "\n".join([
        "### word2vec: skip-gram throughput, JAX vs gensim",
        "",
        f"- Date: {r['date']}",
        machine_line(r["machine"], threads),
        f"- Command: `{r['command']}`",
        f"- Skip-gram, negative sampling: dim {cfg.dim}, window {cfg.window}, "
        f"{cfg.negatives} negatives, sample {cfg.sample}, min_count {cfg.min_count}, "
        f"{cfg.epochs} epochs; JAX batch {cfg.batch_size} centres. Text: the `musicrep "
        f"word2vec` text (pydoc general text + embedded-corpus music text) x {args.repeat}. "
        "Raw words/s = in-vocabulary words before subsampling x epochs / training seconds.",
        "",
        table])
    replace_section(DOC, "word2vec", body)
  return r


if __name__ == "__main__":
  main()
