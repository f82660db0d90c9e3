"""Beat Alignment Score (BAS) recipes: the two published ones, exactly, and mibench's own.

A recipe (`Recipe`) is the whole pipeline from a motion signal and music to a score: how the speed
between two frames is labelled in time, smoothing, the peak window, the music beats, which beats are
averaged over, the kernel width and the edge rules. The motion signal is the per-step speed s[k] between
frames k and k + 1 (k = 0 .. T - 2), on the video's constant grid (`motion.MotionSignal.steps`).

- "fact" (AI Choreographer / FACT, liruilong940607/mint tools/calculate_beat_scores.py): v[t] = p[t] -
  p[t - 1] labelled at the LATER frame t, v[0] = 0 (envelope [0, s[0], ..., s[T-2]], T values); no
  smoothing; kinematic beats `argrelextrema(envelope, np.less, order=10)` (strict: a minimum between
  two equal neighbours is no beat); score = mean over MOTION beats of exp(-d^2 / 2 sigma^2), sigma = 3
  frames, d = distance to the nearest music beat; no motion beats -> 0; music beats: `music_beats.FACT_MUSIC`,
  those on frames 0 .. T - 1.
- "bailando" (lisiyao21/Bailando utils/beat_align_score.py): ||p[i + 1] - p[i]|| labelled at the
  EARLIER frame i (envelope s, T - 1 values); `gaussian_filter(sigma=5 frames)`; minima of order 1;
  score = mean over MUSIC beats (only those on frames < T - 1, the envelope's length) of the same kernel
  to the nearest motion beat; music beats: `music_beats.BAILANDO_MUSIC`; no motion beats -> 0 (the
  original raises).
- "mibench" (mibench's own; not comparable with papers): FACT's score and windows, with the speed of
  frame t the mean of the steps on either side (`motion.frame_speeds`: a pose extreme on frame t is a
  minimum at t, not half a frame off) and music beats on the video's grid with librosa's onset lag
  removed (`music_beats.MIBENCH_MUSIC`). On the synthetic on-beat dancer both corrections lift the score
  from the published recipes' lag-limited values towards 1 (README, metrics section).

Frame rate: the published scripts are 60-fps scripts (sigma 3 frames, FACT's order 10, Bailando's
smoothing 5 frames) and analyse the music at 60 fps. Here the windows are kept in seconds and turned into
frames at the video's rate (order = round(order_s * fps), at least 1: FACT's 10 frames at 60 fps is 5 at
30 fps, as the 30-fps ports of FACT do), while the music is always analysed at 60 fps as published; at
60 fps every recipe is the original, frame for frame. FACT sums per-joint speeds and Bailando averages
them: that only scales the envelope and does not move its minima. `params` (recipe, source, fps, sigma,
direction, labelling, smoothing, peak order, music recipe, beat counts) go with every score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from mibench.errors import ConfigError
from mibench.metrics.family import Family, Metric, MetricValue
from mibench.metrics.motion import MotionSignal
from mibench.metrics.music_beats import BAILANDO_MUSIC, FACT_MUSIC, MIBENCH_MUSIC, MusicBeats, MusicRecipe

DIRECTIONS = ("motion", "music")
LABELLINGS = ("later", "earlier", "centred")


@dataclass(frozen=True)
class Recipe:
    """A BAS pipeline (see the module docstring)."""

    name: str
    source: str
    direction: str  # "motion": mean over motion beats; "music": mean over music beats
    labelling: str  # where the speed between frames k and k + 1 is placed: "later", "earlier", "centred"
    sigma_s: float  # gaussian kernel width of the score
    smooth_s: float  # gaussian smoothing of the speed envelope (0 = none)
    order_s: float  # half-width of the argrelextrema window
    music: MusicRecipe

    def peak_order(self, fps: float) -> int:
        return max(1, int(self.order_s * fps + 0.5))

    def params(self, fps: float) -> dict:
        return {"recipe": self.name, "source": self.source, "fps": fps, "sigma_s": self.sigma_s,
                "direction": self.direction, "labelling": self.labelling, "smooth_s": self.smooth_s,
                "peak_order": self.peak_order(fps), "music_recipe": self.music.name}


FACT = Recipe("fact", "AI Choreographer (FACT), mint tools/calculate_beat_scores.py", "motion", "later",
              sigma_s=3 / 60, smooth_s=0.0, order_s=10 / 60, music=FACT_MUSIC)
BAILANDO = Recipe("bailando", "Bailando, utils/beat_align_score.py", "music", "earlier",
                  sigma_s=3 / 60, smooth_s=5 / 60, order_s=1 / 60, music=BAILANDO_MUSIC)
MIBENCH = Recipe("mibench", "mibench: FACT's score with centred speed and onset-lag correction", "motion",
                 "centred", sigma_s=3 / 60, smooth_s=0.0, order_s=10 / 60, music=MIBENCH_MUSIC)
RECIPES = {r.name: r for r in (FACT, BAILANDO, MIBENCH)}
PUBLISHED = ("fact", "bailando")


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"unknown BAS recipe {name!r}", f"use one of {', '.join(RECIPES)}")
    return RECIPES[name]


def envelope(steps: np.ndarray, labelling: str) -> np.ndarray:
    """The speed envelope, one value per labelled frame, from the per-step speeds (module docstring)."""
    steps = np.asarray(steps, dtype=np.float64)
    if labelling == "later":
        return np.concatenate([[0.0], steps])
    if labelling == "earlier":
        return steps
    if labelling == "centred":
        if steps.size == 0:
            return np.zeros(1)
        padded = np.concatenate([steps[:1], steps, steps[-1:]])
        return (padded[:-1] + padded[1:]) / 2.0
    raise ValueError(f"labelling must be one of {LABELLINGS}, got {labelling!r}")


def kinematic_beats(env: np.ndarray, fps: float, *, smooth_s: float, order: int) -> np.ndarray:
    """Frame indices of the strict local minima of the (optionally gaussian-smoothed) envelope."""
    values = np.asarray(env, dtype=np.float64)
    if smooth_s > 0 and values.size:
        values = gaussian_filter1d(values, smooth_s * fps)
    return argrelextrema(values, np.less, order=order)[0]


def alignment_score(motion_beats: np.ndarray, music_beats: np.ndarray, *, sigma_s: float,
                    direction: str) -> float | None:
    """Mean of exp(-d^2 / 2 sigma^2) over the motion beats ("motion") or music beats ("music"), d being
    the distance (s) to the nearest beat of the other kind. None without music beats (undefined);
    0.0 without motion beats (nothing moves on the beat)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    motion = np.asarray(motion_beats, dtype=np.float64)
    music = np.asarray(music_beats, dtype=np.float64)
    if music.size == 0:
        return None
    if motion.size == 0:
        return 0.0
    ours, theirs = (motion, music) if direction == "motion" else (music, motion)
    nearest = np.abs(ours[:, None] - theirs[None, :]).min(axis=1)
    return float(np.exp(-(nearest**2) / (2 * sigma_s**2)).mean())


def beat_alignment(steps: np.ndarray, fps: float, music_times: np.ndarray,
                   chosen: Recipe) -> tuple[float | None, dict]:
    """BAS of per-step speeds (T - 1 values at `fps`) against music beat times (s) by `chosen`; returns
    (score, params with the beat counts). Music beats count while they fall on a frame of the envelope."""
    env = envelope(steps, chosen.labelling)
    music = np.asarray(music_times, dtype=np.float64)
    music = music[music < len(env) / fps]
    frames = kinematic_beats(env, fps, smooth_s=chosen.smooth_s, order=chosen.peak_order(fps))
    score = alignment_score(frames / fps, music, sigma_s=chosen.sigma_s, direction=chosen.direction)
    return score, chosen.params(fps) | {"motion_beats": int(frames.size), "music_beats": int(music.size)}


def scores(motion: MotionSignal, beats: Callable[[MusicRecipe], MusicBeats] | None, music_note: str | None,
           recipes: Sequence[Recipe], prefix: str = "") -> dict[str, MetricValue]:
    """`{prefix}bas_<recipe>` of a motion signal for every recipe, with notes for the degenerate cases."""
    steps = np.zeros_like(motion.steps) if motion.still else motion.steps
    out = {}
    for chosen in recipes:
        name = f"{prefix}bas_{chosen.name}"
        if beats is None:
            out[name] = (None, chosen.params(motion.fps) | {"motion": motion.params}, music_note)
            continue
        found = beats(chosen.music)
        score, params = beat_alignment(steps, motion.fps, found.times, chosen)
        params |= {"music": found.params, "motion": motion.params}
        note = None
        if score is None:
            note = "no music beats: librosa found no beat within the video"
        elif motion.still:
            note = "still video: no motion beats, scored 0"
        elif params["motion_beats"] == 0:
            note = "no motion beats (the motion speed has no local minimum), scored 0"
        out[name] = (score, params, note)
    return out


def _metrics(names: Sequence[str]) -> tuple[Metric, ...]:
    return tuple(Metric(f"bas_{n}", "bas", ("pixels", "music"), "higher",
                        f"Beat Alignment Score, {RECIPES[n].source}, on the pixel motion speed", n) for n in names)


FAMILY = Family("bas", ("pixels", "music"), _metrics,
                lambda inputs: scores(inputs.motion, inputs.beats, inputs.music_note, inputs.recipes))
