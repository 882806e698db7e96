"""Zero-shot tagging (papers 10, 11) with word vectors of the musical word embedding (paper 12):
binding (side information, the seen / unseen split) and sampling. (Learning runs:
tests/e2e/test_learning_runs.py.)"""

import numpy as np
import pytest

from musicrep_jax.data import word_vectors
from musicrep_jax.data.shards import open_shards
from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.zero_shot import instance_sets
from musicrep_jax.tasks import zero_shot
from musicrep_jax.tasks.base import UnboundTaskError


def test_split_and_instance_sets():
  names = tuple(f"t{i}" for i in range(10))
  usable = np.ones(10, bool)
  usable[9] = False
  seen = zero_shot.zsl_split(names, usable, 0.75, seed=3)
  assert seen.sum() == 6 and not seen[9]  # int(0.75 * 9): the paper's floor
  np.testing.assert_array_equal(seen, zero_shot.zsl_split(names, usable, 0.75, seed=3))
  unseen = usable & ~seen
  tags = np.zeros((3, 10), np.uint8)
  tags[0, np.flatnonzero(seen)[0]] = 1                       # A
  tags[1, [np.flatnonzero(seen)[0], np.flatnonzero(unseen)[0]]] = 1  # B
  tags[2, np.flatnonzero(unseen)[1]] = 1                     # C
  sets = instance_sets(tags, seen, unseen)
  assert [list(sets[k]) for k in "ABC"] == [[True, False, False], [False, True, False],
                                            [False, False, True]]
  with pytest.raises(UserError, match="seen_fraction"):
    zero_shot.zsl_split(names, usable, 1.0, seed=0)


def test_tag_sampler_draws_seen_tags_only():
  seen = (True, True, True, False, False)
  sampler = zero_shot.TagSampler(seen, negatives=2, seed=0)
  tags = np.array([[1, 0, 0, 1, 0], [0, 1, 1, 0, 1]], np.float32)
  out = sampler(5, {"tags": tags})
  assert list(out["pos_tag"][:1]) == [0] and out["pos_tag"][1] in (1, 2)
  for row, neg in zip(tags, out["neg_tags"]):
    assert all(seen[n] and not row[n] for n in neg)
  np.testing.assert_array_equal(out["neg_tags"], sampler(5, {"tags": tags})["neg_tags"])


def test_full_config_without_word_vectors_names_the_key():
  from musicrep_jax.configs.zero_shot import get_config
  from musicrep_jax.training import trainer

  task = trainer.make_task(get_config())
  assert task.word_vectors == "" and task.word_vectors_config == ""
  with pytest.raises(UserError, match=r"config\.task\.kwargs\.word_vectors is empty: set"):
    task.bind(type("S", (), {"tag_names": ("rock", "jazz")})())


def test_word_vectors_config_is_resolved_by_musicrep_train_not_by_the_task():
  """The task reads a word-vector file only; a config that names vectors still to be trained
  (``word_vectors_config``) is refused with a pointer to `musicrep train`."""
  from musicrep_jax.configs.zero_shot import get_config
  from musicrep_jax.training import trainer

  task = trainer.make_task(get_config("runlocal"))
  assert task.word_vectors == "" and task.word_vectors_config == "word2vec:runlocal"
  with pytest.raises(UserError, match=r"word_vectors_config='word2vec:runlocal'.*musicrep train"):
    task.bind(type("S", (), {"tag_names": ("rock", "jazz")})())


def test_bind_carries_the_side_information_and_the_model_gets_it_as_input(tmp_path):
  vectors = tmp_path / "v.txt"
  words = ("rock", "jazz", "piano", "drums", "sad")
  word_vectors.save_word2vec_text(vectors, words, np.eye(5, dtype=np.float32))
  task = zero_shot.ZeroShotTask(word_vectors=str(vectors), seen_fraction=0.6)
  shards = type("S", (), {"tag_names": ("rock", "jazz", "piano", "drums", "sad", "nothing")})()
  bound = task.bind(shards)
  side = bound.data
  assert task.bound is None and bound is not task
  assert side.vectors.shape == (6, 5) and not side.vectors[5].any()
  assert side.seen.sum() == 3 and side.unseen.sum() == 2 and not (side.seen | side.unseen)[5]
  assert bound.init_inputs(16)[1].shape == (6, 5)
  with pytest.raises(UnboundTaskError):
    task.init_inputs(16)
  other = task.bind(type("S", (), {"tag_names": ("jazz", "sad")})())
  assert other.data.vectors.shape == (2, 5)  # Each bound task keeps its own data.
  assert bound.data.vectors.shape == (6, 5)


def test_attribute_vectors_count_with_and_without_each_attribute():
  # Tags: 0 = genre a, 1 = genre b, 2 = piano, 3 = drums.
  tags = np.array([[1, 0, 1, 1], [1, 0, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1]], bool)
  got = zero_shot.attribute_vectors(tags, [0, 1], [2, 3])
  for row, counts in zip(got, ([3, 1, 0, 2], [0, 1, 1, 0])):  # [piano, drums, no piano, no drums]
    counts = np.asarray(counts, float)
    np.testing.assert_allclose(row, (counts - counts.mean()) / counts.std(), rtol=1e-6)
  np.testing.assert_array_equal(zero_shot.attribute_vectors(tags, [3], [2])[0] != 0, [True, True])
  assert not zero_shot.attribute_vectors(np.zeros((2, 4), bool), [0], [2]).any()


def test_attribute_config_errors_name_the_key(tiny_data_dir):
  from musicrep_jax.configs.zero_shot import get_config
  from musicrep_jax.training import trainer

  c = get_config("attributes,runlocal")
  c.task.kwargs.attribute_tags = ("piano", "theremin")
  with pytest.raises(UserError, match=r"attribute_tags must name tags .*theremin"):
    trainer.make_task(c).bind(open_shards(tiny_data_dir))
  with pytest.raises(ValueError, match="'attributes'"):
    get_config("attribute")
