"""Helpers shared by the tests (fixtures live in conftest.py and call these).

- ``REPO``, ``TINY_CONFIG``: the checkout and the tiny end-to-end config (tests/configs/tiny.py).
- ``run_cli(args)``: ``musicrep ARGS`` in a fresh Python process.
- ``synthetic_shards(...)``: the embedded corpus prepared into a temporary folder.
- ``make_workdir(path, data_dir, **model_kwargs)``: a workdir with a checkpoint, made without
  training (for export and embedding tests): tests/configs/tiny.py with the model fields
  overridden (``make_config_workdir``: any packaged config, e.g. ``dcue:runlocal``),
  ``config.json`` written as the trainer does, and the initial state saved as the best
  checkpoint through ``Checkpoints.save_best``; BatchNorm statistics are randomised so that
  inference-mode BatchNorm is not the identity.
- ``write_dimsim(folder, sr, tracks, triplets)``: a miniature dim-sim CSV release and its WAV
  files (``musicrep_jax.data.dimsim``'s layout).
- ``click_track(bpm, sample_rate, seconds, seed)``: clicks at a known tempo (tempo tests).
- ``msd_dims_shards(tmp_path_factory)``: an MSD miniature with papers 13-14's four tag groups and
  tempi, prepared (the ``msd_dims_shards`` fixture).
"""

import csv
import os
import pathlib
import sqlite3
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf

from musicrep_jax import config_loading
from musicrep_jax.data import dimsim
from musicrep_jax.data.shards import open_shards
from musicrep_jax.training import checkpoints, trainer
from tests.configs import tiny as tiny_config

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY_CONFIG = str(REPO / "tests" / "configs" / "tiny.py")
MULTISCALE_TINY_CONFIG = str(REPO / "tests" / "configs" / "multiscale_tiny.py")


def synthetic_shards(tmp_path_factory, name: str, *, num_clips: int, clip_seconds: float,
                     seed: int = 0) -> pathlib.Path:
  """The embedded corpus at 16 kHz prepared into a fresh temporary folder ``name``."""
  from musicrep_jax.data_pipelines.prepare import prepare_synthetic

  out = tmp_path_factory.mktemp(name)
  prepare_synthetic(out, num_clips=num_clips, seed=seed, sample_rate=16000,
                    clip_seconds=clip_seconds, progress=False)
  return out


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300,
             poll: float = 0.05) -> None:
  """Waits until ``predicate()`` holds while ``proc`` runs; fails if it ends first or on timeout."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    if proc.poll() is not None:
      raise AssertionError(f"run ended early with {proc.returncode}: {proc.stderr.read()[-3000:]}")
    time.sleep(poll)
  raise AssertionError("timed out")


def run_cli(args, *, env_extra=None, timeout=600, check=True) -> subprocess.CompletedProcess:
  """Runs ``musicrep ARGS`` in a fresh Python process (own XLA flags, real process semantics)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
  proc = subprocess.run([sys.executable, "-m", "musicrep_jax.cli", *args], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode != 0:
    raise AssertionError(f"musicrep {' '.join(args)} exited {proc.returncode}\n"
                         f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
  return proc


def random_batch_stats(stats, seed: int):
  """Running means ~ N(0, 0.5) and variances in [0.5, 1.5] with ``stats``' shapes."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key == "var":
      return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
    return jnp.asarray(rng.normal(0.0, 0.5, leaf.shape), jnp.float32)

  return jax.tree.map_with_path(draw, stats)


def make_workdir(path: pathlib.Path, data_dir: pathlib.Path, **model_kwargs) -> pathlib.Path:
  config = tiny_config.get_config()
  for key, value in model_kwargs.items():
    config.model.kwargs[key] = value
  return save_untrained_workdir(path, config, data_dir)


def make_config_workdir(path: pathlib.Path, data_dir: pathlib.Path, spec: str,
                        model_name: str | None = None, **model_kwargs) -> pathlib.Path:
  """``make_workdir`` for any packaged config (``"dcue:runlocal"``) on ``data_dir``: the model
  fields overridden (e.g. a small ``backbone_kwargs``), nothing trained. ``model_name``: another
  registered model in the config's place, built from ``model_kwargs`` alone."""
  config = config_loading.load_config_file(config_loading.resolve_config_spec(spec))
  if model_name is not None:
    config.model.name, config.model.kwargs = model_name, dict(model_kwargs)
  backbone = model_kwargs.get("backbone")
  if backbone is not None and backbone != config.model.kwargs.get("backbone"):
    config.model.kwargs.backbone_kwargs = {}  # Another backbone: its fields alone, not merged.
  config.model.kwargs.update(model_kwargs)
  config.data.sample_rate = open_shards(data_dir).sample_rate
  return save_untrained_workdir(path, config, data_dir)


def save_untrained_workdir(path: pathlib.Path, config, data_dir: pathlib.Path) -> pathlib.Path:
  """``config.json`` and the initial state (BatchNorm statistics randomised) as the best
  checkpoint of ``path``."""
  path.mkdir(parents=True, exist_ok=True)
  (path / "config.json").write_text(config_loading.to_json(config))
  run = trainer.build_run(config, open_shards(data_dir))
  state = run.create_state(jax.random.key(0))
  state = state.replace(batch_stats=random_batch_stats(state.batch_stats, seed=1))
  saver = checkpoints.Checkpoints(path, best_metric=config.checkpoint.best_metric,
                                  best_mode=config.checkpoint.best_mode, async_save=False)
  saver.save_best(1, state, {config.checkpoint.best_metric: 1.0})
  saver.wait()
  saver.close()
  return path


def lazy_workdirs(tmp_path_factory, make):
  """``get(name) -> workdir`` for a module fixture: ``make(name, path)`` writes the workdir of
  ``name`` into a fresh ``path`` the first time it is asked for, later calls reuse it."""
  made = {}

  def get(name):
    if name not in made:
      made[name] = make(name, tmp_path_factory.mktemp(name) / "wd")
    return made[name]

  return get


def write_dimsim(folder: pathlib.Path, sr: int, tracks: dict, triplets, *,
                 clip_seconds: float = 1.0, start: float = 1.0) -> tuple:
  """A miniature dim-sim release in ``folder``: ``tracks`` ``{track_id: mono float samples at
  sr}`` written as ``dimsim_audio/<id>.wav``, and ``dim_sim.csv`` with one row per
  ``(anchor, song1, song2, (song1_vote, song2_vote))`` of ``triplets``, every clip
  ``clip_seconds`` long from ``start`` s -> ``(csv path, audio folder)``."""
  audio = folder / "dimsim_audio"
  audio.mkdir(parents=True)
  for name, signal in tracks.items():
    sf.write(audio / f"{name}.wav", np.asarray(signal, np.float32), sr, subtype="FLOAT")
  path = folder / "dim_sim.csv"
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, dimsim.COLUMNS)
    writer.writeheader()
    for i, (anchor, s1, s2, votes) in enumerate(triplets):
      row = {"triplet_id": i, "sampling_rate": sr, "clip_lengths_seconds": clip_seconds,
             "clip_lengths_samples": int(round(clip_seconds * sr)), "song1_vote": votes[0],
             "song2_vote": votes[1]}
      for role, track in zip(dimsim.ROLES, (anchor, s1, s2)):
        row.update({f"{role}_id": track, f"{role}_start_seconds": start,
                    f"{role}_start_samples": int(round(start * sr))})
      writer.writerow(row)
  return path, audio


def click_track(bpm: float, sample_rate: int, seconds: float, seed: int) -> np.ndarray:
  """Decaying 1 kHz clicks (20 ms) every beat from a random phase, over faint white noise."""
  rng = np.random.default_rng(seed)
  n = int(seconds * sample_rate)
  audio = 0.01 * rng.standard_normal(n)
  t = np.arange(int(0.02 * sample_rate)) / sample_rate
  click = 0.5 * np.sin(2 * np.pi * 1000.0 * t) * np.exp(-t / 0.004)
  beat = rng.uniform(0.0, 60.0 / bpm)
  while (start := int(round(beat * sample_rate))) + len(click) < n:
    audio[start:start + len(click)] += click
    beat += 60.0 / bpm
  return audio.astype(np.float32)


def write_msd_databases(root: pathlib.Path, songs) -> None:
  """``root/track_metadata.db`` and ``root/lastfm_tags.db`` in their real schemas, for MSD
  miniatures. ``songs``: ``(track_id, 7digital id or "", release, artist_id, {tag: value} or
  None)``; None writes the song's metadata only (no ``tids`` row), as for an unlisted track."""
  meta = sqlite3.connect(root / "track_metadata.db")
  meta.execute("CREATE TABLE songs (track_id text PRIMARY KEY, title text, song_id text, "
               "release text, artist_id text, artist_mbid text, artist_name text, duration real,"
               " artist_familiarity real, artist_hotttnesss real, year int, track_7digitalid "
               "int, shs_perf int, shs_work int)")
  tags = sqlite3.connect(root / "lastfm_tags.db")
  tags.execute("CREATE TABLE tids (tid TEXT)")
  tags.execute("CREATE TABLE tags (tag TEXT)")
  tags.execute("CREATE TABLE tid_tag (tid INT, tag INT, val FLOAT)")
  tag_rowid = {}
  for tid, id7d, release, artist, values in songs:
    meta.execute("INSERT INTO songs (track_id, release, artist_id, track_7digitalid) "
                 "VALUES (?, ?, ?, ?)", (tid, release, artist, int(id7d or -1)))
    if values is None:
      continue
    tid_row = tags.execute("INSERT INTO tids VALUES (?)", (tid,)).lastrowid
    for tag, value in values.items():
      if tag not in tag_rowid:
        tag_rowid[tag] = tags.execute("INSERT INTO tags VALUES (?)", (tag,)).lastrowid
      tags.execute("INSERT INTO tid_tag VALUES (?, ?, ?)", (tid_row, tag_rowid[tag], value))
  for db in (meta, tags):
    db.commit()
    db.close()


# The MSD miniature of papers 13-14's similarity dimensions (``msd_dims_shards``): (split list,
# Last.fm tags (value 100) of genre, mood, instrument, era, tempo in BPM). The first
# MSD_DIMS_NUM_TRAIN ids of the train list are train, the rest validation. Train has >= 2 classes
# per dimension (8 tempo bins); validation and test each hold a pair sharing every dimension's
# class (tempo within 5 BPM) and a clip differing from it.
MSD_DIMS_TRACKS = [
    ("train", ("rock", "happy", "guitar", "80s"), 72.0),
    ("train", ("jazz", "sad", "female vocalists", "90s"), 84.5),
    ("train", ("House", "Mellow", "male vocalists", "00s"), 97.0),
    ("train", ("Hip-Hop", "happy", "guitar", "90s"), 109.5),
    ("train", ("rock", "sad", "male vocalists", "00s"), 122.0),
    ("train", ("jazz", "Mellow", "guitar", "80s"), 134.5),
    ("train", ("House", "happy", "female vocalists", "00s"), 147.0),
    ("train", ("Hip-Hop", "sad", "male vocalists", "80s"), 159.5),
    ("train", ("rock", "Mellow", "guitar", "90s"), 91.0),  # Validation from here.
    ("train", ("rock", "Mellow", "guitar", "90s"), 92.0),
    ("train", ("jazz", "happy", "female vocalists", "00s"), 171.0),
    ("test", ("House", "sad", "male vocalists", "80s"), 118.0),
    ("test", ("House", "sad", "male vocalists", "80s"), 120.0),
    ("test", ("Hip-Hop", "Mellow", "guitar", "00s"), 66.0),
]
MSD_DIMS_NUM_TRAIN = 8
MSD_DIMS_PREVIEW_SECONDS = 8.0


def msd_dims_tid(i: int) -> str:
  """The MSD track id of ``MSD_DIMS_TRACKS[i]``."""
  return f"TRAAAA{i:02d}128F00000{i % 10}"


def msd_dims_shards(tmp_path_factory) -> pathlib.Path:
  """The MSD miniature of ``MSD_DIMS_TRACKS`` (track_metadata.db and lastfm_tags.db in their real
  schemas, Lee's pickled split lists, real mp3 previews of click tracks at the listed tempi)
  prepared by the MSD builder at 16 kHz: tag groups genre / mood / instrument / era and each
  preview's estimated ``tempo_bpm``."""
  import pickle

  import soundfile as sf

  from musicrep_jax.data_pipelines import dataset_layouts, msd_builder

  root = tmp_path_factory.mktemp("msd_dims")
  write_msd_databases(root, [(msd_dims_tid(i), str(1000001 + 1111 * i), f"album{i // 2}",
                              f"AR{i // 3}", {name: 100 for name in names})
                             for i, (_, names, _) in enumerate(MSD_DIMS_TRACKS)])
  for i, (_, _, bpm) in enumerate(MSD_DIMS_TRACKS):
    path = root / "audio" / msd_builder.preview_path(str(1000001 + 1111 * i))
    path.parent.mkdir(parents=True, exist_ok=True)
    clicks = click_track(bpm, 22050, MSD_DIMS_PREVIEW_SECONDS, seed=i)
    tone = 0.1 * np.sin(2 * np.pi * (200.0 + 60 * (i % 4)) * np.arange(len(clicks)) / 22050)
    sf.write(path, np.stack([clicks + tone, clicks - tone], 1), 22050, format="MP3")
  for name, split in [("filtered_list_train.cP", "train"), ("filtered_list_test.cP", "test")]:
    with open(root / name, "wb") as f:
      pickle.dump([msd_dims_tid(i) for i, t in enumerate(MSD_DIMS_TRACKS) if t[0] == split], f,
                  protocol=2)
  out = root / "out"
  report = dataset_layouts.prepare_layout(
      msd_builder.MusicrepMsd, out, manual_dir=root, sample_rate=16000,
      layout_options={"num_train": MSD_DIMS_NUM_TRAIN},
      expected_counts={"train": MSD_DIMS_NUM_TRAIN, "validation": 3, "test": 3}, workers=2,
      progress=False)
  assert report["written"] == len(MSD_DIMS_TRACKS) and report["params"]["tempo"] is True
  return out
