"""Music beats: librosa onset and beat tracking on the video's frame grid, in the two published recipes.

The music is analysed at `round(512 * rate)` Hz with hop 512, so one onset frame lasts 1 / rate s
(FACT analyses at 60 * 512 Hz for its 60-fps motion). `rate` is the video's fps times the smallest
whole number that makes it at least `MIN_RATE` (24): the video's own rate from 24 fps up, 30 for
10 fps, 24 for 8 or 12 fps.
Every video frame is then on the beat grid, and low-fps videos (MM-Diffusion: 10 fps) still get a
usable analysis (at 10 fps, i.e. 5120 Hz, librosa lost or mis-tempoed the synthetic drum beats).
Recipes (`RECIPES`):

- "onset" (FACT / AI Choreographer): `onset_strength(y)` -> `beat_track(start_bpm, tightness=100)`;
  `start_bpm` is the known tempo (AIST's tempo rule) when given, else librosa's default 120.
- "percussive" (Bailando): the percussive part of librosa's HPSS split (`librosa.effects.percussive`
  with its defaults, computed by `percussive` below: the same numbers, bit for bit, 6-8x faster),
  `onset_strength(aggregate=np.median)` -> `beat_track` with librosa's default prior (120 BPM).

Beat times are in seconds from the start of the wave. librosa's onset envelope (a centred STFT that it
shifts again by n_fft / 2) peaks one hop AFTER an onset, at any rate (measured on clicks and on
`media.synth.drum_track`: +1.0 frame at 24, 30 and 60 fps). The originals keep that lag (17 ms at 60
fps); at 30 fps it is 33 ms against a 50 ms score kernel, enough to cap a perfectly aligned dancer at
0.80. So beats are moved back by `lag_frames` analysis frames (default `ONSET_LAG_FRAMES` = 1; 0
reproduces the originals) and beats that would fall before 0 are dropped.
A silent wave (see `media.audio.is_silent`) has no beats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import librosa
import numpy as np
from scipy.ndimage import median_filter

from mibench.errors import ConfigError
from mibench.media.audio import is_silent, resample

RECIPES = ("onset", "percussive")
HOP = 512
MIN_RATE = 24.0
TIGHTNESS = 100.0
ONSET_LAG_FRAMES = 1
LIBROSA_START_BPM = 120.0  # librosa's default prior: what "no prior" means


HPSS_KERNEL = 31  # librosa.effects.percussive's default kernel_size, in STFT frames and bins


def _median_rows(matrix: np.ndarray) -> np.ndarray:
    """Running median of width `HPSS_KERNEL` along each row, with "reflect" edges (d c b a | a b c d),
    in one scipy call: every row is padded with its own reflection, the rows are laid end to end and
    filtered as one 1-D signal, and each window then sees only its own row."""
    half = HPSS_KERNEL // 2
    padded = np.pad(matrix, ((0, 0), (half, half)), mode="symmetric")
    return median_filter(padded.ravel(), size=HPSS_KERNEL, mode="reflect").reshape(padded.shape)[:, half:-half]


def percussive(y: np.ndarray) -> np.ndarray:
    """`librosa.effects.percussive(y)` (n_fft 2048, hop 512, kernel 31, power 2, margin 1), computed with
    scipy's 1-D median filter along the rows and then the columns: librosa's 2-D filter with a (1, 31) or
    (31, 1) footprint gives the same medians (both use "reflect" edges) but does not take scipy's fast
    1-D path."""
    stft = librosa.stft(y)
    magnitude, phase = librosa.magphase(stft)
    harmonic = _median_rows(magnitude)
    percussive_part = _median_rows(magnitude.T).T
    mask = librosa.util.softmask(percussive_part, harmonic, power=2.0, split_zeros=True)
    return librosa.istft((magnitude * mask) * phase, dtype=y.dtype, length=y.shape[-1])


@dataclass(frozen=True)
class MusicBeats:
    """Beat times (s) and how they were found."""

    times: np.ndarray
    params: dict


def music_beats(wave: np.ndarray, sr: int, fps: float, *, recipe: str = "onset",
                start_bpm: float | None = None, lag_frames: int = ONSET_LAG_FRAMES) -> MusicBeats:
    """Beats of a mono wave, tracked on the grid of a `fps` video with the named recipe."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown music beat recipe {recipe!r}", f"use one of {', '.join(RECIPES)}")
    frame_rate = fps * math.ceil(MIN_RATE / fps)
    rate = round(HOP * frame_rate)
    prior = float(start_bpm) if recipe == "onset" and start_bpm else LIBROSA_START_BPM
    params = {"recipe": recipe, "analysis_fps": frame_rate, "analysis_sr": rate, "hop": HOP,
              "tightness": TIGHTNESS, "start_bpm": prior, "lag_frames": lag_frames}
    if is_silent(wave):
        return MusicBeats(np.zeros(0), params)
    y = resample(wave, sr, rate)
    if recipe == "percussive":
        envelope = librosa.onset.onset_strength(y=percussive(y), sr=rate, hop_length=HOP,
                                                aggregate=np.median)
    else:
        envelope = librosa.onset.onset_strength(y=y, sr=rate, hop_length=HOP)
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=rate, hop_length=HOP,
                                            start_bpm=prior, tightness=TIGHTNESS)
    times = (np.asarray(frames, dtype=np.float64) - lag_frames) * HOP / rate
    return MusicBeats(times[times >= 0], params)
