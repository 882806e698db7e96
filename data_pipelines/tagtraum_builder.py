"""Tagtraum genre annotations of the Million Song Dataset, Lee's split (paper 2, papers.md 1.1,
3.1): MSD 7digital previews labelled with one genre each.

Layout of ``manual_dir`` (what tagtraum.com, the MSD and ``jongpillee/music_dataset_split``
provide)::

    msd_tagtraum_cd2c.cls     tagtraum's "CD2C" annotations: '#' comment lines, then
                              "<MSD track id>\\t<genre>" per line (also accepted unzipped under
                              tagtraum/)
    train_list.cP             Lee's TAGTRAUM_split lists, Python-2 pickles of MSD track ids
    test_list.cP              (also accepted under TAGTRAUM_split/)
    track_metadata.db         MSD's SQLite metadata: track id -> 7digital id, artist, release
                              (also accepted under AdditionalFiles/)
    <d0>/<d1>/<7digital id>.clip.mp3   the previews, at the root or under audio/, 7digital/, mp3/

Which tagtraum variant: **CD2C** (the "combined dataset 2" without ambiguous annotations: one
genre per track), as the split's README says ("stratified split with 80% training data of CD2C
version of Tagtraum genre annotations", then filtered to previews longer than 29.1 s). The CD1 /
CD2 files (a majority and an optional minority genre per line) are read too when the CD2C file
is absent, taking the majority genre; the paper's split was drawn from CD2C.

Split (variant ``lee``, configs ``lee_22050hz`` / ``lee_16000hz``): the first **141,372** ids of
``train_list.cP`` are train, the rest validation, ``test_list.cP`` (**37,817**) test
(``TAGTRAUM_split/README.md``). The lists are not shipped (the user brings them); the counts are
checked before decoding: train and test against the paper's, validation against the length of
the user's list (the README gives no number). A listed track without an annotation, or without
a 7digital id, is reported skipped (``--allow-count-mismatch`` builds a partial copy).

Labels: ``tags`` is the one-hot genre over the genres of the annotation file (all its lines,
sorted, so a partial copy of the audio keeps the same columns); ``artist`` the MSD artist id,
``album`` artist id plus release, ``track`` the MSD track id. Paper 2's tagtraum results are
[unknown] (papers.md 3.3); ``musicrep transfer`` reports accuracy on it (softmax).
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines import msd_builder
from musicrep_jax.data_pipelines.manifest_builder import Manifest
from musicrep_jax.errors import UserError

ANNOTATIONS = ("msd_tagtraum_cd2c.cls", "tagtraum/msd_tagtraum_cd2c.cls",
               "msd_tagtraum_cd2.cls", "msd_tagtraum_cd1.cls")
TRAIN_LIST = ("train_list.cP", "TAGTRAUM_split/train_list.cP")
TEST_LIST = ("test_list.cP", "TAGTRAUM_split/test_list.cP")
NUM_TRAIN = 141372  # README: valid_list = train_list[141372:].
NUM_TEST = 37817
NO_GENRE = "no tagtraum genre annotation"
VARIANTS = {"lee": "Tagtraum CD2C genres of MSD previews, Lee's stratified split"}


def read_annotations(path: str) -> dict[str, str]:
  """MSD track id -> genre (the first genre column) of a tagtraum ``.cls`` file.

  Raises:
    UserError: a line that is not a comment has fewer than two tab-separated fields.
  """
  genres = {}
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, start=1):
      if not line.strip() or line.startswith("#"):
        continue
      fields = line.rstrip("\n").split("\t")
      if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
        raise UserError(f"Line {n} of {path} is {line.strip()!r}, not '<track id>\\t<genre>'.")
      genres[fields[0].strip()] = fields[1].strip()
  if not genres:
    raise UserError(f"{path} holds no annotation.")
  return genres


class MusicrepTagtraum(layouts.LayoutBuilder, skip_registration=True):
  """Tagtraum CD2C genres of MSD previews (``musicrep_tagtraum``); see the module docstring."""

  name = "musicrep_tagtraum"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Lee's CD2C split, one-hot genres, 16 and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  KIND = "tagtraum"

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str, num_train: int = NUM_TRAIN) -> Manifest:
    """The listed tracks with their previews and genre (module docstring).

    Args:
      num_train: ids of ``train_list.cP`` before this index are train, the rest validation
        (141,372 in the paper; tests use miniature lists).
    """
    del variant  # One variant.
    genres = read_annotations(layouts.find_file(manual_dir, ANNOTATIONS,
                                                "The tagtraum genre annotations"))
    genre_names = tuple(sorted(set(genres.values())))
    entries = msd_builder.listed_preview_entries(
        manual_dir, (TRAIN_LIST, TEST_LIST), "tagtraum", num_train,
        lambda: {tid: (genre,) for tid, genre in genres.items() if genre},
        no_tags_reason=NO_GENRE)
    return layouts.build_manifest(entries, genre_names, VARIANTS["lee"], manual_dir)

  @classmethod
  def paper_counts(cls, variant: str, manifest: Manifest) -> dict:
    """141,372 train and 37,817 test; validation: the rest of the user's train list."""
    del variant
    validation = sum(row.split == "validation" for row in manifest.rows)
    return {"train": NUM_TRAIN, "validation": validation, "test": NUM_TEST}
