"""2-D pose tracks of videos with mediapipe's BlazePose (the pose path of the metrics).

The estimator is mediapipe 0.10.21's legacy `solutions.pose.Pose` with `model_complexity=1`: its
detector and landmark models (`pose_detection.tflite`, `pose_landmark_full.tflite`) ship inside the
wheel, so nothing is downloaded at run time (complexities 0 and 2 download theirs, and mediapipe
>= 0.10.30 ships no pose model at all). 0.10.21 declares `numpy<2` but runs on numpy 2 (checked
by the tests), so it is installed without its dependency pins: `pip install -e ".[pose]"` (its
runtime dependencies) then `pip install --no-deps mediapipe==0.10.21`.

Frames are fed in order in tracking mode (the detector runs when the track is lost) with landmark
smoothing off: mediapipe's smoothing filter delays pose extremes (on the synthetic person at 90 and 128
BPM, 8 s, kinematic beats came 0.18 and 0.28 frames late on average with it, 0.08 and 0.03 without).
A frame without a person gets NaN keypoints; `kinetics.fill_gaps` bridges them. All 33 landmarks are
kept in pixels (x right, y down), one row per decoded frame, with the frames' container timestamps
(`FrameTiming`): `PoseTrack.gridded` is the track on the constant grid k / fps that the kinematics use,
the rows themselves for a constant-rate video, else resampled by linear interpolation over the
timestamps (frames without a person skipped), as the pixel envelope is (`motion.py`).

BlazePose follows one person: in a group video the pose metrics describe the dancer it tracks (the pixel
metrics see everyone). mediapipe's C++ start-up lines (TFLite delegate, absl warnings), printed from its
start until the first person is found, are kept off stderr (which is muted until then).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mibench.errors import ConfigError, MediaError
from mibench.media.audio import existing_file
from mibench.media.video import FrameTiming, frame_timing, timed_frames
from mibench.metrics.motion import prefetched
from mibench.quiet import native_stderr_muted

LANDMARKS = 33
MODEL_COMPLEXITY = 1  # the only one whose weights are in the wheel
MIN_DETECTION = 0.5
MIN_TRACKING = 0.5
INSTALL_HINT = 'pip install -e ".[pose]" && pip install --no-deps mediapipe==0.10.21'


def require_estimator():
    """mediapipe's `solutions.pose` module; ConfigError (saying how to install it) when it cannot run."""
    try:
        from mediapipe.python.solutions import pose
    except ImportError as exc:
        raise ConfigError(f"the pose path needs mediapipe 0.10.21 ({exc})", INSTALL_HINT) from exc
    model = Path(pose.__file__).parents[2] / "modules" / "pose_landmark" / "pose_landmark_full.tflite"
    if not model.is_file():
        raise ConfigError("this mediapipe ships no pose_landmark_full.tflite (versions after 0.10.21 drop it)",
                          INSTALL_HINT)
    return pose


def estimator_status() -> str:
    """One line for `mibench doctor`: the pose estimator in use, or why the pose path is unavailable."""
    try:
        require_estimator()
    except ConfigError as exc:
        return f"unavailable: {exc.line()}"
    from mediapipe import __version__

    return f"mediapipe {__version__} BlazePose (model_complexity {MODEL_COMPLEXITY}, weights in the wheel)"


@dataclass(frozen=True)
class PoseTrack:
    """Per-frame 2-D keypoints (T, 33, 2) in pixels, NaN where no person was found, and the frames' timing."""

    keypoints: np.ndarray
    fps: float
    params: dict
    timing: FrameTiming

    @property
    def detected(self) -> float:
        """Fraction of frames with a person."""
        found = ~np.isnan(self.keypoints).any(axis=(1, 2))
        return float(found.mean()) if found.size else 0.0

    @property
    def gridded(self) -> np.ndarray:
        """The keypoints on the grid k / fps (`FrameTiming.resample`; gaps bridged over time when resampled)."""
        return self.timing.resample(self.keypoints)


def pose_track(path: str | Path, fps: float, *, timestamps: bool = True) -> PoseTrack:
    """The 2-D pose track of a video (see the module docstring) with its frames' timing against the grid
    k / `fps`: by their container timestamps, or at index / fps when `timestamps` is False."""
    pose = require_estimator()
    path = existing_file(path)
    rows, times, size = [], [], None
    with ExitStack() as quiet:
        # the graph's threads load the models (and log) after construction returns, until the first frame's
        # result; the landmark model logs again when it first sees a person: quiet until then
        quiet.enter_context(native_stderr_muted())
        with pose.Pose(static_image_mode=False, model_complexity=MODEL_COMPLEXITY, smooth_landmarks=False,
                       min_detection_confidence=MIN_DETECTION, min_tracking_confidence=MIN_TRACKING) as estimator:
            for time, rgb in prefetched((t, frame.to_ndarray(format="rgb24")) for t, frame in timed_frames(path)):
                size = rgb.shape[:2]
                times.append(time)
                found = estimator.process(rgb).pose_landmarks
                if found is None:
                    rows.append(np.full((LANDMARKS, 2), np.nan))
                else:
                    quiet.close()
                    rows.append([(mark.x * size[1], mark.y * size[0]) for mark in found.landmark])
    if not rows:
        raise MediaError(f"{path} has no decodable frames", "re-encode or replace the file")
    params = {"estimator": "mediapipe BlazePose", "model_complexity": MODEL_COMPLEXITY, "smooth_landmarks": False,
              "min_detection_confidence": MIN_DETECTION, "min_tracking_confidence": MIN_TRACKING,
              "frame_size": list(size), "fps": fps, "num_frames": len(rows)}
    timing = frame_timing(fps, times if timestamps else None)
    return PoseTrack(np.asarray(rows, dtype=np.float64), fps, params | {"frame_times": timing.describe()}, timing)
