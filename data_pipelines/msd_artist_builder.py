"""The MSD artist split of papers 4, 8 and 9 (papers.md 1.1, 5, 9, 10): 7digital previews of
the Million Song Dataset labelled with their artist.

Layout of ``manual_dir`` (what ``jiyoungpark527/msd-artist-split`` and the MSD provide)::

    msd-artist-list.pkl       the split list: a pickled list of "<7digital id>/<artist index>/
                              <song index>" strings, 20 songs per artist, 17,591 artists
                              (also accepted under msd-artist-split/ or data/)
    track_metadata.db         optional: MSD's SQLite metadata, which gives each preview its MSD
                              track id and album (paper 9's album labels)
    <d0>/<d1>/<7digital id>.clip.mp3   the previews, at the root or under audio/, 7digital/, mp3/

Split (variant ``park``, configs ``park_22050hz`` / ``park_16000hz``), as
``load_data_label.py`` of the split repository and of ``jongpillee/ismir2018-artist``: the first
``num_artists * 20`` lines of the list define the artist subset (the papers use 500 to 10,000
artists; default all **17,591**); per artist, songs **1-15 are train, 16-18 validation, 19-20
test** (15 / 3 / 2 per artist: 263,865 / 52,773 / 35,182 for all artists). The list is not
shipped here (it is the split repository's; the user brings it); it is checked to hold, per
artist, exactly the song indices 1..20, and the split sizes of the subset are checked before any
decoding (``--allow-count-mismatch`` builds a partial copy of the previews).

Labels: ``artist`` is the rank of the list's artist index within the subset (0-based: the
index minus one for the list's first artists; the class of paper 4's softmax over artists;
``metadata["artist_names"]`` holds the list's 1-based indices, zero-padded so that their order is
the numeric one); ``track`` the 7digital id (``track_names``), or the MSD track id when
``track_metadata.db`` is there; ``album`` the MSD artist id and release name from
``track_metadata.db`` (-1 without it). ``tags`` is empty: the task is ``classification`` with
``label_field="artist"`` (``configs/artist_dcnn.py``).
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from musicrep_jax.data_pipelines import dataset_layouts as layouts
from musicrep_jax.data_pipelines import msd_builder
from musicrep_jax.data_pipelines.manifest_builder import Manifest
from musicrep_jax.errors import UserError

ARTIST_LIST = ("msd-artist-list.pkl", "msd-artist-split/msd-artist-list.pkl",
               "data/msd-artist-list.pkl")
NUM_ARTISTS = 17591
SONGS_PER_ARTIST = 20
# Song indices (1-based, per artist) of each split: load_data_label.py's train_size=15,
# valid_size=18, test_size=20.
SPLIT_SONGS = {"train": range(1, 16), "validation": range(16, 19), "test": range(19, 21)}
VARIANTS = {"park": "MSD artist split of Park et al. (ISMIR 2018): 20 previews per artist, "
                    "songs 1-15 train, 16-18 validation, 19-20 test"}


def split_of_song(song: int) -> str:
  for split, songs in SPLIT_SONGS.items():
    if song in songs:
      return split
  raise ValueError(song)


def parse_artist_list(lines: list[str], num_artists: int, where: str) -> list[tuple[str, int, int]]:
  """The first ``num_artists * 20`` lines -> ``[(7digital id, artist index, song index)]``.

  Raises:
    UserError: a line is not ``ID/ARTIST/SONG`` with integer indices, the list has fewer lines
      than asked for, or an artist of the subset does not have exactly the songs 1..20.
  """
  if num_artists < 1:
    raise UserError(f"num_artists must be positive, got {num_artists}.")
  wanted = num_artists * SONGS_PER_ARTIST
  if len(lines) < wanted:
    raise UserError(f"{where} has {len(lines):,} lines, fewer than the {wanted:,} of "
                    f"{num_artists:,} artist(s) x {SONGS_PER_ARTIST} songs.")
  items, songs = [], {}
  for n, line in enumerate(lines[:wanted], start=1):
    fields = line.split("/")
    if len(fields) != 3 or not fields[0] or not fields[1].isdigit() or not fields[2].isdigit():
      raise UserError(f"Line {n} of {where} is {line!r}, not '<7digital id>/<artist>/<song>'.")
    artist, song = int(fields[1]), int(fields[2])
    items.append((fields[0], artist, song))
    songs.setdefault(artist, []).append(song)
  for artist, got in songs.items():
    if sorted(got) != list(range(1, SONGS_PER_ARTIST + 1)):
      raise UserError(f"Artist {artist} of {where} has the songs {sorted(got)} among the first "
                      f"{wanted:,} lines, not 1..{SONGS_PER_ARTIST}.")
  return items


def read_preview_metadata(db_path: str, wanted: set) -> dict[str, tuple[str, str, str]]:
  """7digital id -> (MSD track id, artist id, release) for the ``wanted`` ids."""
  rows = msd_builder.query(db_path, "SELECT track_7digitalid, track_id, artist_id, release "
                                    "FROM songs")
  found = {}
  for id7d, tid, artist, release in rows:
    key = str(id7d)
    if key in wanted:
      found[key] = (tid or "", artist or "", release or "")
  return found


class MusicrepMsdArtist(layouts.LayoutBuilder, skip_registration=True):
  """MSD previews labelled by artist (``musicrep_msd_artist``); see the module docstring."""

  name = "musicrep_msd_artist"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Park et al.'s MSD artist split, 16 and 22.05 kHz."}
  BUILDER_CONFIGS = layouts.rate_configs(VARIANTS, "1.0.0")
  KIND = "msd_artist"

  @classmethod
  def read_layout(cls, manual_dir: str, variant: str,
                  num_artists: int = NUM_ARTISTS) -> Manifest:
    """The first ``num_artists`` artists' previews with their split and artist (module doc)."""
    del variant  # One variant.
    list_file = layouts.find_file(manual_dir, ARTIST_LIST, "The MSD artist split list")
    items = parse_artist_list(layouts.read_id_list(list_file), num_artists, list_file)
    metadata = {}
    db = next((os.path.join(manual_dir, name) for name in msd_builder.TRACK_METADATA
               if os.path.isfile(os.path.join(manual_dir, name))), None)
    if db:
      metadata = read_preview_metadata(db, {id7d for id7d, _, _ in items})
    paths = [msd_builder.preview_path(id7d) for id7d, _, _ in items]
    root = layouts.find_root(manual_dir, msd_builder.AUDIO_SUBDIRS, paths[:50])
    width = len(str(max(artist for _, artist, _ in items)))
    entries = []
    for (id7d, artist, song), path in zip(items, paths):
      tid, msd_artist, release = metadata.get(id7d, ("", "", ""))
      entries.append(layouts.Entry(
          path=path, full_path=os.path.join(root, path), tags=(), split=split_of_song(song),
          artist=f"{artist:0{width}d}", track=tid or id7d,
          album=f"{msd_artist}/{release}" if msd_artist else ""))
    return layouts.build_manifest(entries, (), VARIANTS["park"], manual_dir)

  @classmethod
  def paper_counts(cls, variant: str, manifest: Manifest) -> dict:
    """15 / 3 / 2 previews per artist of the subset (module docstring)."""
    artists = len(manifest.id_names["artist"])
    return {split: artists * len(songs) for split, songs in SPLIT_SONGS.items()}
