"""The tempo estimator (``frontends/tempo.py``) on click tracks of known tempo: within 2 BPM
from 60 to 180 BPM at both of the papers' sample rates, whatever the first click's phase;
no tempo (NaN) for silence, noise and clips shorter than two beats of the slowest tempo."""

import numpy as np
import pytest

from musicrep_jax.frontends import tempo
from tests.helpers import click_track

# Every 10 BPM from 60 to 180, plus non-integer tempi between the grid points.
TEMPI = [float(b) for b in range(60, 181, 10)] + [63.7, 97.3, 142.9, 177.5]


@pytest.mark.parametrize("sample_rate", [22050, 16000])
def test_click_tracks_within_2_bpm_from_60_to_180(sample_rate):
  errors = {bpm: tempo.estimate_bpm(click_track(bpm, sample_rate, 30.0, seed=i), sample_rate)
            - bpm for i, bpm in enumerate(TEMPI)}
  assert all(abs(e) <= 2.0 for e in errors.values()), errors


def test_short_clip_uses_fewer_beat_multiples():
  """8 s hold 3 periods of the slowest tempo twice over: still within 2 BPM."""
  for i, bpm in enumerate((72.0, 128.0, 171.0)):
    assert abs(tempo.estimate_bpm(click_track(bpm, 16000, 8.0, seed=i), 16000) - bpm) <= 2.0


def test_no_beat_is_nan():
  rng = np.random.default_rng(0)
  assert np.isnan(tempo.estimate_bpm(np.zeros(16000 * 10), 16000))
  assert np.isnan(tempo.estimate_bpm(rng.standard_normal(16000 * 10), 16000))
  # 2 s is less than two beats of the slowest tempo searched (50 BPM: 1.2 s).
  assert np.isnan(tempo.estimate_bpm(click_track(120.0, 16000, 2.0, seed=0), 16000))
