"""Cutting training clips out of a video: where they start, which frames they show, their pixels and music.

As the official `music_infuser/trim_and_crop_videos.py` + `encode_videos.py` (MusicInfuser @41954c9),
without the intermediate mp4 files:

- A clip spans `clip_seconds(frames, fps)` = `frames / fps + 0.09` s formatted `%.1f` (2.5 s for 73
  frames at 30 fps: the official `printf "%.1f"`); its video is the first `frames` frames of that span
  at `fps`, its music the whole span.
- A video of duration D (frame count / header rate) gets `ceil(D / 60 * crops_per_minute)` clips, whose
  starts are uniform in `[m D, D - m D - span]` (m = `edge_margin`), drawn from
  `random.Random(f"clips:{seed}:{key}")` (key: the file name) and sorted; a video with no room
  (`D (1 - 2m) <= span`) has none.
- Clip frame k shows the source frame on screen at `start + k / fps` (the last frame whose presentation
  time, from the container's timestamps, is at or before it; `index / rate` for frames without one), so
  any source rate, variable rates included, lands on the clip's constant grid.
- Pixels: AIST videos are cropped to 1272x720 at x centred, y centred + 90 (for AIST's 1920x1080; other
  sizes get the same box scaled by width / 1920 and height / 1080), in-the-wild videos centre-cropped to
  the clip's aspect ratio (`int()` of the scaled side, as officially); then resized to the clip size with
  OpenCV, area interpolation when shrinking and bilinear otherwise (moviepy's choice with OpenCV).
- Music: the first channel at 16 kHz (`media.audio.load_audio`), `round(span * 16000)` samples from
  the clip's start, zero-padded past the end of the track.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from mibench.media.audio import crop_or_pad
from mibench.media.video import timed_frames

AIST_SOURCE = (1920, 1080)
AIST_CROP = (1272, 720)
AIST_Y_SHIFT = 90
MUSIC_RATE = 16_000
_AT_OR_BEFORE = 1e-6  # s: a frame shown at t counts as on screen at t despite float rounding


def clip_seconds(frames: int, fps: float) -> float:
    """The official clip span: `frames / fps + 0.09` s rounded to 0.1 s."""
    return float(f"{frames / fps + 0.09:.1f}")


def clip_starts(duration: float, span: float, *, crops_per_minute: float, edge_margin: float, seed: int,
                key: str) -> list[float]:
    """Sorted random clip starts (s) of a video; empty when the video has no room for one."""
    first, last = edge_margin * duration, duration - edge_margin * duration - span
    if last <= first:
        return []
    count = math.ceil(duration / 60.0 * crops_per_minute)
    rng = random.Random(f"clips:{seed}:{key}")
    return sorted(rng.uniform(first, last) for _ in range(count))


class Box(NamedTuple):
    """A crop rectangle in source pixels."""

    x: int
    y: int
    width: int
    height: int


def crop_box(aist: bool, width: int, height: int, out_width: int, out_height: int) -> Box:
    """The crop of a `width` x `height` source (see the module docstring)."""
    if aist:
        crop_w = round(AIST_CROP[0] * width / AIST_SOURCE[0])
        crop_h = round(AIST_CROP[1] * height / AIST_SOURCE[1])
        y = (height - crop_h) // 2 + round(AIST_Y_SHIFT * height / AIST_SOURCE[1])
        return Box((width - crop_w) // 2, min(y, height - crop_h), crop_w, crop_h)
    ratio = out_width / out_height
    if width / height > ratio:
        crop_w = int(height * ratio)
        return Box((width - crop_w) // 2, 0, crop_w, height)
    crop_h = int(width / ratio)
    return Box(0, (height - crop_h) // 2, width, crop_h)


def crop_and_resize(rgb: np.ndarray, box: Box, out_width: int, out_height: int) -> np.ndarray:
    """uint8 (out_height, out_width, 3) of an RGB frame's crop."""
    crop = rgb[box.y:box.y + box.height, box.x:box.x + box.width]
    shrink = out_width <= box.width and out_height <= box.height
    return cv2.resize(crop, (out_width, out_height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def cut_clips(path: Path, starts: list[float], *, frames: int, fps: float, source_fps: float, box: Box,
              out_width: int, out_height: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index into `starts`, uint8 frames (frames, H, W, 3)) of each clip, in one decoding pass, each as
    soon as its last frame is decoded (so only the clips in progress are held in memory)."""
    wanted = sorted((start + k / fps, i, k) for i, start in enumerate(starts) for k in range(frames))
    clips: dict[int, np.ndarray] = {}  # the clips in progress
    held = shown = None  # the previous decoded frame (on screen until this one) and its converted pixels
    j = 0

    def place(upto: float) -> Iterator[tuple[int, np.ndarray]]:
        nonlocal j, shown
        while j < len(wanted) and wanted[j][0] < upto:
            _, i, k = wanted[j]
            if shown is None:
                shown = crop_and_resize(held.to_ndarray(format="rgb24"), box, out_width, out_height)
            if i not in clips:
                clips[i] = np.empty((frames, out_height, out_width, 3), np.uint8)
            clips[i][k] = shown
            j += 1
            if k == frames - 1:  # a clip's frames come in time order: its last one completes it
                yield i, clips.pop(i)

    for index, (time, frame) in enumerate(timed_frames(path)):
        time = index / source_fps if time is None else time
        if held is not None:
            yield from place(time - _AT_OR_BEFORE)
        if j == len(wanted):
            return
        held, shown = frame, None
    if held is not None:
        yield from place(math.inf)  # the last frame stays on screen to the end


def clip_music(wave_16k: np.ndarray, start: float, span: float) -> np.ndarray:
    """The clip's music: `round(span * 16000)` samples of a 16 kHz wave from `start` s, zero-padded."""
    return crop_or_pad(wave_16k, MUSIC_RATE, span, offset=start)[0]
