"""The musical word embedding (paper 12) through the CLI: `musicrep train --config
word2vec:runlocal` and the `musicrep word2vec` alias write the same vectors. (Vocabulary,
sampling, SGNS training, vectors IO: tests/unit/systems/word2vec/test_word2vec.py.)"""

import json

import pytest

from tests.helpers import run_cli


@pytest.mark.slow
def test_train_and_the_word2vec_alias_run_the_same_runner(tmp_path):
  """`musicrep train --config word2vec:runlocal` writes what `musicrep word2vec` writes."""
  tiny = ["--config.skipgram.epochs=1", "--config.music.repeats=1", "--config.general_text=none",
          "--config.music.corpus.num_clips=120", "--config.progress_bar=false"]
  train = run_cli(["train", "--config", "word2vec:runlocal", "--workdir", str(tmp_path / "t"),
                   *tiny])
  alias = run_cli(["word2vec", "--config", "word2vec:runlocal", "--out", str(tmp_path / "a"),
                   *tiny])
  lines = [json.loads(p.stdout.strip().splitlines()[-1]) for p in (train, alias)]
  assert lines[0]["vocab_size"] == lines[1]["vocab_size"] > 0
  for out in ("t", "a"):
    assert (tmp_path / out / "vectors.txt").exists() and (tmp_path / out / "summary.json").exists()
  vectors = [(tmp_path / out / "vectors.txt").read_text() for out in ("t", "a")]
  assert vectors[0] == vectors[1]
