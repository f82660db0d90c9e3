"""Tempo for the speed-control experiment: motion tempo, music tempo and their ratio.

- Motion tempo: the period of the motion-speed envelope, i.e. the lag of the highest peak of its
  (biased, mean-removed) autocorrelation between `min_bpm` and `max_bpm` (and at most half the clip),
  refined to a fraction of a frame by a parabola through the peak of the unbiased autocorrelation
  (the biased one, used to pick the peak, leans towards short lags). Missed or extra kinematic beats do
  not move it, unlike inter-beat intervals. The peak's height (1 = perfectly periodic) is reported as
  `periodicity`.
- Music tempo: 60 / slope of the least-squares line through the beat times against their index.
- Ratio: motion tempo / music tempo. A dancer who follows the music has a ratio near 1 at every
  playback speed (or a steady 0.5 / 2 when it dances at half or double time); one that ignores a 1.25x
  speed-up drops to 0.8.
"""

from __future__ import annotations

import math

import numpy as np

from mibench.metrics.family import Family, Inputs, Metric, MetricValue
from mibench.metrics.music_beats import MIBENCH_MUSIC

MIN_BPM = 40.0
MAX_BPM = 240.0


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    """Biased autocorrelation of a mean-removed signal, normalised to 1 at lag 0 (via FFT)."""
    size = 1 << (2 * len(x) - 1).bit_length()
    spectrum = np.fft.rfft(x, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(x)]
    return acf / acf[0]


def periodicity_bpm(envelope: np.ndarray, rate: float, *, min_bpm: float = MIN_BPM,
                    max_bpm: float = MAX_BPM) -> tuple[float | None, float | None]:
    """(tempo in BPM, autocorrelation peak height) of an envelope sampled at `rate` Hz; (None, None)
    when the envelope is flat or no autocorrelation peak lies in the tempo range."""
    x = np.asarray(envelope, dtype=np.float64)
    if x.size < 4 or np.ptp(x) == 0:
        return None, None
    acf = _autocorrelation(x - x.mean())
    low = max(1, math.ceil(60.0 * rate / max_bpm))
    high = min(math.floor(60.0 * rate / min_bpm), len(x) // 2)
    lags = [k for k in range(low, high + 1)
            if k + 1 < len(acf) and acf[k] > 0 and acf[k] > acf[k - 1] and acf[k] >= acf[k + 1]]
    if not lags:
        return None, None
    k = max(lags, key=lambda lag: acf[lag])
    a, b, c = acf[k - 1 : k + 2] * len(x) / (len(x) - np.arange(k - 1, k + 2))
    curvature = a - 2 * b + c
    shift = float(np.clip(0.5 * (a - c) / curvature, -0.5, 0.5)) if curvature < 0 else 0.0
    return float(60.0 * rate / (k + shift)), float(acf[k])


def beats_bpm(times: np.ndarray) -> float | None:
    """Tempo (BPM) of a beat sequence from the slope of beat time against beat index; None for < 2."""
    times = np.asarray(times, dtype=np.float64)
    if times.size < 2:
        return None
    slope = np.polyfit(np.arange(times.size), times, 1)[0]
    return float(60.0 / slope) if slope > 0 else None


def tempo_ratio(motion_bpm: float | None, music_bpm: float | None) -> float | None:
    """motion_bpm / music_bpm; None when either is unknown."""
    if motion_bpm is None or not music_bpm:
        return None
    return motion_bpm / music_bpm


def tempo_metrics(inputs: Inputs) -> dict[str, MetricValue]:
    """Motion and music tempo, their ratio, mean motion speed and frame consistency of one video."""
    motion, beats, music_note, bpm = inputs.motion, inputs.beats, inputs.music_note, inputs.bpm
    duration = len(motion.speed) / motion.fps
    if motion.still:
        motion_bpm, peak, motion_note = None, None, "still video: no motion tempo"
    else:
        motion_bpm, peak = periodicity_bpm(motion.speed, motion.fps)
        motion_note = None if motion_bpm else f"no periodic motion between {MIN_BPM:g} and {MAX_BPM:g} BPM"
    music_bpm, music_params, music_bpm_note = None, {}, music_note
    if beats is not None:
        found = beats(MIBENCH_MUSIC)
        music_bpm = beats_bpm(found.times[found.times < duration])
        music_params = found.params
        music_bpm_note = None if music_bpm else "fewer than 2 music beats within the video"
    reference = float(bpm) if bpm else music_bpm
    ratio = tempo_ratio(motion_bpm, reference)
    ratio_note = motion_note or (None if reference else music_bpm_note)
    motion_params = motion.params | {"min_bpm": MIN_BPM, "max_bpm": MAX_BPM, "periodicity": peak}
    return {
        "motion_bpm": (motion_bpm, motion_params, motion_note),
        "music_bpm": (music_bpm, {"music": music_params, "given_bpm": bpm}, music_bpm_note),
        "tempo_ratio": (ratio, {"motion_bpm": motion_bpm, "music_bpm": reference,
                                "music_bpm_source": "given" if bpm else "beats"}, ratio_note),
        "motion_speed": (motion.mean_speed, motion.params, "still video" if motion.still else None),
        "frame_consistency": (motion.consistency, motion.params,
                              None if motion.consistency is not None else "single frame: no consecutive pair"),
    }


_TEMPO = (
    Metric("motion_bpm", "tempo", ("pixels",), None, "tempo of the motion (periodicity of the speed envelope)"),
    Metric("music_bpm", "tempo", ("music",), None, "tempo of the music's beats within the video"),
    Metric("tempo_ratio", "tempo", ("pixels", "music"), None,
           "motion tempo / music tempo (1 = dancing at the music's tempo; 2 or 0.5 = double or half time)"),
    Metric("motion_speed", "tempo", ("pixels",), None, "mean motion speed of the pixels"),
    Metric("frame_consistency", "tempo", ("pixels",), "higher", "mean correlation of consecutive frames"),
)
FAMILY = Family("tempo", ("pixels",), lambda names: _TEMPO, tempo_metrics)
