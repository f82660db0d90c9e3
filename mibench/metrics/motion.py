"""Motion from pixels: a per-frame motion-speed envelope of a video, without pose or motion capture.

Frames are decoded one at a time with PyAV, without H.264 deblocking (`skip_loop_filter`: a quarter of
the decode time; it moves pixels by a few grey levels near block edges, not the motion); only the luma
(Y) plane is kept and it is downscaled (Gaussian pyramid, then area averaging) to `height` rows (default 120, i.e.
1/4 of a 480x848 video; the width keeps the aspect ratio; smaller videos are not upscaled). Decoding the
luma plane and working at 1/4 scale is what keeps the metrics well above real time (see
`compute.bench_metrics`). Signals (`METHODS`):

- "diff" (default): mean absolute luma change between consecutive frames, in full-scale units per
  second (1.0 = every pixel going from black to white within a second);
- "flow": mean magnitude of OpenCV Farnebäck dense optical flow (pyramid 0.5 x 3 levels, window 15,
  3 iterations, poly 5 / 1.2), in frame heights per second; about 10x slower than "diff".

`steps` holds the speed between consecutive frames (T - 1 values), which each BAS recipe places in time
as its paper does (`bas.py`); `speed`, for tempo, stillness and mean speed, gives frame t the mean of the
changes to its two neighbours (one neighbour at the ends), so a pose extreme that falls on frame t is a
minimum at t rather than a tie between two frame pairs.
A video counts as still when no frame changes by more than `STILL_THRESHOLD` per frame: H.264's
quality ramp over the first frames of a still scene measures up to about 4e-4 (72x72) and a dancer's
peak 1e-2 or more. `consistency` is the mean Pearson correlation of consecutive downscaled luma frames (1 = unchanged up
to brightness and contrast; two flat frames count as 1 when equal, else 0).

Frame times: the envelope is sampled on the constant grid `k / fps` (`compute` passes the header's
average rate), whatever the video's frame timing, so BAS and tempo run unchanged with the published
recipes' windows in frames (peak order, smoothing) at a known rate. Each frame is placed at its container
timestamp (`media.video.FrameTiming`): a constant-rate video is on the grid and its envelope is computed
from the frames as they are (change per frame times fps, as always); a variable-frame-rate one gets each
change divided by its own interval and the per-frame speeds linearly interpolated onto the grid, with a
warning (`MotionSignal.note`; the timing is in `params["frame_times"]`). Resampling, rather than beat
detection on the raw timestamps, keeps one code path for BAS, tempo and the pose track (`pose.py`).
`timestamps=False` takes frame i at i / fps (a caller overriding a header with a wrong rate).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from threading import Thread

import av
import cv2
import numpy as np

from mibench.errors import ConfigError, MediaError
from mibench.media.video import frame_timing, timed_frames

METHODS = ("diff", "flow")
WORK_HEIGHT = 120
STILL_THRESHOLD = 1e-3  # peak per-frame change (0.26 grey levels, or 0.1% of the height) of a still video
_YUV8 = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
_FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
              "flags": 0}


@dataclass(frozen=True)
class MotionSignal:
    """Motion speed (per second) on the grid k / fps, the rate, how it was made and a warning about the
    frames' timing (`note`: a variable frame rate, see the module docstring) or None."""

    speed: np.ndarray
    fps: float
    consistency: float | None
    params: dict
    still_threshold: float = STILL_THRESHOLD  # change per frame, in the signal's unit, of a still video
    still_quantile: float = 1.0  # which quantile of the per-frame changes is compared (1 = the largest)
    note: str | None = None
    steps: np.ndarray | None = None  # the speed between frames k and k + 1 (T - 1 values), for BAS recipes

    @property
    def still(self) -> bool:
        """True when the `still_quantile` quantile of the per-frame changes is below `still_threshold`."""
        return float(np.quantile(self.speed, self.still_quantile)) / self.fps < self.still_threshold

    @property
    def mean_speed(self) -> float:
        return float(self.speed.mean())


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The frame's 8-bit luma plane (H, W), converted to gray first for other pixel formats."""
    if frame.format.name not in _YUV8:
        frame = frame.reformat(format="gray")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8)[: plane.line_size * frame.height]
    return rows.reshape(frame.height, plane.line_size)[:, : frame.width]


def luma_frames(path: str | Path) -> Iterator[tuple[float | None, np.ndarray]]:
    """Each frame's presentation time (`media.video.timed_frames`) and full-size luma plane, uint8 (H, W)."""
    # without deblocking: ~25% of the decode time
    return ((time, _luma(frame)) for time, frame in timed_frames(path, {"skip_loop_filter": "all"}))


def downscaled(luma: np.ndarray, height: int) -> np.ndarray:
    """`luma` shrunk to `height` rows (aspect kept): Gaussian-pyramid halvings (`cv2.pyrDown`, 3x cheaper
    than area averaging at 480 -> 120 rows) while at least `height` rows remain, then area averaging
    for the rest; smaller frames are returned as they are."""
    rows, cols = luma.shape
    if rows <= height:
        return luma
    while luma.shape[0] // 2 >= height:
        luma = cv2.pyrDown(luma)
    if luma.shape[0] == height:
        return luma
    return cv2.resize(luma, (max(1, round(cols * height / rows)), height), interpolation=cv2.INTER_AREA)


def _change(prev: np.ndarray, cur: np.ndarray, method: str) -> float:
    """Motion between two luma frames: mean |dY| (full scale) or mean flow magnitude (frame heights)."""
    if method == "diff":
        return cv2.norm(prev, cur, cv2.NORM_L1) / (prev.size * 255.0)
    flow = cv2.calcOpticalFlowFarneback(prev, cur, None, **_FARNEBACK)
    return float(np.sqrt((flow**2).sum(axis=2)).mean()) / prev.shape[0]


class _Consistency:
    """Running mean Pearson correlation of consecutive frames; each frame is centred once."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.prev: tuple[np.ndarray, np.ndarray, float] | None = None

    def add(self, luma: np.ndarray) -> None:
        centred = luma.astype(np.float32).ravel()
        centred -= centred.mean()
        norm = float(np.sqrt(centred @ centred))
        if self.prev is not None:
            prev_luma, prev_centred, prev_norm = self.prev
            if norm == 0.0 or prev_norm == 0.0:
                self.values.append(1.0 if np.array_equal(prev_luma, luma) else 0.0)
            else:
                self.values.append(float(prev_centred @ centred) / (prev_norm * norm))
        self.prev = (luma, centred, norm)

    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None


def frame_speeds(changes: np.ndarray, num_frames: int) -> np.ndarray:
    """Per-frame speeds from the changes between consecutive frames (len num_frames - 1): frame t gets
    the mean of the changes to its neighbours, the end frames their one change."""
    if num_frames < 2:
        return np.zeros(num_frames)
    padded = np.concatenate([changes[:1], changes, changes[-1:]])
    return (padded[:-1] + padded[1:]) / 2.0


def prefetched(frames: Iterator[np.ndarray], depth: int = 16) -> Iterator[np.ndarray]:
    """`frames`, produced by a second thread while the caller works on earlier ones (decoding and
    resizing release the GIL); an error in the producer is raised in the caller."""
    queue: Queue = Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in frames:
                queue.put(item)
            queue.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            queue.put(exc)

    worker = Thread(target=produce, daemon=True)
    worker.start()
    while (item := queue.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    worker.join()


def motion_signal(path: str | Path, fps: float, *, method: str = "diff", height: int = WORK_HEIGHT,
                  timestamps: bool = True) -> MotionSignal:
    """The motion-speed envelope of a video on the grid k / `fps` (see the module docstring); frames are
    placed by their container timestamps, or at index / fps when `timestamps` is False."""
    if method not in METHODS:
        raise ConfigError(f"unknown motion signal {method!r}", f"use one of {', '.join(METHODS)}")
    changes, consistency, prev, times, shape = [], _Consistency(), None, [], None
    for time, full in prefetched(luma_frames(path)):  # decoding overlaps the work on earlier frames
        luma = downscaled(full, height)
        if prev is not None:
            changes.append(_change(prev, luma, method))
        consistency.add(luma)
        prev, shape = luma, luma.shape
        times.append(time)
    count = len(times)
    if count == 0:
        raise MediaError(f"{path} has no decodable frames", "re-encode or replace the file")
    timing = frame_timing(fps, times if timestamps else None)
    if timing.on_grid:
        steps = np.asarray(changes, dtype=np.float64) * fps
        speed = frame_speeds(steps, count)
    else:  # each change over its own interval, then onto the grid (steps at the grid's half frames)
        rates = np.asarray(changes, dtype=np.float64) / np.diff(timing.times)
        speed = timing.resample(frame_speeds(rates, count))
        # the steps: the cumulative change, linear between frames (constant speed within each interval),
        # read at the grid's frames
        cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(changes, dtype=np.float64))])
        steps = np.diff(np.interp(np.arange(len(speed)) / fps, timing.times, cumulative)) * fps
    unit = "luma full scale / s" if method == "diff" else "frame heights / s"
    params = {"signal": method, "work_size": list(shape), "unit": unit, "fps": fps, "num_frames": count,
              "frame_times": timing.describe()}
    return MotionSignal(speed, fps, consistency.mean(), params, note=timing.warning(), steps=steps)
