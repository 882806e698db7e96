"""Tests of the procedural music corpus: metadata, determinism, splits, users and audible cues."""

import dataclasses
import functools
import re

import numpy as np
import pytest
from scipy import signal

from musicrep_jax.data_pipelines import synthetic_corpus as sc
from musicrep_jax.errors import UserError

SMALL = sc.CorpusConfig(num_clips=48, seed=3, sample_rate=8000, clip_seconds=1.5, num_artists=6,
                        albums_per_artist=2, num_users=25)


@functools.lru_cache(maxsize=None)
def _corpus(config: sc.CorpusConfig) -> sc.SyntheticCorpus:
  return sc.SyntheticCorpus(config)


@functools.lru_cache(maxsize=None)
def _probe_set():
  """(corpus, audio [n, samples]) of a mid-sized corpus at 8 kHz, for the audio-level checks."""
  corpus = sc.SyntheticCorpus(sc.CorpusConfig(num_clips=96, seed=1, sample_rate=8000,
                                               clip_seconds=3.0, num_artists=12, num_users=0))
  return corpus, np.stack([corpus.render(i) for i in range(len(corpus))])


def _metadata(corpus):
  return [(c.clip_id, c.track, c.album, c.artist, c.genre, c.mood, c.tempo_bpm, c.instruments,
           c.tags.tobytes(), c.name, c.split, c.key, c.brightness) for c in corpus.clips]


def _log_bands(x: np.ndarray, sr: int, num_bands: int = 24) -> np.ndarray:
  """float [num_bands] mean log energy in log-spaced bands, gain-normalised."""
  f, _, spec = signal.stft(x, sr, nperseg=256)
  power = np.abs(spec) ** 2
  edges = np.geomspace(40, sr / 2, num_bands + 1)
  bands = np.stack([power[(f >= lo) & (f < hi)].sum(0) for lo, hi in zip(edges[:-1], edges[1:])])
  logs = np.log(bands + 1e-10).mean(1)
  return logs - logs.mean()


def test_vocabulary_and_tag_groups():
  corpus = _corpus(SMALL)
  names = corpus.tag_names
  assert names == sc.GENRES + sc.MOODS + sc.INSTRUMENTS + sc.TEMPO_CLASSES
  assert len(set(names)) == len(names)
  assert all(re.fullmatch(r"[a-z]+", n) for n in names)
  groups = corpus.tag_groups
  assert set(groups) == {"genre", "mood", "instrument", "tempo"}
  assert sorted(i for g in groups.values() for i in g) == list(range(len(names)))
  assert [names[i] for i in groups["mood"]] == sc.MOODS
  assert [sc.tempo_class(b) for b in (60, 89.9, 90, 129.9, 130, 180)] == [0, 0, 1, 1, 2, 2]


def test_tags_match_clip_fields():
  corpus = _corpus(SMALL)
  g = corpus.tag_groups
  for info in corpus.clips:
    assert info.tags.dtype == np.uint8 and info.tags.shape == (len(corpus.tag_names),)
    expected = np.zeros(len(corpus.tag_names), np.uint8)
    expected[g["genre"][info.genre]] = 1
    expected[g["mood"][info.mood]] = 1
    expected[[g["instrument"][i] for i in info.instruments]] = 1
    expected[g["tempo"][sc.tempo_class(info.tempo_bpm)]] = 1
    np.testing.assert_array_equal(info.tags, expected)
    assert 1 <= len(info.instruments) <= 3
    assert list(info.instruments) == sorted(set(info.instruments))
    assert any(sc.INSTRUMENTS[i] not in ("bass", "drums") for i in info.instruments)
    assert sc.TEMPO_RANGE[0] <= info.tempo_bpm <= sc.TEMPO_RANGE[1]
    assert 0 <= info.key < 12
    assert corpus.tag_text(info.clip_id).split() == [corpus.tag_names[i]
                                                     for i in np.flatnonzero(info.tags)]
  np.testing.assert_array_equal(corpus.tag_matrix(), np.stack([c.tags for c in corpus.clips]))


def test_catalogue_hierarchy():
  config = SMALL
  corpus = _corpus(config)
  assert [c.clip_id for c in corpus.clips] == list(range(config.num_clips))
  assert all(c.track == c.clip_id for c in corpus.clips)
  artist_of = {}
  for c in corpus.clips:
    assert artist_of.setdefault(c.album, c.artist) == c.artist   # an album has one artist
    artist, album, track = c.name.split("/")
    assert artist == f"artist{c.artist:02d}" and track == f"track{c.track:04d}"
    assert album == f"album{c.album % config.albums_per_artist:02d}"
  assert sorted(artist_of) == list(range(config.num_artists * config.albums_per_artist))
  for a in range(config.num_artists):
    assert sum(v == a for v in artist_of.values()) == config.albums_per_artist
  assert len({c.name for c in corpus.clips}) == config.num_clips


def test_splits_partition_tracks():
  for num, fractions in ((48, (0.8, 0.1, 0.1)), (37, (0.5, 0.25, 0.25)), (20, (1.0, 0.0, 0.0))):
    config = dataclasses.replace(SMALL, num_clips=num, split_fractions=fractions, num_users=0)
    corpus = sc.SyntheticCorpus(config)
    parts = {s: corpus.split_indices(s) for s in ("train", "validation", "test")}
    everything = np.concatenate(list(parts.values()))
    assert sorted(everything.tolist()) == list(range(num))            # a partition
    for s, idx in parts.items():
      assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
      assert all(corpus.clips[i].split == s for i in idx)
      assert abs(len(idx) - num * fractions[("train", "validation", "test").index(s)]) <= 1
    tracks = [{corpus.clips[i].track for i in idx} for idx in parts.values()]
    assert not (tracks[0] & tracks[1] or tracks[0] & tracks[2] or tracks[1] & tracks[2])
  with pytest.raises(UserError):
    corpus.split_indices("dev")


def test_interactions_well_formed():
  config = SMALL
  corpus = _corpus(config)
  inter = corpus.interactions
  assert inter.dtype == np.int64 and inter.ndim == 2 and inter.shape[1] == 3
  users, tracks, plays = inter.T
  assert users.min() >= 0 and users.max() < config.num_users
  assert tracks.min() >= 0 and tracks.max() < config.num_clips
  assert plays.min() > 0
  per_user = np.bincount(users, minlength=config.num_users)
  lo, hi = config.user_interactions
  assert per_user.min() >= lo and per_user.max() <= hi
  assert len({(u, t) for u, t in zip(users, tracks)}) == len(inter)  # no duplicate pairs
  splits = {corpus.clips[t].split for t in tracks}
  assert splits == {"train", "validation", "test"}
  assert corpus.user_factors.dtype == np.float32
  assert corpus.user_factors.shape == (config.num_users, len(sc.GENRES) + len(sc.MOODS))
  assert corpus.affinity().shape == (config.num_users, config.num_clips)
  # Users listen to what they like: their tracks' affinity beats their average affinity.
  aff = corpus.affinity()
  assert aff[users, tracks].mean() > aff.mean() + 0.5


def test_determinism_and_render_order():
  a = sc.SyntheticCorpus(SMALL)
  b = sc.SyntheticCorpus(SMALL)
  assert _metadata(a) == _metadata(b)
  np.testing.assert_array_equal(a.interactions, b.interactions)
  np.testing.assert_array_equal(a.user_factors, b.user_factors)
  forward = [a.render(i) for i in (0, 5, 9)]
  backward = [b.render(i) for i in (9, 5, 0)][::-1]
  for x, y in zip(forward, backward):
    assert x.tobytes() == y.tobytes()
  assert a.render(5).tobytes() == forward[1].tobytes()                 # repeatable
  # The catalogue does not depend on the number of users.
  c = sc.SyntheticCorpus(dataclasses.replace(SMALL, num_users=3))
  assert _metadata(c) == _metadata(a)


def test_seed_changes_corpus():
  a = _corpus(SMALL)
  b = sc.SyntheticCorpus(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
  assert [c.genre for c in a.clips] != [c.genre for c in b.clips]
  assert [c.split for c in a.clips] != [c.split for c in b.clips]
  assert not np.array_equal(a.interactions, b.interactions)
  assert a.render(0).tobytes() != b.render(0).tobytes()


@pytest.mark.parametrize("sample_rate", [8000, 16000, 22050])
def test_audio_shape_dtype_range(sample_rate):
  config = dataclasses.replace(SMALL, sample_rate=sample_rate, clip_seconds=1.3)
  corpus = _corpus(config)
  for i in (0, 1, 2):
    x = corpus.render(i)
    assert x.dtype == np.float32 and x.shape == (round(1.3 * sample_rate),)
    assert np.all(np.isfinite(x)) and np.abs(x).max() <= 1.0
    assert np.sqrt(np.mean(x ** 2)) > 1e-3                             # not silent


def test_bad_config_is_a_user_error():
  with pytest.raises(UserError):
    sc.SyntheticCorpus(dataclasses.replace(SMALL, num_clips=5))        # fewer tracks than albums
  with pytest.raises(UserError):
    sc.SyntheticCorpus(dataclasses.replace(SMALL, split_fractions=(0.5, 0.5)))
  with pytest.raises(IndexError):
    _corpus(SMALL).render(SMALL.num_clips)
  rebuilt = sc.CorpusConfig(**{k: list(v) if isinstance(v, tuple) else v
                               for k, v in dataclasses.asdict(SMALL).items()})   # as from JSON
  assert rebuilt == SMALL and hash(rebuilt) == hash(SMALL)


def test_brightness_is_audible():
  corpus, audio = _probe_set()
  sr = corpus.config.sample_rate
  f, _, spec = signal.stft(audio, sr, nperseg=256)
  power = (np.abs(spec) ** 2).mean(-1)                                 # [clips, freqs]
  centroid = (power * f).sum(1) / power.sum(1)
  bright = np.array([sc.MOOD_BRIGHTNESS[c.mood] > 0 for c in corpus.clips])
  assert centroid[bright].mean() > 1.2 * centroid[~bright].mean()
  level = np.array([c.brightness for c in corpus.clips])
  assert np.corrcoef(level, np.log(centroid))[0, 1] > 0.4


def test_tempo_is_audible():
  """The onset-strength envelope is periodic at the labelled beat period."""
  corpus, audio = _probe_set()
  sr, hop = corpus.config.sample_rate, 64
  _, _, spec = signal.stft(audio, sr, nperseg=256, noverlap=256 - hop)
  power = np.abs(spec) ** 2
  power = power / power.mean(axis=(1, 2), keepdims=True)
  flux = np.maximum(np.diff(np.log1p(100 * power), axis=-1), 0).sum(1)   # [clips, frames]
  flux = flux - flux.mean(1, keepdims=True)
  ac = np.stack([np.correlate(x, x, "full")[len(x) - 1:] for x in flux])
  fps = sr / hop
  beat = 60.0 / np.array([c.tempo_bpm for c in corpus.clips])
  rows = np.arange(len(ac))
  on_beat = ac[rows, np.round(beat * fps).astype(int)]
  off_beat = ac[rows, np.round(0.625 * beat * fps).astype(int)]
  assert np.mean(on_beat > off_beat) > 0.8
  # Tempo from the autocorrelation peak in 60..180 bpm is right up to an octave error.
  lags = np.arange(int(fps / 3), int(fps) + 1)
  estimate = 60.0 * fps / lags[np.argmax(ac[:, lags], axis=1)]
  octaves = np.log2(estimate * beat / 60.0)
  assert np.mean(np.abs(octaves - np.round(octaves)) < 0.11) > 0.6


def test_instruments_beat_chance_with_nearest_centroid():
  corpus, audio = _probe_set()
  sr = corpus.config.sample_rate
  crop = sr // 2
  starts = np.random.default_rng(0).integers(0, audio.shape[1] - crop, len(audio))
  feats = np.stack([_log_bands(x[s:s + crop], sr) for x, s in zip(audio, starts)])
  feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
  labels = corpus.tag_matrix()[:, corpus.tag_groups["instrument"]].astype(bool)
  train = np.arange(len(audio)) % 2 == 0
  accuracies = []
  for j in range(labels.shape[1]):
    y = labels[:, j]
    if y[train].all() or not y[train].any() or y[~train].all() or not y[~train].any():
      continue
    on, off = feats[train & y].mean(0), feats[train & ~y].mean(0)
    guess = (np.linalg.norm(feats - on, axis=1) < np.linalg.norm(feats - off, axis=1))[~train]
    truth = y[~train]
    accuracies.append(0.5 * (guess[truth].mean() + (~guess[~truth]).mean()))  # balanced accuracy
  assert len(accuracies) >= 6
  assert np.mean(accuracies) > 0.58                                    # chance: 0.5
