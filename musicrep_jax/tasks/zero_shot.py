"""Zero-shot tagging with side information (papers 10 and 11; papers.md 11 and 12).

Model: ``models/zero_shot.py`` (audio branch and a linear label branch into one space, cosine
score). Side information (``side_info``):

* ``"word_vectors"``: word vectors of the tag words from a standard file (``word_vectors``:
  word2vec text/binary or GloVe; e.g. ``musicrep word2vec``'s ``vectors.txt``, paper 12), a
  multi-word tag being the mean of its words; tags without a vector take no part;
* ``"attributes"``: paper 10's attribute setup (papers.md 11.1: FMA genres described by
  OpenMIC instruments): the labels are the tags named in ``attribute_labels`` (the embedded
  corpus: its 8 genres), each described by a ``2 * len(attribute_tags)`` vector built from the
  clips of ``attribute_split`` that carry it (:func:`attribute_vectors`: per attribute tag, a
  positive slot counting the label's clips with it and a negative slot counting those without,
  or, with ``attribute_negative_tags``, those carrying the matching negative tag: OpenMIC's
  partial labels, "labelled absent" differs from "not labelled present"; then the vector
  standardised); every other tag takes no part. An empty ``attribute_labels`` means every tag
  of the shards that is not an attribute tag (``configs/zero_shot.py:fma``: the FMA genres of
  ``data_pipelines/fma_openmic_builder.py``). [choice] the counts come from the annotations of
  ``attribute_split`` (default the training split; the paper accumulates OpenMIC's over all
  19,466 tracks of its genres, ``attribute_split`` names one split only).

Split (papers.md 11.1, ``zsl_split``): the tags with vectors are split at random into
``int(seen_fraction * n)`` seen (X) tags (the floor, as the paper's ``data_split_tag.py``) and
unseen (Y) tags (seeded by ``split_seed``). The tags split are ``train_tag_names`` or, when it
is empty (``configs/zero_shot.py`` at paper scale), the bound shards' own tags: MSD-50 shards
give 40 seen / 10 unseen, the paper's 1,126 tags 900 / 226 and its 157 FMA genres 125 / 32
(papers.md 11.7). ``seen_tag_names``, when set, IS the seen set (no draw): the recorded split
of a trained run (``run_info.json``'s ``tag_split["seen"]``) evaluated on other shards, or a
split chosen elsewhere. ``SideInformation.split_names()`` gives the two lists by name.
Instances: A = annotated only with seen tags, B = with seen and unseen tags, C = with no seen
tag. Training uses the training split's instances of ``train_set`` ("A", "B" or "AB"); only
seen tags are ever shown to the model.

Loss (papers.md 11.4): per clip, a positive = one of its seen tags drawn uniformly, ``negatives``
= seen tags it does not carry (without replacement when there are enough); hinge
``max(0, margin - s(a, t+) + s(a, t-))`` on cosines, summed over the batch and negatives
(``losses.triplet_margin_loss``). The sampling happens in the Grain pipeline
(``TagSampler``), seeded by the global step.

Evaluation (``evaluators/zero_shot.py``, papers.md 11.6): seen / unseen label (retrieval) and
instance (annotation) ROC-AUC and mAP from the clip-averaged cosines; flat hit@k and P@k for
``top_k`` (the paper's 1, 5, 10); precision / recall / F1 at each of ``thresholds`` (cosines
>= threshold); paper 11's annotation accuracy (top-1 over ``accuracy_tags``, default every tag
with side information: on GTZAN shards its 10 genres).

Lifecycle: ``bind(shards)`` loads the side information of the shards' tags and draws the
seen / unseen split (``SideInformation``); the model receives the label vectors as an input
(``forward``), so nothing about the data is captured anywhere else.

Word vectors: the task reads only a word-vector FILE, ``word_vectors``. ``word_vectors_config``
(``configs/zero_shot.py:runlocal`` sets ``word2vec:runlocal``) names a ``musicrep word2vec``
config whose vectors ``musicrep train`` trains once into ``$MUSICREP_CACHE`` and writes into
``word_vectors`` before training (``musicrep_jax.systems``); a task bound with only
``word_vectors_config`` set raises a ``UserError`` saying so, and with neither a ``UserError``
names the key.

Knowledge transfer (paper 11): evaluate a trained workdir on other shards whose tags differ
(``musicrep eval --workdir W --data-dir OTHER``): a target tag is seen only if its name is a
seen tag of training, every other target tag with a word vector is unseen. The seen names are
``seen_tag_names`` when set (the restore path sets them from the workdir's recorded
``tag_split``), else the split redrawn from ``train_tag_names`` (``:runlocal`` sets the
embedded corpus's tags). Paper 11's GTZAN number (annotation accuracy 0.7310, papers.md 12) is
the evaluator's ``acc_i_all`` on GTZAN shards (``data_pipelines/gtzan_builder.py``): the
clips' top-1 among the 10 genre names, seen or unseen alike.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from musicrep_jax.data import pipeline as input_pipeline
from musicrep_jax.data.pk_batches import read_label_records
from musicrep_jax.data.word_vectors import load_word_vectors
from musicrep_jax.errors import UserError
from musicrep_jax.evaluators.zero_shot import instance_sets
from musicrep_jax.ops import losses
from musicrep_jax.registry import TASKS
from musicrep_jax.tasks.base import Task

TRAIN_SETS = ("A", "B", "AB")
SIDE_INFORMATION = ("word_vectors", "attributes")


def attribute_vectors(tags: np.ndarray, label_columns, attribute_columns,
                      negative_columns=None) -> np.ndarray:
  """Paper 10's attribute side information (module docstring; papers.md 11.1,
  ``data_prep_instrument_vector.py``).

  Args:
    tags: bool ``[clips, tags]`` annotations.
    label_columns, attribute_columns: tag indices of the labels ``[L]`` and attributes ``[A]``.
    negative_columns: tag indices ``[A]`` marking each attribute labelled absent (OpenMIC's
      negative judgements); None: a clip without the attribute counts as a negative.

  Returns:
    float32 ``[L, 2A]``: for each label, ``[count with a for a in attributes] + [count of
    negatives of a]`` over the clips carrying it, standardised over its ``2A`` slots (zero mean,
    unit variance; a label on no clip, or with equal slots, gets zeros).
  """
  tags = np.asarray(tags, bool)
  carriers = tags[:, list(label_columns)].T.astype(np.float64)  # [L, clips]
  present = tags[:, list(attribute_columns)].astype(np.float64)  # [clips, A]
  absent = (1.0 - present if negative_columns is None
            else tags[:, list(negative_columns)].astype(np.float64))
  counts = carriers @ np.concatenate([present, absent], axis=1)  # [L, 2A]
  spread = counts.std(axis=1, keepdims=True)
  out = (counts - counts.mean(axis=1, keepdims=True)) / np.maximum(spread, 1e-12)
  return np.where(spread > 0, out, 0.0).astype(np.float32)


def zsl_split(tag_names, usable: np.ndarray, seen_fraction: float, seed: int) -> np.ndarray:
  """bool ``[T]`` seen mask: ``int(seen_fraction * usable)`` usable tags chosen at random (the
  floor, as the paper's ``int(num_whole_set * 0.8)``: 1,126 tags -> 900 seen)."""
  usable_idx = np.flatnonzero(usable)
  n_seen = int(np.floor(seen_fraction * len(usable_idx) + 1e-9))  # 1e-9: 0.29 * 100 = 28.99..
  if not 0 < n_seen < len(usable_idx):
    raise UserError(f"seen_fraction={seen_fraction} leaves no seen or no unseen tag among the "
                    f"{len(usable_idx)} tags with side information ({', '.join(tag_names)}).")
  chosen = np.random.default_rng([seed, 7]).permutation(usable_idx)[:n_seen]
  seen = np.zeros(len(tag_names), bool)
  seen[chosen] = True
  return seen


class SubsetSource:
  """The records ``indices`` of a source (picklable when the source is)."""

  def __init__(self, source, indices):
    self.source, self.indices = source, np.asarray(indices, np.int64)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int):
    return self.source[int(self.indices[i])]

  def __repr__(self) -> str:
    return f"SubsetSource({self.source!r}, {len(self.indices)} records)"


@dataclasses.dataclass(frozen=True)
class TagSampler:
  """Batch ``s`` -> the batch plus ``pos_tag`` int32 ``[B]`` and ``neg_tags`` int32 ``[B, K]``
  drawn from the seen tags (module docstring), seeded by ``(seed, s)``."""

  seen: tuple
  negatives: int
  seed: int

  def __call__(self, step: int, batch: dict) -> dict:
    rng = np.random.default_rng([self.seed, 11, step])
    seen = np.asarray(self.seen, bool)
    tags = np.asarray(batch["tags"]) > 0
    pos = np.zeros(len(tags), np.int32)
    neg = np.zeros((len(tags), self.negatives), np.int32)
    for i, row in enumerate(tags):
      positives, others = np.flatnonzero(row & seen), np.flatnonzero(~row & seen)
      pos[i] = rng.choice(positives)
      neg[i] = rng.choice(others, self.negatives, replace=len(others) < self.negatives)
    return dict(batch, pos_tag=pos, neg_tags=neg)


@dataclasses.dataclass(frozen=True)
class SideInformation:
  """Bound data of ``ZeroShotTask``: per tag of the shards (``T`` tags), its side-information
  vector float32 ``[T, dim]`` (zeros for tags without one), the bool ``[T]`` seen / unseen
  masks (tags with neither take no part) and the candidates of the annotation accuracy."""

  vectors: np.ndarray
  seen: np.ndarray
  unseen: np.ndarray
  tag_names: tuple = ()
  # bool [T]: the candidate labels of the annotation accuracy (None: seen | unseen).
  accuracy: np.ndarray | None = None

  def split_names(self) -> dict:
    """``{"seen": [...], "unseen": [...]}``: the tag names of each side of the split, in the
    shards' column order (what a workdir records of the split)."""
    return {side: [n for n, s in zip(self.tag_names, getattr(self, side)) if s]
            for side in ("seen", "unseen")}


@TASKS.register("zero_shot")
@dataclasses.dataclass(frozen=True)
class ZeroShotTask(Task):
  """Zero-shot tagging (module docstring). Fields are ``config.task.kwargs``."""

  word_vectors: str = ""
  seen_fraction: float = 0.8
  split_seed: int = 0
  train_set: str = "B"
  negatives: int = 1
  margin: float = 0.4
  train_tag_names: tuple = ()
  word_vectors_config: str = ""
  side_info: str = "word_vectors"
  attribute_labels: tuple = ()
  attribute_tags: tuple = ()
  attribute_split: str = "train"
  attribute_negative_tags: tuple = ()
  seen_tag_names: tuple = ()
  top_k: tuple = (1, 5, 10)
  thresholds: tuple = (0.5,)
  accuracy_tags: tuple = ()
  fields: tuple = ("tags",)
  metric_names: tuple = ("loss",)
  higher_is_better: tuple = ("auc_l_unseen", "auc_i_unseen", "auc_l_seen", "auc_i_all",
                             "auc_l_all", "map_l_unseen", "map_i_unseen", "acc_i_all")
  default_evals = ("zero_shot",)

  # --- Lifecycle: side information and the split ----------------------------------------------
  def bind(self, shards) -> "ZeroShotTask":
    """Bound data: ``SideInformation`` of the shards' tags (module docstring)."""
    if self.train_set not in TRAIN_SETS:
      raise UserError(f"config.task.kwargs.train_set={self.train_set!r} is not one of "
                      f"{', '.join(TRAIN_SETS)}.")
    if self.side_info not in SIDE_INFORMATION:
      raise UserError(f"config.task.kwargs.side_info={self.side_info!r} is "
                      f"not one of {', '.join(SIDE_INFORMATION)}.")
    tag_names = tuple(shards.tag_names)
    if self.side_info == "attributes":
      vectors, usable = self._attribute_matrix(shards, tag_names)
    else:
      vectors, usable = load_word_vectors(self._word_vector_file()).label_matrix(tag_names)
    seen_names = self._seen_names(tag_names, usable)
    seen = np.array([n in seen_names for n in tag_names], bool) & usable
    if self.seen_tag_names and not (usable & ~seen).any():
      raise UserError(f"No tag of {getattr(shards, 'dataset_dir', 'the shards')} with side "
                      f"information is unseen: all are in config.task.kwargs.seen_tag_names.")
    accuracy = usable & np.array([not self.accuracy_tags or n in self.accuracy_tags
                                  for n in tag_names], bool)
    return dataclasses.replace(self, bound=SideInformation(vectors, seen, usable & ~seen,
                                                            tag_names, accuracy))

  def _seen_names(self, tag_names: tuple, usable: np.ndarray) -> set:
    """The seen tag names: ``seen_tag_names``, or the ``zsl_split`` of ``train_tag_names``
    (default the shards' own tags; a training tag absent from the shards counts as usable)."""
    if self.seen_tag_names:
      return set(self.seen_tag_names)
    train_names = tuple(self.train_tag_names) or tag_names
    train_usable = np.array([n in tag_names and usable[tag_names.index(n)] or
                             n not in tag_names for n in train_names])
    return {train_names[i] for i in np.flatnonzero(
        zsl_split(train_names, train_usable, self.seen_fraction, self.split_seed))}

  def _word_vector_file(self) -> str:
    """``word_vectors``; a ``UserError`` naming the key when it is empty."""
    if self.word_vectors:
      return self.word_vectors
    if self.word_vectors_config:
      raise UserError(
          f"config.task.kwargs.word_vectors is empty and word_vectors_config="
          f"{self.word_vectors_config!r} names vectors still to be trained: they are trained "
          f"(once, into $MUSICREP_CACHE) and passed on by `musicrep train`, so train this "
          f"config with `musicrep train` or set word_vectors to a word-vector file.")
    raise UserError("config.task.kwargs.word_vectors is empty: set it to a word-vector file "
                    "(word2vec text/binary or GloVe, e.g. the vectors.txt of `musicrep "
                    "word2vec`).")

  def _attribute_matrix(self, shards, tag_names: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors [T, 2A], usable [T])``: attribute vectors of the ``attribute_labels`` (empty:
    every tag that is not an attribute or negative tag)."""
    columns = {}
    for key in ("attribute_tags", "attribute_negative_tags", "attribute_labels"):
      names = tuple(getattr(self, key))
      missing = [n for n in names if n not in tag_names]
      if (key == "attribute_tags" and not names) or missing:
        raise UserError(f"config.task.kwargs.{key} must name tags of {shards.dataset_dir}; "
                        f"{'it is empty' if not names else f'unknown: {missing[:5]}'}.")
      columns[key] = [tag_names.index(n) for n in names]
    negatives = columns["attribute_negative_tags"] or None
    if negatives is not None and len(negatives) != len(columns["attribute_tags"]):
      raise UserError(f"config.task.kwargs.attribute_negative_tags names {len(negatives)} tags; "
                      f"it needs one per attribute tag ({len(columns['attribute_tags'])}).")
    if not columns["attribute_labels"]:
      taken = set(columns["attribute_tags"]) | set(negatives or ())
      columns["attribute_labels"] = [i for i in range(len(tag_names)) if i not in taken]
    if self.attribute_split not in shards.split_sizes:
      raise UserError(f"config.task.kwargs.attribute_split={self.attribute_split!r} is not a "
                      f"split of {shards.dataset_dir}.")
    tags = read_label_records(shards.source(self.attribute_split), ("tags",))["tags"] > 0
    rows = attribute_vectors(tags, columns["attribute_labels"], columns["attribute_tags"],
                             negatives)
    vectors = np.zeros((len(tag_names), rows.shape[1]), np.float32)
    vectors[columns["attribute_labels"]] = rows
    usable = np.zeros(len(tag_names), bool)
    usable[columns["attribute_labels"]] = rows.any(1)  # A label on no clip has no vector.
    return vectors, usable

  # --- Model -----------------------------------------------------------------------------------
  def init_inputs(self, input_length: int) -> tuple:
    return (jnp.zeros((1, input_length, 1), jnp.float32), jnp.asarray(self.data.vectors))

  def forward(self, model, variables: dict, batch: dict, *, train: bool, **apply_kwargs):
    """The model sees the audio ``[B, T, 1]`` and the label vectors ``[tags, dim]``."""
    return model.apply(variables, batch["audio"], jnp.asarray(self.data.vectors),
                       train=train, **apply_kwargs)

  # --- Data ------------------------------------------------------------------------------------
  def train_iterator(self, source, *, crop_length: int, global_batch_size: int, seed: int,
                     num_workers: int,
                     segments: input_pipeline.TrainSegments = input_pipeline.TrainSegments()):
    """The training split's clips of instance set ``train_set`` (``segments``: random crops,
    the paper's 130-frame random excerpts, or the segment grid), each batch with its sampled
    positive and negative seen tags (``TagSampler``)."""
    side = self.data
    tags = read_label_records(source, ("tags",))["tags"] > 0
    sets = instance_sets(tags, side.seen, side.unseen)
    chosen = np.zeros(len(tags), bool)
    for name in self.train_set:
      chosen |= sets[name]
    if not chosen.any():
      raise UserError(f"No training clip is in instance set {self.train_set!r}.")
    ds = input_pipeline.train_dataset(
        SubsetSource(source, np.flatnonzero(chosen)), crop_length=crop_length,
        global_batch_size=global_batch_size, seed=seed, fields=self.fields, segments=segments)
    ds = ds.map_with_index(TagSampler(tuple(bool(s) for s in side.seen), self.negatives, seed))
    return input_pipeline.iterate_batches(ds, num_workers=num_workers)

  # --- Loss ----------------------------------------------------------------------------------
  def loss(self, outputs: dict, batch: dict):
    labels = outputs["label_embedding"]
    loss, _ = losses.triplet_margin_loss(
        outputs["embedding"], labels[batch["pos_tag"]], labels[batch["neg_tags"]],
        margin=self.margin, metric="cosine", reduction="sum")
    return loss, {"loss": loss}

  def eval_outputs(self, outputs: dict, batch: dict) -> dict:
    a = losses.l2_normalize(outputs["embedding"])
    t = losses.l2_normalize(outputs["label_embedding"])
    return {"scores": a @ t.T}
