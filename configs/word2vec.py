"""Musical word embedding (paper 12, papers.md 13): skip-gram on general + music text.

``musicrep train --config word2vec --workdir DIR`` (runner ``word2vec``; alias ``musicrep
word2vec --config word2vec --out DIR``) trains on the general text (``general_text``: "pydoc",
"gensim-lee", "none" or a text file, see ``musicrep_jax/systems/word2vec/text.py``) plus the
embedded corpus's music text (tags, track / artist / album tokens, users' listening lists),
writes ``DIR/vectors.txt`` (word2vec text format) and scores the association between the mood
words and the held-out tracks whose text lacks them.
Paper 12's hyper-parameters are [unknown]: word2vec's defaults, but 10 epochs (the text is
small; mood association on held-out tracks 0.72 at 10 epochs vs 0.55 at 3 with dim 32).
``:runlocal`` is a ~1 minute run.
"""

import ml_collections

from musicrep_jax.configs.common import RUNLOCAL_CORPUS

VARIANTS = ("runlocal",)


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.runner = "word2vec"
  c.skipgram = dict(dim=100, window=5, negatives=5, min_count=5, max_vocab=0, sample=1e-3,
                    epochs=10, batch_size=1024, learning_rate=0.025,
                    min_learning_rate_ratio=1e-4, seed=0)
  c.general_text = "pydoc"
  c.music = dict(corpus=dict(RUNLOCAL_CORPUS), splits=("train", "validation", "test"),
                 holdout_split="test", holdout_words=("happy", "sad", "calm", "angry"),
                 user_sentences=True, repeats=5, seed=0)
  c.mesh = dict(data=-1, fsdp=1)
  c.progress_bar = True
  if arg == "runlocal":
    c.skipgram.dim = 32
    c.skipgram.epochs = 3
  elif arg:
    raise ValueError(f"configs/word2vec.py knows the argument 'runlocal', not {arg!r}")
  return c
