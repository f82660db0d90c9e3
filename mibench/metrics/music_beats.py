"""Music beats: librosa onset and beat tracking, in the published recipes and mibench's own.

A recipe (`MusicRecipe`) names the onset envelope, the analysis rate, the tempo prior and the onset-lag
correction. The music is analysed at `round(512 * rate)` Hz with hop 512, so one onset frame lasts
1 / rate s:

- "fact" (AI Choreographer, liruilong940607/mint tools/preprocessing.py): analysis at 60 fps (30720 Hz,
  the papers' motion rate, whatever the video's rate), `onset_strength(y)` ->
  `beat_track(start_bpm=tempo, tightness=100)` with the known tempo (AIST's tempo rule) when given,
  else librosa's default prior (120 BPM); the beat frames are kept as librosa returns them (no lag).
- "bailando" (lisiyao21/Bailando extractor.py): analysis at 60 fps, the percussive part of librosa's
  HPSS split (`librosa.effects.percussive` with its defaults, computed by `percussive` below: the same
  numbers, bit for bit, 6-8x faster), `onset_strength(aggregate=np.median)` -> `beat_track` with
  librosa's default prior (120 BPM) and tightness; no lag.
- "mibench" (mibench's own, for the "mibench" BAS recipe and the tempo metrics): the "fact" envelope
  and prior on the video's own frame grid (its fps times the smallest whole number that makes it at
  least `MIN_RATE`, 24: the video's rate from 24 fps up, 30 for 10 fps, 24 for 8 or 12 fps; at 10 fps,
  i.e. 5120 Hz, librosa lost or mis-tempoed the synthetic drum beats), with librosa's onset lag removed:
  its onset envelope (a centred STFT that it shifts again by n_fft / 2) peaks one hop AFTER an onset, at
  any rate (measured on clicks and on `media.synth.drum_track`: +1.0 frame at 24, 30 and 60 fps). The
  published recipes keep that lag (17 ms at 60 fps); "mibench" moves beats back one analysis frame and
  drops beats that would fall before 0.

Beat times are in seconds from the start of the wave. A silent wave (see `media.audio.is_silent`) has no
beats. librosa's version changes mostly the first and last beats (see ../README), so it is recorded in
every recipe's parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import librosa
import numpy as np
from scipy.ndimage import median_filter

from mibench.media.audio import is_silent, resample

HOP = 512
MIN_RATE = 24.0
PAPER_RATE = 60.0
TIGHTNESS = 100.0
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
class MusicRecipe:
    """How music beats are found (see the module docstring)."""

    name: str
    envelope: str  # "onset": onset_strength(y); "percussive": median onset strength of the HPSS percussive part
    analysis_fps: float | None  # onset frames per second; None: on the video's frame grid (>= MIN_RATE)
    lag_frames: int  # analysis frames the beats are moved back by (librosa's onset lag); 0 as published
    tempo_prior: bool  # start_bpm = the known tempo when given, else librosa's default


FACT_MUSIC = MusicRecipe("fact", "onset", PAPER_RATE, 0, tempo_prior=True)
BAILANDO_MUSIC = MusicRecipe("bailando", "percussive", PAPER_RATE, 0, tempo_prior=False)
MIBENCH_MUSIC = MusicRecipe("mibench", "onset", None, 1, tempo_prior=True)
MUSIC_RECIPES = {r.name: r for r in (FACT_MUSIC, BAILANDO_MUSIC, MIBENCH_MUSIC)}


@dataclass(frozen=True)
class MusicBeats:
    """Beat times (s) and how they were found."""

    times: np.ndarray
    params: dict


def analysis_rate(recipe: MusicRecipe, fps: float) -> float:
    """Onset frames per second of `recipe` for a video at `fps`."""
    return recipe.analysis_fps or fps * math.ceil(MIN_RATE / fps)


def music_beats(wave: np.ndarray, sr: int, fps: float, recipe: MusicRecipe = FACT_MUSIC, *,
                start_bpm: float | None = None) -> MusicBeats:
    """Beats of a mono wave by `recipe` (for a video at `fps`, which sets the grid of a grid recipe);
    `start_bpm`: the music's known tempo, used as the prior by recipes that take one."""
    frame_rate = analysis_rate(recipe, fps)
    rate = round(HOP * frame_rate)
    prior = float(start_bpm) if recipe.tempo_prior and start_bpm else LIBROSA_START_BPM
    params = {"recipe": recipe.name, "envelope": recipe.envelope, "analysis_fps": frame_rate, "analysis_sr": rate,
              "hop": HOP, "tightness": TIGHTNESS, "start_bpm": prior, "lag_frames": recipe.lag_frames,
              "librosa": librosa.__version__}
    if is_silent(wave):
        return MusicBeats(np.zeros(0), params)
    y = resample(wave, sr, rate)
    if recipe.envelope == "percussive":
        envelope = librosa.onset.onset_strength(y=percussive(y), sr=rate, hop_length=HOP, aggregate=np.median)
    else:
        envelope = librosa.onset.onset_strength(y=y, sr=rate, hop_length=HOP)
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=rate, hop_length=HOP, start_bpm=prior,
                                        tightness=TIGHTNESS)
    times = (np.asarray(frames, dtype=np.float64) - recipe.lag_frames) * HOP / rate
    return MusicBeats(times[times >= 0], params)
