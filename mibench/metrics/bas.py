"""Beat Alignment Score (BAS) in its two published forms, with every parameter stated in seconds.

(A) `FACT` (AI Choreographer; liruilong940607/mint tools/calculate_beat_scores.py): kinematic beats are
    the local minima of the unsmoothed motion-speed envelope (`argrelextrema(np.less, order=10)` at
    60 fps); score = mean over MOTION beats of exp(-d^2 / 2 sigma^2), d = distance to the nearest music
    beat; no motion beats -> 0. Music beats: the "onset" recipe with the tempo as prior.
(B) `BAILANDO` (lisiyao21/Bailando utils/beat_align_score.py): the envelope is smoothed by a gaussian of
    5 frames at 60 fps, minima of order 1; score = mean over MUSIC beats of the same kernel to the nearest
    motion beat. Music beats: the "percussive" recipe. No motion beats -> 0 (the original raises).

Both originals run at 60 fps with sigma = 3 frames (50 ms). Here sigma, smoothing and the peak window
are kept in seconds and turned into frames at the video's rate (peak order = round(order_s * fps), at
least 1: FACT's 10 frames at 60 fps is 5 at 30 fps). FACT sums per-joint speeds and Bailando averages
them; that only scales the envelope and does not move its minima, so both use the one dense-motion
envelope of `motion.py`. Music beats at or after the end of the video are dropped (Bailando truncates
them to the motion's length). Scores are comparable only under equal parameters, so `params` (variant,
fps, sigma, direction, smoothing, peak order, music recipe, beat counts) go with every score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

DIRECTIONS = ("motion", "music")


@dataclass(frozen=True)
class Variant:
    """A BAS definition: which beats are averaged over, the kernel width, smoothing and peak window."""

    name: str
    direction: str  # "motion": mean over motion beats; "music": mean over music beats
    sigma_s: float  # gaussian kernel width of the score
    smooth_s: float  # gaussian smoothing of the speed envelope (0 = none)
    order_s: float  # half-width of the argrelextrema window
    music_recipe: str  # see music_beats.RECIPES

    def peak_order(self, fps: float) -> int:
        return max(1, int(self.order_s * fps + 0.5))

    def params(self, fps: float) -> dict:
        return {"variant": self.name, "fps": fps, "sigma_s": self.sigma_s, "direction": self.direction,
                "smooth_s": self.smooth_s, "peak_order": self.peak_order(fps), "music_recipe": self.music_recipe}


FACT = Variant("fact", "motion", sigma_s=3 / 60, smooth_s=0.0, order_s=10 / 60, music_recipe="onset")
BAILANDO = Variant("bailando", "music", sigma_s=3 / 60, smooth_s=5 / 60, order_s=1 / 60, music_recipe="percussive")
VARIANTS = {v.name: v for v in (FACT, BAILANDO)}


def kinematic_beats(speed: np.ndarray, fps: float, *, smooth_s: float, order: int) -> np.ndarray:
    """Frame indices of the local minima of the (optionally gaussian-smoothed) speed envelope."""
    envelope = np.asarray(speed, dtype=np.float64)
    if smooth_s > 0 and envelope.size:
        envelope = gaussian_filter1d(envelope, smooth_s * fps)
    return argrelextrema(envelope, np.less, order=order)[0]


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


def beat_alignment(speed: np.ndarray, fps: float, music_times: np.ndarray,
                   variant: Variant) -> tuple[float | None, dict]:
    """BAS of a speed envelope (one value per frame at `fps`) against music beat times (s) within the
    video; returns (score, params with the beat counts)."""
    duration = len(speed) / fps
    music = np.asarray(music_times, dtype=np.float64)
    music = music[music < duration]
    frames = kinematic_beats(speed, fps, smooth_s=variant.smooth_s, order=variant.peak_order(fps))
    score = alignment_score(frames / fps, music, sigma_s=variant.sigma_s, direction=variant.direction)
    return score, variant.params(fps) | {"motion_beats": int(frames.size), "music_beats": int(music.size)}
