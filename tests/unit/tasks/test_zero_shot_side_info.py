"""Zero-shot task at paper scale (papers.md 11.1, 11.7): the paper's floor split sizes, a fixed
seen set for transfer evaluation, and attribute vectors with explicit negative judgements
(OpenMIC's partial labels)."""

import numpy as np
import pytest

from musicrep_jax.configs.zero_shot import get_config
from musicrep_jax.data import word_vectors
from musicrep_jax.errors import UserError
from musicrep_jax.tasks.zero_shot import attribute_vectors, zsl_split
from musicrep_jax.training import trainer


@pytest.mark.parametrize("tags,seen", [(1126, 900), (157, 125), (50, 40), (24, 19), (8, 6)])
def test_split_sizes_are_the_papers(tags, seen):
  mask = zsl_split([str(i) for i in range(tags)], np.ones(tags, bool), 0.8, 0)
  assert mask.sum() == seen  # papers.md 11.7: MSD 900 / 226, FMA 125 / 32.


def _bind(config, names, vectors_file):
  config.task.kwargs.word_vectors = str(vectors_file)
  config.task.kwargs.word_vectors_config = ""
  return trainer.make_task(config).bind(type("S", (), {"tag_names": tuple(names)})())


def test_seen_tag_names_fix_the_split_on_other_shards(tmp_path):
  names = tuple(f"tag{i}" for i in range(12))
  vectors = tmp_path / "v.txt"
  word_vectors.save_word2vec_text(
      vectors, names, np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32))
  config = get_config()
  assert config.task.kwargs.train_set == "B"  # The headline row (papers.md 11.7).
  trained = _bind(config, names, vectors).data.split_names()
  transfer = get_config()
  transfer.task.kwargs.seen_tag_names = tuple(trained["seen"])
  # Target shards: two seen and two unseen tags of training, one new tag, reordered.
  target = (trained["unseen"][0], "tag_new", trained["seen"][1], trained["unseen"][1],
            trained["seen"][0])
  word_vectors.save_word2vec_text(
      vectors, names + ("tag_new",), np.ones((13, 4), np.float32))
  split = _bind(transfer, target, vectors).data.split_names()
  assert split == {"seen": [target[2], target[4]], "unseen": [target[0], "tag_new", target[3]]}
  transfer.task.kwargs.seen_tag_names = target
  with pytest.raises(UserError, match="is unseen"):
    _bind(transfer, target, vectors)


def test_attribute_vectors_count_present_and_judged_absent():
  # Columns: genre g0, g1; instrument a (present / judged absent), b (present / judged absent).
  tags = np.array([[1, 0, 1, 0, 0, 1],   # g0: a present, b absent
                   [1, 1, 0, 1, 0, 0],   # g0, g1: a absent, b unjudged
                   [0, 1, 0, 0, 1, 0],   # g1: b present, a unjudged
                   [1, 0, 0, 0, 0, 0]],  # g0: nothing judged
                  bool)
  got = attribute_vectors(tags, [0, 1], [2, 4], [3, 5])
  counts = np.array([[1, 0, 1, 1],   # g0: a+ 1, b+ 0, a- 1, b- 1
                     [0, 1, 1, 0]],  # g1: a+ 0, b+ 1, a- 1, b- 0
                    np.float64)
  want = (counts - counts.mean(1, keepdims=True)) / counts.std(1, keepdims=True)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Without negative columns, "absent" = not present (the embedded corpus's setup).
  np.testing.assert_allclose(attribute_vectors(tags, [0], [2, 4])[0],
                             np.array([1, 0, 2, 3]) / 1.118034 - 1.5 / 1.118034, rtol=1e-5)
