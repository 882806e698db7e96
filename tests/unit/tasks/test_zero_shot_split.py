"""The paper-scale zero-shot config splits the bound shards' own tags 80 / 20 (papers.md 11.1;
issue 18 item 4): 40 seen / 10 unseen on 50 tags, seeded; ``:runlocal`` keeps its split."""

import numpy as np

from musicrep_jax.configs.zero_shot import get_config
from musicrep_jax.data import word_vectors
from musicrep_jax.training import trainer


def _bind(config, names, vectors_file):
  config.task.kwargs.word_vectors = str(vectors_file)
  config.task.kwargs.word_vectors_config = ""
  return trainer.make_task(config).bind(type("S", (), {"tag_names": tuple(names)})())


def test_paper_config_splits_fifty_shard_tags_forty_seen_ten_unseen(tmp_path):
  names = tuple(f"tag{i}" for i in range(50))
  vectors = tmp_path / "v.txt"
  word_vectors.save_word2vec_text(
      vectors, names, np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32))
  split = _bind(get_config(), names, vectors).data.split_names()
  assert (len(split["seen"]), len(split["unseen"])) == (40, 10)
  assert sorted(split["seen"] + split["unseen"]) == sorted(names)
  assert _bind(get_config(), names, vectors).data.split_names() == split  # Seeded.
  other = get_config()
  other.task.kwargs.split_seed = 1
  assert _bind(other, names, vectors).data.split_names() != split


def test_runlocal_split_equals_the_split_of_its_shards_own_tags(tmp_path):
  runlocal = get_config("runlocal")
  names = runlocal.task.kwargs.train_tag_names
  vectors = tmp_path / "v.txt"
  word_vectors.save_word2vec_text(
      vectors, names, np.random.default_rng(0).normal(size=(len(names), 8)).astype(np.float32))
  split = _bind(runlocal, names, vectors).data.split_names()
  assert (len(split["seen"]), len(split["unseen"])) == (19, 5)
  assert _bind(get_config(), names, vectors).data.split_names() == split
