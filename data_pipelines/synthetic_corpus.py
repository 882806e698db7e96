"""A seeded, procedural music corpus: the project's embedded default dataset.

Every clip is rendered from a symbolic score (chords, melody, bass line, drum pattern) played by
simple synthetic instruments, so every label has ground truth, and every label is audible.

Catalogue. ``num_artists`` artists, each with ``albums_per_artist`` albums (global album id
``artist * albums_per_artist + k``); ``num_clips`` tracks are spread over the albums (every album
gets one track, the rest go by a multinomial over Dirichlet(5) album weights). One clip per track;
track ids are shuffled, so any prefix of ``corpus.clips`` mixes artists.

Each artist has a style prior (genre distribution, instrument weights, tempo offset, key, mood
preference, a production signature); each album perturbs it slightly; each track draws its labels
from its album. What every label depends on, and how it is heard:

===========  ========================================  ===========================================
label        drawn from (metadata)                     audible as (waveform)
===========  ========================================  ===========================================
genre        album genre distribution: artist primary  typical instruments, tempo range, drum
             genre 62%, secondary 30%, uniform 8%;     pattern (backbeat, four-on-the-floor, swing
             Dirichlet-perturbed per album             ride, shuffle, double kick, light), swing,
                                                       chords (triad, 7th, power), guitar
                                                       distortion, register, brightness, reverb
mood         genre mood prior x artist mood            mode: happy, calm = major; sad, angry =
             preference                                minor (chords and melody). Brightness:
                                                       happy, angry bright; sad, calm dark.
                                                       Articulation (staccato / legato), dynamics
instruments  1..3 distinct, >= 1 melodic (not bass or  timbre: piano (struck, decaying, hammer
             drums); weights = genre table x album     click), guitar (plucked, comb-filtered
             instrument preference                     harmonics), violin (bowed saw, vibrato),
                                                       flute (near-sine, breath), organ (drawbars,
                                                       tremolo), bell (inharmonic partials), synth
                                                       (detuned saws), bass (low register), drums
                                                       (kick / snare / hat / ride)
tempo_bpm    genre mean + artist + album offsets +     beat period of every onset (drums on 8ths,
             mood offset (+8 happy, -10 sad, -8 calm,  bass, chord strikes, melody)
             +10 angry) + noise; clipped to [60, 180]
tempo tag    slow: bpm < 90 <= medium < 130 <= fast    (as tempo_bpm)
key          album key (the artist's, sometimes a 4th  tonic of chords and melody
             or 5th away); tracks transpose w.p. 0.15
brightness   mood (+-0.5) + genre offset + album       spectral tilt (harmonic roll-off and a
             offset + N(0, 0.15)                       +-9 dB shelf above 1.2 kHz)
artist,      all of the above priors                   also a production signature per artist:
album                                                  register, reverb, pluck position, vibrato
                                                       rate, timbre tilt
===========  ========================================  ===========================================

Mix: stems are RMS-normalised with random (+-2 dB) gains, then a brightness shelf, a noise
reverb, a background noise floor (-40..-25 dB), peak normalisation and a random gain
(-12..-0.5 dBFS). Timbre and mood cues are present in any 0.5 s crop; tempo needs about 1-2 s.

Tags (multi-hot over ``tag_names`` = GENRES + MOODS + INSTRUMENTS + TEMPO_CLASSES, in that
order): the genre word, the mood word, one word per instrument, the tempo-class word.

Users. ``user_factors`` float32 [num_users, len(GENRES) + len(MOODS)]: columns ``[:G]`` are a genre
preference (Dirichlet(0.4), sums to 1), columns ``[G:]`` a mood preference (Dirichlet(1)). Each user
also has 0..3 favourite artists (``user_artist_affinity`` float32 [num_users, num_artists], a boost
of 1..2.5 nats) and tracks have a log-popularity (``track_popularity`` float32 [num_clips]). The
score ``affinity(u, t) = log genre_pref[u, genre_t] + 0.7 log mood_pref[u, mood_t] +
artist_affinity[u, artist_t] + popularity_t``; a user listens to ``n_u ~ U{10..60}`` distinct tracks
(capped at num_clips) sampled without replacement with probability proportional to
``exp(affinity)`` (Gumbel top-k), with play count ``1 + Poisson(6 * activity_u *
exp(affinity - max affinity among the user's tracks))``. Tracks of every split appear.

Splits. By track: a seeded permutation of the tracks; with ``c = cumsum(fractions)`` (normalised
to sum 1), ``n_train = floor(T * c[0] + 0.5)``, ``n_train + n_validation = floor(T * c[1] + 0.5)``,
the test split takes the rest. Artists and albums are shared across splits.

Determinism. Metadata depends only on the config (independent random streams for catalogue,
splits and users: changing ``num_users`` leaves the tracks unchanged). ``render(i)`` depends only on
the config and ``i`` (own random streams seeded by ``(seed, i)``), so it is independent of render
order, and bitwise reproducible on a given platform (numpy/scipy only, no BLAS or threads); the
score (notes) does not depend on ``sample_rate``: the same music at every rate.

Speed: about 250-300x real time at 16 kHz on one core
(``python -m musicrep_jax.data_pipelines.synthetic_corpus``
prints it).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time

import numpy as np
from scipy import signal

from musicrep_jax.errors import UserError

GENRES = ["rock", "jazz", "classical", "electronic", "folk", "ambient", "metal", "blues"]
MOODS = ["happy", "sad", "calm", "angry"]
INSTRUMENTS = ["piano", "guitar", "violin", "flute", "organ", "bell", "synth", "bass", "drums"]
TEMPO_CLASSES = ["slow", "medium", "fast"]
TEMPO_EDGES = (90.0, 130.0)   # slow < 90 <= medium < 130 <= fast
TEMPO_RANGE = (60.0, 180.0)

MOOD_MAJOR = (True, False, True, False)          # happy, sad, calm, angry
MOOD_BRIGHTNESS = (0.5, -0.5, -0.5, 0.5)
_MOOD_TEMPO = (8.0, -10.0, -8.0, 10.0)
_MOOD_GATE = (0.6, 1.0, 1.0, 0.8)                 # fraction of the inter-onset interval sounded
_MOOD_VELOCITY = (0.85, 0.6, 0.55, 1.0)

_MELODIC = np.array([name not in ("bass", "drums") for name in INSTRUMENTS])

# Per-genre tables, rows in GENRES order.
_GENRE_INSTRUMENTS = np.array([
    # piano guitar violin flute organ bell synth bass drums
    [1.0, 5.0, 0.2, 0.1, 1.0, 0.1, 0.6, 3.5, 4.5],     # rock
    [4.5, 1.5, 0.3, 1.2, 1.2, 0.2, 0.2, 3.5, 3.0],     # jazz
    [4.0, 0.3, 4.5, 3.0, 0.8, 0.6, 0.05, 0.1, 0.05],   # classical
    [0.8, 0.2, 0.1, 0.2, 0.5, 1.5, 5.0, 3.5, 4.5],     # electronic
    [0.6, 5.0, 2.5, 2.5, 0.2, 0.3, 0.05, 1.0, 0.8],    # folk
    [1.5, 0.4, 1.0, 1.5, 2.0, 3.0, 4.0, 0.3, 0.1],     # ambient
    [0.2, 6.0, 0.2, 0.05, 0.5, 0.05, 0.4, 3.5, 5.0],   # metal
    [3.0, 4.5, 0.3, 0.2, 2.0, 0.05, 0.1, 3.0, 2.5],    # blues
])
_GENRE_MOODS = np.array([
    # happy sad calm angry
    [0.35, 0.15, 0.05, 0.45],
    [0.35, 0.20, 0.40, 0.05],
    [0.30, 0.30, 0.35, 0.05],
    [0.45, 0.10, 0.15, 0.30],
    [0.45, 0.30, 0.20, 0.05],
    [0.10, 0.30, 0.55, 0.05],
    [0.05, 0.15, 0.02, 0.78],
    [0.20, 0.50, 0.20, 0.10],
])
_GENRE_TEMPO = np.array([[125, 15], [120, 25], [95, 22], [126, 8], [102, 18], [72, 10], [155, 18],
                         [88, 14]], np.float64)
_GENRE_BRIGHTNESS = np.array([0.2, -0.05, -0.15, 0.3, -0.05, -0.35, 0.45, 0.0])


@dataclasses.dataclass(frozen=True)
class _GenreSound:
  drums: str          # drum pattern name (_DRUM_PATTERNS)
  swing: float        # position of the off-beat 8th within the beat (0.5 = straight)
  chord: str          # "triad" | "seventh" | "power"
  register: int       # melody centre, MIDI
  distortion: float   # guitar drive (0 = clean)
  reverb: float       # 0..1
  melody_sub: float   # melody grid steps per beat
  melody_density: float  # probability of an onset on an off-beat grid step
  comp: float         # beats between chord strikes


_GENRE_SOUND = (
    _GenreSound("backbeat", 0.5, "triad", 67, 3.0, 0.2, 2, 0.75, 0.5),
    _GenreSound("swing", 0.64, "seventh", 67, 0.0, 0.25, 2, 0.85, 1.0),
    _GenreSound("light", 0.5, "triad", 72, 0.0, 0.45, 2, 0.6, 2.0),
    _GenreSound("four", 0.5, "triad", 72, 0.0, 0.15, 4, 0.6, 1.0),
    _GenreSound("light", 0.5, "triad", 69, 0.0, 0.2, 2, 0.7, 1.0),
    _GenreSound("light", 0.5, "triad", 74, 0.0, 0.75, 0.5, 1.0, 4.0),
    _GenreSound("double", 0.5, "power", 60, 8.0, 0.1, 4, 0.8, 0.5),
    _GenreSound("shuffle", 0.66, "seventh", 64, 1.5, 0.2, 2, 0.6, 1.0),
)

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = {  # scale degrees (0-based)
    True: ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4)),
    False: ((0, 5, 2, 6), (0, 3, 4, 0), (0, 3, 6, 2), (0, 5, 3, 4)),
}
_JAZZ_PROGRESSION = (1, 4, 0, 0)

_RANGE = {"piano": (45, 88), "guitar": (40, 79), "violin": (55, 93), "flute": (60, 96),
          "organ": (40, 84), "bell": (72, 100), "synth": (40, 91), "bass": (28, 50)}
_CHORD_CENTRE = {"piano": 60, "guitar": 57, "violin": 67, "flute": 74, "organ": 60, "bell": 80,
                 "synth": 60}
_STEM_GAIN = {"melody": 1.0, "chords": 0.7, "bass": 0.8, "drums": 0.75}

_SALT_CATALOGUE, _SALT_SPLIT, _SALT_USERS, _SALT_SCORE, _SALT_NOISE = 101, 102, 103, 104, 105
_TABLE_SIZE = 2048
_MAX_HARMONICS = 64


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
  num_clips: int = 600            # one clip per track
  seed: int = 0
  sample_rate: int = 16000        # any rate 8000..44100
  clip_seconds: float = 4.0
  num_artists: int = 30
  albums_per_artist: int = 2
  num_users: int = 200
  split_fractions: tuple = (0.8, 0.1, 0.1)   # train / validation / test, assigned by track
  user_interactions: tuple = (10, 60)         # min, max distinct tracks per user (<= num_clips)

  def __post_init__(self):
    # A config rebuilt from JSON has lists: keep it hashable and equal to the original.
    for name in ("split_fractions", "user_interactions"):
      object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclasses.dataclass(frozen=True)
class ClipInfo:
  clip_id: int          # == index in corpus.clips; == track id (one clip per track)
  track: int
  album: int            # globally unique album id
  artist: int
  genre: int            # index into GENRES
  mood: int             # index into MOODS
  tempo_bpm: float
  instruments: tuple    # sorted indices into INSTRUMENTS (1..3 of them, >= 1 melodic)
  tags: np.ndarray      # uint8 [num_tags] multi-hot over corpus.tag_names (read-only)
  name: str             # e.g. "artist07/album01/track0123"
  split: str            # "train" | "validation" | "test"
  key: int = 0          # tonic pitch class 0..11 (0 = C); the mode follows MOOD_MAJOR[mood]
  brightness: float = 0.0  # spectral tilt parameter (about -1 dark .. +1 bright)


def tempo_class(bpm: float) -> int:
  """Index into TEMPO_CLASSES of a tempo in beats per minute."""
  return int(bpm >= TEMPO_EDGES[0]) + int(bpm >= TEMPO_EDGES[1])


def _check_config(config: CorpusConfig) -> None:
  c = config
  if c.num_artists < 1 or c.albums_per_artist < 1:
    raise UserError(f"CorpusConfig needs num_artists >= 1 and albums_per_artist >= 1, got "
                    f"{c.num_artists} and {c.albums_per_artist}.")
  if c.num_clips < c.num_artists * c.albums_per_artist:
    raise UserError(f"CorpusConfig.num_clips={c.num_clips} is smaller than the number of albums "
                    f"({c.num_artists} x {c.albums_per_artist}); every album needs a track.")
  if c.seed < 0:
    raise UserError(f"CorpusConfig.seed={c.seed} must be >= 0.")
  if not 8000 <= c.sample_rate <= 48000:
    raise UserError(f"CorpusConfig.sample_rate={c.sample_rate} is outside 8000..48000 Hz.")
  if not c.clip_seconds > 0:
    raise UserError(f"CorpusConfig.clip_seconds={c.clip_seconds} must be positive.")
  fr = np.asarray(c.split_fractions, np.float64)
  if fr.shape != (3,) or np.any(fr < 0) or fr.sum() <= 0:
    raise UserError(f"CorpusConfig.split_fractions={c.split_fractions} must be three "
                    "non-negative numbers (train, validation, test).")
  lo, hi = c.user_interactions
  if c.num_users < 0 or not 1 <= lo <= hi:
    raise UserError(f"CorpusConfig.user_interactions={c.user_interactions} must be (min, max) "
                    "with 1 <= min <= max, and num_users >= 0.")


def _split_sizes(num: int, fractions) -> tuple:
  """(n_train, n_validation, n_test) by half-up rounding of the cumulative fractions."""
  fr = np.asarray(fractions, np.float64)
  cuts = np.floor(num * np.cumsum(fr / fr.sum()) + 0.5).astype(np.int64)
  return int(cuts[0]), int(cuts[1] - cuts[0]), int(num - cuts[1])


def _sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
  """One categorical draw per row of probs [n, k] (rows need not be normalised) -> int [n]."""
  cdf = np.cumsum(probs, axis=1)
  u = rng.random(len(probs)) * cdf[:, -1]
  return np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1)


class SyntheticCorpus:
  """Metadata of the procedural corpus (built eagerly, cheap) and on-demand audio rendering."""

  def __init__(self, config: CorpusConfig = CorpusConfig()):
    _check_config(config)
    self.config = config
    self.genre_names, self.mood_names = list(GENRES), list(MOODS)
    self.instrument_names, self.tempo_class_names = list(INSTRUMENTS), list(TEMPO_CLASSES)
    self.tag_names = list(GENRES) + list(MOODS) + list(INSTRUMENTS) + list(TEMPO_CLASSES)
    offsets = np.cumsum([0, len(GENRES), len(MOODS), len(INSTRUMENTS), len(TEMPO_CLASSES)])
    self.tag_groups = {name: list(range(offsets[i], offsets[i + 1]))
                       for i, name in enumerate(("genre", "mood", "instrument", "tempo"))}
    self._build_catalogue()
    self._build_splits()
    self._build_users()

  # --- metadata -----------------------------------------------------------------------------

  def _build_catalogue(self) -> None:
    c = self.config
    rng = np.random.default_rng([c.seed, _SALT_CATALOGUE])
    g_n, m_n, i_n = len(GENRES), len(MOODS), len(INSTRUMENTS)
    a_n, b_n = c.num_artists, c.num_artists * c.albums_per_artist

    # Artist style priors: every genre is some artist's primary genre when a_n >= g_n.
    primary = rng.permutation(np.resize(np.arange(g_n), a_n))
    secondary = (primary + rng.integers(1, g_n, a_n)) % g_n
    eye = np.eye(g_n)
    artist_genre = 0.08 / g_n + 0.62 * eye[primary] + 0.30 * eye[secondary]
    artist_instr = np.exp(rng.normal(0.0, 0.8, (a_n, i_n)))
    artist_mood = rng.dirichlet(np.full(m_n, 2.0), a_n) * m_n
    artist_tempo = rng.normal(0.0, 8.0, a_n)
    artist_key = rng.integers(0, 12, a_n)
    artist_bright = rng.normal(0.0, 0.15, a_n)
    self._artist_register = rng.integers(-3, 4, a_n)
    self._artist_reverb = rng.normal(0.0, 0.1, a_n)
    self._artist_tilt = rng.normal(0.0, 0.2, a_n)
    self._artist_vibrato = rng.uniform(4.5, 6.5, a_n)
    self._artist_pluck = rng.uniform(0.12, 0.3, a_n)

    # Albums: small perturbations of their artist.
    album_artist = np.repeat(np.arange(a_n), c.albums_per_artist)
    album_genre = np.stack([rng.dirichlet(40.0 * artist_genre[a] + 0.01) for a in album_artist])
    album_instr = artist_instr[album_artist] * np.exp(rng.normal(0.0, 0.3, (b_n, i_n)))
    album_tempo = artist_tempo[album_artist] + rng.normal(0.0, 4.0, b_n)
    moved = rng.random(b_n) < 0.4
    album_key = (artist_key[album_artist] + moved * rng.choice([5, 7], b_n)) % 12
    album_bright = artist_bright[album_artist] + rng.normal(0.0, 0.08, b_n)

    # Tracks per album: at least one each, the rest by a skewed multinomial; shuffled ids.
    extra = rng.multinomial(c.num_clips - b_n, rng.dirichlet(np.full(b_n, 5.0)))
    track_album = rng.permutation(np.repeat(np.arange(b_n), 1 + extra))
    t_n = c.num_clips
    track_artist = album_artist[track_album]

    genre = _sample_rows(rng, album_genre[track_album])
    mood = _sample_rows(rng, _GENRE_MOODS[genre] * artist_mood[track_artist] + 1e-3)
    tempo = (_GENRE_TEMPO[genre, 0] + album_tempo[track_album] + np.take(_MOOD_TEMPO, mood)
             + rng.normal(0.0, 1.0, t_n) * 0.6 * _GENRE_TEMPO[genre, 1])
    tempo = np.round(np.clip(tempo, *TEMPO_RANGE), 1)
    transpose = (rng.random(t_n) < 0.15) * rng.integers(1, 12, t_n)
    key = (album_key[track_album] + transpose) % 12
    bright = (np.take(MOOD_BRIGHTNESS, mood) + _GENRE_BRIGHTNESS[genre]
              + album_bright[track_album] + rng.normal(0.0, 0.15, t_n))
    counts = rng.choice([1, 2, 3], t_n, p=[0.2, 0.45, 0.35])
    gumbel = rng.gumbel(size=(t_n, i_n))

    width_a = max(2, len(str(a_n - 1)))
    width_b = max(2, len(str(c.albums_per_artist - 1)))
    width_t = max(4, len(str(t_n - 1)))
    clips = []
    for t in range(t_n):
      weights = _GENRE_INSTRUMENTS[genre[t]] * album_instr[track_album[t]]
      keys = np.log(weights) + gumbel[t]             # Gumbel top-k: sampling w/o replacement
      first = int(np.argmax(np.where(_MELODIC, keys, -np.inf)))
      keys[first] = -np.inf
      rest = np.argsort(-keys)[:counts[t] - 1]
      instruments = tuple(sorted([first] + [int(i) for i in rest]))
      tags = np.zeros(len(self.tag_names), np.uint8)
      tags[self.tag_groups["genre"][genre[t]]] = 1
      tags[self.tag_groups["mood"][mood[t]]] = 1
      tags[[self.tag_groups["instrument"][i] for i in instruments]] = 1
      tags[self.tag_groups["tempo"][tempo_class(tempo[t])]] = 1
      tags.setflags(write=False)
      a, b = int(track_artist[t]), int(track_album[t])
      name = (f"artist{a:0{width_a}d}/album{b % c.albums_per_artist:0{width_b}d}/"
              f"track{t:0{width_t}d}")
      clips.append(ClipInfo(clip_id=t, track=t, album=b, artist=a, genre=int(genre[t]),
                            mood=int(mood[t]), tempo_bpm=float(tempo[t]), instruments=instruments,
                            tags=tags, name=name, split="", key=int(key[t]),
                            brightness=float(bright[t])))
    self.clips = clips
    self._track_genre, self._track_mood, self._track_artist = genre, mood, track_artist

  def _build_splits(self) -> None:
    c = self.config
    rng = np.random.default_rng([c.seed, _SALT_SPLIT])
    order = rng.permutation(c.num_clips)
    n_train, n_val, _ = _split_sizes(c.num_clips, c.split_fractions)
    names = np.empty(c.num_clips, object)
    names[order[:n_train]] = "train"
    names[order[n_train:n_train + n_val]] = "validation"
    names[order[n_train + n_val:]] = "test"
    self.clips = [dataclasses.replace(info, split=str(names[i]))
                  for i, info in enumerate(self.clips)]
    self._splits = {s: np.flatnonzero(names == s).astype(np.int64)
                    for s in ("train", "validation", "test")}

  def _build_users(self) -> None:
    c = self.config
    rng = np.random.default_rng([c.seed, _SALT_USERS])
    u_n, t_n, g_n = c.num_users, c.num_clips, len(GENRES)
    genre_pref = rng.dirichlet(np.full(g_n, 0.4), u_n)
    mood_pref = rng.dirichlet(np.ones(len(MOODS)), u_n)
    self.user_factors = np.concatenate([genre_pref, mood_pref], axis=1).astype(np.float32)
    artist_aff = np.zeros((u_n, c.num_artists), np.float32)
    for u in range(u_n):
      fav = rng.choice(c.num_artists, min(c.num_artists, rng.integers(0, 4)), replace=False)
      artist_aff[u, fav] = rng.uniform(1.0, 2.5, len(fav))
    self.user_artist_affinity = artist_aff
    self.track_popularity = rng.normal(0.0, 0.7, t_n).astype(np.float32)
    lo, hi = c.user_interactions
    sizes = np.minimum(rng.integers(lo, hi + 1, u_n), t_n)
    activity = rng.lognormal(0.0, 0.5, u_n)
    rows = []
    for u in range(u_n):
      score = self.affinity(np.array([u]))[0].astype(np.float64)
      chosen = np.argsort(-(score + rng.gumbel(size=t_n)))[:sizes[u]]
      lam = 6.0 * activity[u] * np.exp(score[chosen] - score[chosen].max())
      plays = 1 + rng.poisson(lam)
      rows.append(np.stack([np.full(len(chosen), u), chosen, plays], axis=1))
    inter = np.concatenate(rows) if rows else np.zeros((0, 3))
    inter = inter.astype(np.int64)
    self.interactions = inter[np.lexsort((inter[:, 1], inter[:, 0]))]

  # --- public helpers -----------------------------------------------------------------------

  def __len__(self) -> int:
    return len(self.clips)

  def split_indices(self, split: str) -> np.ndarray:
    """int64 [n] sorted clip indices of "train" | "validation" | "test"."""
    if split not in self._splits:
      raise UserError(f"Unknown split {split!r}; expected one of train, validation, test.")
    return self._splits[split].copy()

  def tag_matrix(self) -> np.ndarray:
    """uint8 [num_clips, num_tags] multi-hot tags of all clips."""
    return np.stack([info.tags for info in self.clips])

  def tag_text(self, index: int) -> str:
    """The tag words of a clip, space-separated in tag_names order (a 'sentence' for word2vec)."""
    return " ".join(self.tag_names[i] for i in np.flatnonzero(self.clips[index].tags))

  def affinity(self, users: np.ndarray | None = None) -> np.ndarray:
    """float32 [len(users), num_clips] ground-truth log-affinity of users (default: all)."""
    users = np.arange(self.config.num_users) if users is None else np.asarray(users)
    g_n = len(GENRES)
    genre, mood, artist = self._track_genre, self._track_mood, self._track_artist
    f = self.user_factors[users].astype(np.float64)
    score = (np.log(f[:, genre] + 1e-3) + 0.7 * np.log(f[:, g_n + mood] + 1e-3)
             + self.user_artist_affinity[users][:, artist] + self.track_popularity[None, :])
    return score.astype(np.float32)

  # --- audio ----------------------------------------------------------------------------------

  def render(self, index: int) -> np.ndarray:
    """float32 [round(clip_seconds * sample_rate)] waveform of clip ``index``, peak <= 0.95."""
    c = self.config
    index = int(index)
    if not 0 <= index < len(self.clips):
      raise IndexError(f"clip index {index} is outside 0..{len(self.clips) - 1}")
    info = self.clips[index]
    a = info.artist
    production = dict(register=int(self._artist_register[a]),
                      reverb=float(self._artist_reverb[a]), tilt=float(self._artist_tilt[a]),
                      vibrato=float(self._artist_vibrato[a]), pluck=float(self._artist_pluck[a]))
    score = _compose(info, production, c.clip_seconds,
                     np.random.default_rng([c.seed, index, _SALT_SCORE]))
    return _perform(score, info, production, c.sample_rate,
                    int(round(c.clip_seconds * c.sample_rate)),
                    np.random.default_rng([c.seed, index, _SALT_NOISE]))


# --- composition (sample-rate independent) -------------------------------------------------


def _chord_tones(key: int, major: bool, degree: int, kind: str) -> list:
  """Pitch classes of the chord on a scale degree, root first."""
  scale = _MAJOR if major else _MINOR
  if kind == "power":
    root = (key + scale[degree % 7]) % 12
    return [root, (root + 7) % 12]
  size = 4 if kind == "seventh" else 3
  return [(key + scale[(degree + 2 * j) % 7]) % 12 for j in range(size)]


def _place(pc: int, low: int) -> int:
  """The MIDI note of pitch class pc in [low, low + 12)."""
  return low + (pc - low) % 12


def _swing(pos: np.ndarray, swing: float) -> np.ndarray:
  """Beat positions with off-beat 8ths moved to ``swing`` of the beat."""
  frac = pos % 1.0
  return np.where(np.abs(frac - 0.5) < 1e-9, np.floor(pos) + swing, pos)


@dataclasses.dataclass
class _Song:
  """The shared frame of one clip's score: tempo, harmony, articulation, a random stream."""
  sound: _GenreSound
  key: int
  major: bool
  beat: float             # seconds
  offset: float           # song time (s) at the clip start
  n_beats: int
  beats_per_chord: int
  chords: list            # list of pitch-class lists, root first
  gate: float
  velocity: float
  rng: np.random.Generator

  def seconds(self, pos) -> np.ndarray:
    """Beat positions -> seconds from the clip start (swung, with 4 ms timing jitter)."""
    pos = np.asarray(pos, np.float64)
    jitter = self.rng.normal(0.0, 0.004, pos.shape)
    return _swing(pos, self.sound.swing) * self.beat - self.offset + jitter

  def chord_at(self, pos: float) -> list:
    return self.chords[min(int(pos // self.beats_per_chord), len(self.chords) - 1)]

  def voice(self, instrument, role, pos, pitches, durs_beats, vels) -> dict:
    """A monophonic voice: onsets, durs (s), pitches (MIDI), vels, each [notes], time-sorted."""
    onsets = self.seconds(pos)
    durs = np.maximum(np.asarray(durs_beats, np.float64) * self.beat, 0.06)
    order = np.argsort(onsets, kind="stable")
    vels = np.clip(np.asarray(vels, np.float64), 0.05, 1.2)
    return dict(instrument=instrument, role=role, onsets=onsets[order], durs=durs[order],
                pitches=np.asarray(pitches, np.float64)[order], vels=vels[order])


def _new_song(info: ClipInfo, clip_seconds: float, rng: np.random.Generator) -> _Song:
  sound = _GENRE_SOUND[info.genre]
  major = MOOD_MAJOR[info.mood]
  beat = 60.0 / info.tempo_bpm
  offset = rng.uniform(1.0, 5.0) * beat
  n_beats = int(math.ceil((offset + clip_seconds) / beat)) + 1
  beats_per_chord = 2 if info.tempo_bpm < 100 else 4
  progressions = _PROGRESSIONS[major]
  prog = progressions[rng.integers(len(progressions))]
  if info.genre == GENRES.index("jazz") and rng.random() < 0.5:
    prog = _JAZZ_PROGRESSION
  start = rng.integers(4)
  chords = [_chord_tones(info.key, major, prog[(start + k) % 4], sound.chord)
            for k in range(n_beats // beats_per_chord + 1)]
  return _Song(sound, info.key, major, beat, offset, n_beats, beats_per_chord, chords,
               _MOOD_GATE[info.mood], _MOOD_VELOCITY[info.mood], rng)


def _melody(song: _Song, lead: str, register_shift: int) -> dict:
  """The lead voice: a random walk on the scale, pulled to chord tones on beats."""
  sound, rng = song.sound, song.rng
  lo, hi = _RANGE[lead]
  centre = int(np.clip(sound.register + register_shift, lo + 7, hi - 7))
  scale = _MAJOR if song.major else _MINOR
  notes = np.array([p for p in range(centre - 9, centre + 10) if (p - song.key) % 12 in scale])
  grid = np.arange(0.0, song.n_beats, 1.0 / sound.melody_sub)
  on_beat = np.abs(grid % 1.0) < 1e-9
  pos = grid[on_beat | (rng.random(len(grid)) < sound.melody_density)]
  k, pitches = len(notes) // 2, []
  for p in pos:
    k = int(np.clip(k + rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]), 0, len(notes) - 1))
    if abs(p % 1.0) < 1e-9 and rng.random() < 0.7:
      in_chord = np.isin(notes % 12, song.chord_at(p))
      k = int(np.argmin(np.abs(notes - notes[k]) + 100 * ~in_chord))
    pitches.append(notes[k])
  ioi = np.diff(np.append(pos, song.n_beats + 1.0))
  accent = 1 + 0.15 * (np.abs(pos % 1.0) < 1e-9)
  vels = song.velocity * accent + rng.normal(0, 0.05, len(pos))
  return song.voice(lead, "melody", pos, pitches, ioi * song.gate, vels)


def _accompaniment(song: _Song, inst: str) -> list:
  """Chord voices: struck (piano, guitar), arpeggiated (bell), sustained (the others)."""
  low, rng, n = _CHORD_CENTRE[inst] - 6, song.rng, song.n_beats
  voices = []
  if inst in ("piano", "guitar"):
    comp = song.sound.comp if inst == "guitar" or song.sound.comp >= 1 else 1.0
    pos = np.arange(0.0, n, comp)
    durs = np.full(len(pos), comp * (song.gate if comp < 2 else 1.0))
    for j in range(len(song.chords[0])):
      pitches = [_place(song.chord_at(p)[j], low) for p in pos]
      vels = 0.8 * song.velocity + rng.normal(0, 0.05, len(pos))
      v = song.voice(inst, "chords", pos, pitches, durs, vels)
      if inst == "guitar":
        v["onsets"] = v["onsets"] + 0.012 * j          # a strum
      voices.append(v)
  elif inst == "bell":
    pos = np.arange(0.0, n, 1.0)
    pitches = [_place(song.chord_at(p)[i % len(song.chord_at(p))], low) for i, p in enumerate(pos)]
    ones = np.ones(len(pos))
    voices.append(song.voice(inst, "chords", pos, pitches, ones, 0.8 * song.velocity * ones))
  else:
    pos = np.arange(0.0, n, song.beats_per_chord)
    ones = np.ones(len(pos))
    tones = [1] if inst == "flute" else range(min(3, len(song.chords[0])))   # flute: a 3rd line
    for j in tones:
      pitches = [_place(song.chord_at(p)[j % len(song.chord_at(p))], low) for p in pos]
      voices.append(song.voice(inst, "chords", pos, pitches, song.beats_per_chord * ones,
                               0.7 * song.velocity * ones))
  return voices


def _bass_line(song: _Song) -> dict:
  """Roots on beats (8ths for rock / metal, off-beats for electronic, walking for jazz)."""
  style, rng = song.sound.drums, song.rng
  steps = {"backbeat": (0.5, 0.0), "double": (0.5, 0.0), "four": (1.0, 0.5)}
  step, first = steps.get(style, (1.0, 0.0))
  pos = np.arange(first, song.n_beats, step)
  scale = _MAJOR if song.major else _MINOR
  pitches = []
  for p in pos:
    root = song.chord_at(p)[0]
    if style == "swing" and abs(p % song.beats_per_chord) > 1e-9:
      root = (song.key + scale[rng.integers(7)]) % 12
    pitches.append(_place(root, 33))
  ioi = np.diff(np.append(pos, song.n_beats + 1.0))
  vels = song.velocity + rng.normal(0, 0.05, len(pos))
  return song.voice("bass", "bass", pos, pitches, 0.9 * ioi, vels)


def _drum_hits(song: _Song) -> list:
  """[(kind, onsets (s) [hits], levels [hits])] of the genre's drum pattern."""
  hits = []
  for kind, sixteenths, level in _DRUM_PATTERNS[song.sound.drums]:
    bars = np.arange(0, song.n_beats, 4.0)
    pos = (bars[:, None] + np.array(sixteenths, np.float64)[None, :] / 4.0).ravel()
    pos = pos[pos < song.n_beats]
    levels = level * song.velocity * (1 + song.rng.normal(0, 0.12, len(pos)))
    hits.append((kind, song.seconds(pos), levels))
  return hits


def _compose(info: ClipInfo, prod: dict, clip_seconds: float, rng: np.random.Generator) -> dict:
  """The symbolic score: {"voices": [voice dicts], "drums": [hits]}, times from clip start."""
  song = _new_song(info, clip_seconds, rng)
  names = [INSTRUMENTS[i] for i in info.instruments]
  melodic = [n for n in names if n not in ("bass", "drums")]
  lead = melodic[rng.integers(len(melodic))]
  voices = [_melody(song, lead, prod["register"])]
  players = [n for n in melodic if n != lead]
  if not players and lead in ("piano", "guitar", "organ", "synth"):
    players = [lead]                                    # a solo player accompanies itself
  for inst in players:
    voices += _accompaniment(song, inst)
  if "bass" in names:
    voices.append(_bass_line(song))
  drums = _drum_hits(song) if "drums" in names else []
  return dict(voices=voices, drums=drums)


_DRUM_PATTERNS = {  # (kind, 16th positions in a 4-beat bar, level)
    "backbeat": (("kick", (0, 6, 8), 1.0), ("snare", (4, 12), 0.9),
                 ("hat", tuple(range(0, 16, 2)), 0.5)),
    "four": (("kick", (0, 4, 8, 12), 1.0), ("snare", (4, 12), 0.7), ("hat", (2, 6, 10, 14), 0.6)),
    "swing": (("ride", (0, 4, 6, 8, 12, 14), 0.6), ("kick", (0,), 0.5), ("snare", (10,), 0.3),
              ("hat", (4, 12), 0.3)),
    "light": (("kick", (0, 8), 0.7), ("snare", (12,), 0.35), ("hat", tuple(range(0, 16, 2)), 0.3)),
    "double": (("kick", tuple(range(16)), 0.8), ("snare", (4, 12), 1.0),
               ("ride", (0, 4, 8, 12), 0.5)),
    "shuffle": (("kick", (0, 8), 0.9), ("snare", (4, 12), 0.8),
                ("hat", tuple(range(0, 16, 2)), 0.5)),
}


# --- performance (audio) -------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _sine_basis() -> np.ndarray:
  """float32 [_MAX_HARMONICS, _TABLE_SIZE]: sin(2 pi h x) for h = 1.. over one period."""
  x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
  return np.sin(2 * np.pi * np.outer(np.arange(1, _MAX_HARMONICS + 1), x)).astype(np.float32)


def _wavetable(amps: np.ndarray) -> np.ndarray:
  """float32 [_TABLE_SIZE] one period with harmonic amplitudes amps [h], peak 1."""
  # A plain reduction, not BLAS: identical bits whatever the thread count.
  table = (amps.astype(np.float32)[:, None] * _sine_basis()[:len(amps)]).sum(0)
  return table / max(float(np.abs(table).max()), 1e-6)


def _harmonic_amps(inst: str, h: int, bright: float, prod: dict) -> tuple:
  """(attack amplitudes [h], sustain amplitudes [h]) of a harmonic instrument."""
  n = np.arange(1, h + 1, dtype=np.float64)
  tilt = prod["tilt"] - 0.5 * bright                # + = darker
  if inst == "piano":
    comb = 0.35 + 0.65 * np.abs(np.sin(np.pi * n * 0.12))
    return comb * n ** -(0.8 + tilt), comb * n ** -(2.0 + tilt)
  if inst == "guitar":
    comb = np.abs(np.sin(np.pi * n * prod["pluck"])) + 0.05
    return comb * n ** -(0.5 + tilt), comb * n ** -(1.8 + tilt)
  if inst == "violin":
    formants = 1 + 1.2 * np.exp(-(n - 4) ** 2 / 4) + 0.6 * np.exp(-(n - 9) ** 2 / 6)
    amps = n ** -(0.9 + 0.8 * tilt) * formants
    return amps, amps
  if inst == "flute":
    amps = np.array([1.0, 0.25 + 0.1 * bright, 0.1 + 0.05 * bright, 0.04, 0.02])[:h]
    amps = np.pad(np.maximum(amps, 0.0), (0, h - len(amps)))
    return amps, amps
  if inst == "organ":
    levels = {1: 1.0, 2: 0.9, 3: 0.6, 4: 0.6, 6: 0.4, 8: 0.4, 10: 0.2, 12: 0.2, 16: 0.1}
    amps = np.array([levels.get(int(k), 0.0) for k in n]) * n ** (0.4 * (bright - prod["tilt"]))
    return amps, amps
  if inst == "synth":
    return n ** -(0.6 + 0.8 * tilt), n ** -(1.1 + 0.8 * tilt)
  if inst == "bass":
    return n ** -(1.3 + 0.5 * tilt), n ** -(2.6 + 0.5 * tilt)
  raise ValueError(inst)


# attack s, decay s (inf = sustained), attack->sustain crossfade s, release s, max harmonics,
# noise (click or breath) level, vibrato depth (relative), tremolo depth
_ENVELOPE = {
    "piano": (0.003, 0.9, 0.12, 0.08, 30, 0.25, 0.0, 0.0),
    "guitar": (0.0015, 0.6, 0.06, 0.05, 30, 0.3, 0.0, 0.0),
    "violin": (0.08, np.inf, 1.0, 0.08, 30, 0.03, 0.006, 0.0),
    "flute": (0.05, np.inf, 1.0, 0.06, 5, 0.08, 0.003, 0.1),
    "organ": (0.008, np.inf, 1.0, 0.03, 16, 0.0, 0.0, 0.2),
    "synth": (0.01, 3.0, 0.3, 0.1, 40, 0.0, 0.0, 0.0),
    "bass": (0.006, 0.7, 0.1, 0.04, 16, 0.05, 0.0, 0.0),
    "bell": (0.001, 2.0, 1.0, 0.6, 0, 0.05, 0.0, 0.0),
}
_BELL_RATIOS = np.array([1.0, 2.756, 5.404, 8.933])
_BELL_AMPS = np.array([1.0, 0.6, 0.35, 0.2])
_BELL_DECAYS = np.array([2.0, 0.9, 0.45, 0.25])


def _note_index(onsets: np.ndarray, n: int) -> np.ndarray:
  """int [n] index of the latest note started at or before each sample (-1 before the first)."""
  marks = np.bincount(np.clip(onsets, 0, n), minlength=n + 1)[:n]
  return np.cumsum(marks) - 1


def _render_voice(v: dict, bright: float, prod: dict, sr: int, n: int, t: np.ndarray,
                  noise: np.ndarray) -> np.ndarray:
  """float32 [n]: one monophonic voice (notes never overlap; a new note cuts the previous one)."""
  inst = v["instrument"]
  attack, decay, xfade, release, hmax, noise_level, vib, trem = _ENVELOPE[inst]
  onsets = np.round(v["onsets"] * sr).astype(np.int64)
  keep = onsets < n
  if not keep.any():
    return np.zeros(n, np.float32)
  onsets = onsets[keep]
  freqs = (440.0 * 2.0 ** ((v["pitches"][keep] - 69.0) / 12.0)).astype(np.float32)
  durs, vels = v["durs"][keep].astype(np.float32), v["vels"][keep].astype(np.float32)
  idx = _note_index(onsets, n)
  valid = idx >= 0
  idx = np.maximum(idx, 0)
  ts = (np.arange(n) - onsets[idx]).astype(np.float32) / np.float32(sr)
  over = np.maximum(ts - durs[idx], 0.0)
  env = np.exp(-ts / np.float32(decay) - over / np.float32(release))
  env *= np.minimum(ts / np.float32(attack), 1.0) * vels[idx] * valid
  freq = freqs[idx]
  if vib:
    freq = freq * (1 + vib * np.sin(2 * np.pi * prod["vibrato"] * t) * np.minimum(ts / 0.3, 1.0))
  phase = np.cumsum(freq.astype(np.float64)) / sr
  if inst == "bell":
    out = np.zeros(n, np.float32)
    for ratio, amp, tau in zip(_BELL_RATIOS, _BELL_AMPS, _BELL_DECAYS):
      if ratio * freqs.max() < 0.45 * sr:
        weight = amp * np.exp(0.5 * bright * (ratio > 1))
        partial = np.sin(2 * np.pi * ratio * phase).astype(np.float32)
        out += weight * np.exp(-ts / np.float32(tau)) * partial
    out *= np.minimum(ts / np.float32(attack), 1.0) * vels[idx] * valid
    return out + noise_level * noise * np.exp(-ts / 0.003) * valid
  h = int(np.clip(0.45 * sr / (float(freqs.max()) * (1 + 2 * vib)), 1, hmax))
  amps_a, amps_s = _harmonic_amps(inst, h, bright, prod)
  tab_s = _wavetable(amps_s)
  ti = ((phase % 1.0) * _TABLE_SIZE).astype(np.int32) & (_TABLE_SIZE - 1)
  x = tab_s[ti]
  if xfade < 1.0:
    tab_a = _wavetable(amps_a)
    x = x + (tab_a[ti] - x) * np.exp(-ts / np.float32(xfade))
  if inst == "synth":                                   # second, detuned oscillator
    ti2 = ((phase * 1.004 % 1.0) * _TABLE_SIZE).astype(np.int32) & (_TABLE_SIZE - 1)
    x = 0.5 * (x + tab_s[ti2])
  if trem:
    x = x * (1 - trem * 0.5 * (1 + np.sin(2 * np.pi * 6.3 * t)))
  out = x * env
  if noise_level:
    if inst in ("piano", "guitar", "bass"):               # hammer / pluck click
      out += noise_level * noise * np.exp(-ts / 0.004) * vels[idx] * valid
    else:                                                 # breath / bow noise
      out += noise_level * noise * env
  return out.astype(np.float32)


def _drum_kernel(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
  """float32 [k] one drum hit."""
  length = {"kick": 0.35, "snare": 0.25, "hat": 0.08, "ride": 0.6}[kind]
  t = np.arange(int(length * sr)) / sr
  noise = rng.standard_normal(len(t))
  if kind == "kick":
    f = 45 + 100 * np.exp(-t / 0.03)
    hit = (np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.15)
           + 0.3 * noise * np.exp(-t / 0.003))
  elif kind == "snare":
    hit = 0.8 * noise * np.exp(-t / 0.07) + 0.6 * np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05)
  elif kind == "hat":
    hit = np.diff(noise, prepend=0.0) * np.exp(-t / 0.025) * 0.5
  else:
    partials = sum(np.sin(2 * np.pi * f * t) for f in (3130.0, 3790.0, 5210.0) if f < 0.45 * sr)
    hit = (0.4 * np.diff(noise, prepend=0.0) + 0.3 * partials) * np.exp(-t / 0.35)
  return hit.astype(np.float32)


def _render_drums(drums: list, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
  out = np.zeros(n, np.float32)
  for kind, times, levels in drums:
    kernel = _drum_kernel(kind, sr, rng)
    for start, level in zip(np.round(times * sr).astype(np.int64), levels):
      lo, hi = max(start, 0), min(start + len(kernel), n)
      if lo < hi:
        out[lo:hi] += level * kernel[lo - start:hi - start]
  return out


def _rms(x: np.ndarray) -> float:
  return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-9


def _one_pole_lowpass(x: np.ndarray, cutoff: float, sr: int) -> np.ndarray:
  a = math.exp(-2 * math.pi * cutoff / sr)
  return signal.lfilter([1 - a], [1, -a], x).astype(np.float32)


def _perform(score: dict, info: ClipInfo, prod: dict, sr: int, n: int,
             rng: np.random.Generator) -> np.ndarray:
  """float32 [n]: render the score, mix stems, colour, reverberate, add noise, set the gain."""
  sound = _GENRE_SOUND[info.genre]
  bright = info.brightness
  t = (np.arange(n) / sr).astype(np.float32)
  noise = rng.standard_normal(2 * n).astype(np.float32)
  stems = {}
  for v in score["voices"]:
    start = rng.integers(n)
    key = (v["role"], v["instrument"])
    wave = _render_voice(v, bright, prod, sr, n, t, noise[start:start + n])
    stems[key] = stems.get(key, 0.0) + wave
  mix = np.zeros(n, np.float32)
  for (role, inst), stem in stems.items():
    if inst == "guitar" and sound.distortion > 0:
      drive = sound.distortion
      stem = np.tanh(drive * stem / (np.abs(stem).max() + 1e-9)) / math.tanh(drive)
    gain = _STEM_GAIN[role] * 10 ** (rng.normal(0, 2.0) / 20)
    mix += gain * stem / _rms(stem)
  if score["drums"]:
    drums = _render_drums(score["drums"], sr, n, rng)
    mix += _STEM_GAIN["drums"] * 10 ** (rng.normal(0, 2.0) / 20) * drums / _rms(drums)
  # Brightness: a +-9 dB shelf above ~1.2 kHz.
  low = _one_pole_lowpass(mix, 1200.0, sr)
  mix = low + np.float32(10 ** (9 * np.clip(bright, -1.5, 1.5) / 20)) * (mix - low)
  # Reverb: exponentially decaying noise tail.
  amount = float(np.clip(sound.reverb + prod["reverb"] + rng.normal(0, 0.05), 0.02, 0.95))
  rt = 0.25 + 1.2 * amount
  tir = np.arange(int(rt * sr)) / sr
  ir = (rng.standard_normal(len(tir)) * np.exp(-6.9 * tir / rt)).astype(np.float32)
  ir = _one_pole_lowpass(ir, 3000.0, sr)
  wet = signal.fftconvolve(mix, ir)[:n]
  mix = mix + amount * wet * (_rms(mix) / _rms(wet))
  # Background noise (-40..-25 dB re. the mix), peak normalisation and a random gain.
  floor = _one_pole_lowpass(noise[:n], 4000.0, sr)
  mix = mix + floor * (_rms(mix) / _rms(floor)) * 10 ** (rng.uniform(-40, -25) / 20)
  gain = 10 ** (rng.uniform(-12, -0.5) / 20)
  mix = mix * (gain / max(float(np.abs(mix).max()), 1e-9))
  return np.clip(mix, -0.95, 0.95).astype(np.float32)


if __name__ == "__main__":
  corpus = SyntheticCorpus(CorpusConfig())
  corpus.render(0)
  begin = time.perf_counter()
  count = 40
  for i in range(count):
    corpus.render(i)
  seconds = time.perf_counter() - begin
  audio = count * corpus.config.clip_seconds
  print(f"rendered {audio:.0f} s of audio at {corpus.config.sample_rate} Hz in {seconds:.2f} s: "
        f"{audio / seconds:.0f}x real time")
