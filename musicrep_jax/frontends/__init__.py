"""On-device audio front ends (log-mel spectrogram, papers.md 1.3)."""

from musicrep_jax.frontends.mel import (  # noqa: F401
    PAPER_MEL_MEAN, PAPER_MEL_STD, MelSpectrogram, mel_filterbank, mel_spectrogram, num_frames,
    samples_for_frames)
