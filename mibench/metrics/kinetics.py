"""Kinematics of a 2-D keypoint track: gap filling, body-size normalisation, the body joints, the pose
motion-speed envelope, kinetic features and the kinetic diversity Dist_k of a set of dances.

Keypoints are (T, J, 2) pixel coordinates on the constant grid k / fps (a variable-frame-rate track is
resampled onto it first: `pose.PoseTrack.gridded`), NaN in frames where no person was found. Gaps are
filled by linear interpolation in time (held constant before the first and after the last detection).
Positions are then taken relative to the mid-hip of the first frame and divided by the median torso
length (mid-shoulder to mid-hip), so the numbers do not depend on the video's size or the dancer's distance.
The motion metrics use the body joints only (`BODY_JOINTS`: BlazePose's nose, shoulders, elbows, wrists,
hips, knees, ankles, heels and feet, 17 points, as close as BlazePose comes to the published recipes' 24
SMPL body joints): its 10 other face points and 6 hand points would weigh the head and hands many times.

Pose speed: the mean over joints of each joint's displacement between consecutive frames, times fps
(torso lengths per second); frame t gets the mean of the two changes around it (`motion.frame_speeds`),
as the pixel envelope does, so kinematic beats (its local minima) and BAS work the same on both paths.

Kinetic features follow aistplusplus_api `features/kinetic.py` (used by AI Choreographer, Bailando,
EDGE for Dist_k / Div_k), in 2-D: per joint, the average squared windowed velocity along x ("horizontal")
and along y ("vertical"), and the average norm of the windowed acceleration ("energy expenditure");
window +-`SLIDING_WINDOW` frames, frame time 1 / 60 s: the script is a 60-fps script, so a track at another
rate is first resampled to 60 fps (`at_kinetic_rate`, a cubic spline through the frames; the features of
one motion then do not depend on the video's frame rate); the feature vector is (h, v, e) per joint.
The original computes the previous velocity as `p[t] - p[t-1] / frame_time` (a precedence slip that
every published Dist_k inherits); `aist_acceleration=True` (default) keeps it for comparability,
False uses `(p[t] - p[t-1]) / frame_time`. Dist_k (`dist_k`) is the mean Euclidean distance over all
pairs of a set's feature vectors after z-normalising every dimension with a reference set's mean and
standard deviation (+1e-10), as Bailando's `quantized_metrics` does with the real dances.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from mibench.errors import ConfigError
from mibench.metrics.motion import MotionSignal, frame_speeds

SLIDING_WINDOW = 2
# A still person: the 90th percentile of the per-frame pose change is below 0.01 torso lengths. On a
# still synthetic person mediapipe's jitter has a median of 0.0004 and rare single-frame outliers up
# to 0.019 (hence a percentile, not the peak); the on-beat dancer's median is 0.05.
POSE_STILL_THRESHOLD, POSE_STILL_QUANTILE = 0.01, 0.9
SHOULDERS = (11, 12)  # mediapipe BlazePose landmark indices
HIPS = (23, 24)
BODY_JOINTS = (0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32)  # see the module docstring
KINETIC_FPS = 60.0  # aistplusplus_api's frame time is 1 / 60 s


def fill_gaps(keypoints: np.ndarray) -> np.ndarray | None:
    """`keypoints` (T, J, 2) with NaN frames filled by linear interpolation over time (ends held);
    None when no frame has keypoints."""
    points = np.asarray(keypoints, dtype=np.float64)
    seen = ~np.isnan(points).any(axis=(1, 2))
    if not seen.any():
        return None
    if seen.all():
        return points.copy()
    frames = np.arange(len(points))
    flat = points.reshape(len(points), -1)
    filled = np.stack([np.interp(frames, frames[seen], column[seen]) for column in flat.T], axis=1)
    return filled.reshape(points.shape)


def torso_length(points: np.ndarray) -> float:
    """Median over frames of the mid-shoulder to mid-hip distance (pixels); 0 when degenerate."""
    shoulders = points[:, SHOULDERS].mean(axis=1)
    hips = points[:, HIPS].mean(axis=1)
    return float(np.median(np.linalg.norm(shoulders - hips, axis=1)))


def normalised(keypoints: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(positions relative to the first frame's mid-hip in torso lengths, torso length in pixels), from a
    track with gaps; None when there is no person or the torso has no length."""
    points = fill_gaps(keypoints)
    if points is None:
        return None
    scale = torso_length(points)
    if scale <= 0:
        return None
    return (points - points[0, HIPS].mean(axis=0)) / scale, scale


def body(positions: np.ndarray) -> np.ndarray:
    """The `BODY_JOINTS` of BlazePose positions (T, 33, 2)."""
    return np.asarray(positions)[:, BODY_JOINTS]


def at_kinetic_rate(positions: np.ndarray, fps: float) -> np.ndarray:
    """Positions (T, J, D) at `fps` resampled to `KINETIC_FPS` by a cubic spline through the frames (times
    k / fps), over the same span (frames j / 60 up to the last frame's time); unchanged at 60 fps or with
    fewer than 2 frames."""
    points = np.asarray(positions, dtype=np.float64)
    if fps == KINETIC_FPS or len(points) < 2:
        return points
    times = np.arange(len(points)) / fps
    grid = np.arange(int(np.floor(times[-1] * KINETIC_FPS + 1e-9)) + 1) / KINETIC_FPS
    return CubicSpline(times, points, axis=0)(grid)


def joint_speed(positions: np.ndarray, fps: float) -> np.ndarray:
    """Mean joint displacement between consecutive frames times fps, one value per frame pair (T - 1)."""
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=2)
    return steps.mean(axis=1) * fps


def pose_motion(positions: np.ndarray, fps: float, params: dict) -> MotionSignal:
    """The pose motion-speed envelope of normalised positions (T, J, 2) as a `MotionSignal`."""
    steps = joint_speed(positions, fps)
    params = params | {"signal": "pose", "unit": "torso lengths / s", "fps": fps, "num_frames": len(positions)}
    return MotionSignal(frame_speeds(steps, len(positions)), fps, None, params, still_threshold=POSE_STILL_THRESHOLD,
                        still_quantile=POSE_STILL_QUANTILE, steps=steps)


def _windowed_mean(values: np.ndarray, first: int, last: int) -> np.ndarray:
    """For every frame i = 1 .. len(values) - 1: the mean of values[m] over m in [i - w, i + w] clipped to
    [first, last] (w = `SLIDING_WINDOW`; `values` is indexed by frame)."""
    frames = np.arange(1, len(values))
    low = np.maximum(frames - SLIDING_WINDOW, first)
    high = np.minimum(frames + SLIDING_WINDOW, last)
    cumulative = np.concatenate([np.zeros_like(values[:1]), np.cumsum(values, axis=0)])
    return (cumulative[high + 1] - cumulative[low]) / (high - low + 1)[:, None, None]


def kinetic_features(positions: np.ndarray, fps: float, *, aist_acceleration: bool = True) -> np.ndarray | None:
    """The (3 J,) kinetic feature vector of positions at `fps` (module docstring): (T, J, 2) image
    keypoints (x horizontal, y vertical) or (T, J, 3) joints with y up, as aistplusplus_api's
    `up_vec="y"` (x and z horizontal, e.g. AIST++'s SMPL joints); None for fewer than 3 frames (no
    acceleration is defined). Other shapes are refused."""
    points = np.asarray(positions, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] not in (2, 3):
        raise ConfigError(f"kinetic features take positions (T, J, 2) or (T, J, 3), got {points.shape}",
                          "pass image keypoints (x, y) or 3-D joints with y up")
    frames = len(points)
    if frames < 3:
        return None
    frame_time = 1.0 / fps
    zero = np.zeros_like(points[:1])
    displacement = np.concatenate([zero, np.diff(points, axis=0)])  # [m] = p[m] - p[m-1], m = 1..T-1
    velocity = _windowed_mean(displacement, 1, frames - 1) / frame_time
    horizontal = (velocity[..., [0, 2] if points.shape[2] == 3 else [0]] ** 2).sum(axis=-1).mean(axis=0)
    vertical = (velocity[..., 1] ** 2).mean(axis=0)
    after = (points[2:] - points[1:-1]) / frame_time
    before = points[1:-1] - points[:-2] / frame_time if aist_acceleration else (points[1:-1] - points[:-2]) / frame_time
    acceleration = np.concatenate([zero, (after - before) / frame_time, zero])  # [m], m = 1..T-2
    energy = np.linalg.norm(_windowed_mean(acceleration, 1, frames - 2), axis=2).mean(axis=0)
    return np.stack([horizontal, vertical, energy], axis=1).ravel()


def kinetic_params(source_fps: float, aist_acceleration: bool = True) -> dict:
    """How the pose path's kinetic features were made from a track at `source_fps`."""
    resampled = "none" if source_fps == KINETIC_FPS else f"cubic spline from {source_fps:g} to {KINETIC_FPS:g} fps"
    return {"sliding_window": SLIDING_WINDOW, "frame_time": 1.0 / KINETIC_FPS, "source_fps": source_fps,
            "resampled": resampled, "aist_acceleration": aist_acceleration, "joints": list(BODY_JOINTS),
            "axes": "x horizontal, y vertical (image)", "units": "torso lengths", "up": "y"}


def dist_k(features: np.ndarray, reference: np.ndarray | None = None) -> float | None:
    """Mean pairwise Euclidean distance of feature vectors (N, D) after z-normalising every dimension with
    the mean and std of `reference` (M, D; default: `features` itself); None for fewer than 2 vectors."""
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 2 or len(values) < 2:
        return None
    ref = values if reference is None else np.asarray(reference, dtype=np.float64)
    z = (values - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-10)
    gaps = np.linalg.norm(z[:, None, :] - z[None, :, :], axis=2)
    count = len(z)
    return float(gaps[np.triu_indices(count, k=1)].sum() / (count * (count - 1) / 2))
