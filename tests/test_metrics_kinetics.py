"""The keypoint kinematics of the pose path against hand-computed values."""

import numpy as np
import pytest

from mibench.errors import ConfigError
from mibench.metrics.kinetics import (
    BODY_JOINTS,
    KINETIC_FPS,
    at_kinetic_rate,
    body,
    dist_k,
    fill_gaps,
    joint_speed,
    kinetic_features,
    normalised,
    pose_motion,
    torso_length,
)


def _loop_features(points: np.ndarray, fps: float, aist_acceleration: bool) -> np.ndarray:
    """aistplusplus_api's per-frame loops, transcribed to 2-D (x horizontal, y vertical)."""
    frame_time, frames = 1.0 / fps, len(points)
    out = []
    for joint in range(points.shape[1]):
        horizontal = vertical = energy = 0.0
        for i in range(1, frames):
            total, count = np.zeros(2), 0
            for j in range(-2, 3):
                if i + j - 1 >= 0 and i + j < frames:
                    total += points[i + j, joint] - points[i + j - 1, joint]
                    count += 1
            velocity = total / (count * frame_time)
            horizontal += velocity[0] ** 2
            vertical += velocity[1] ** 2
            total, count = np.zeros(2), 0
            for j in range(-2, 3):
                if i + j - 1 >= 0 and i + j + 1 < frames:
                    after = (points[i + j + 1, joint] - points[i + j, joint]) / frame_time
                    before = (points[i + j, joint] - points[i + j - 1, joint] / frame_time if aist_acceleration
                              else (points[i + j, joint] - points[i + j - 1, joint]) / frame_time)
                    total += (after - before) / frame_time
                    count += 1
            energy += np.linalg.norm(total / count)
        out += [horizontal / (frames - 1), vertical / (frames - 1), energy / (frames - 1)]
    return np.array(out)


def test_fill_gaps_interpolates_and_holds_the_ends():
    track = np.full((5, 1, 2), np.nan)
    track[1], track[3] = 1.0, 3.0
    np.testing.assert_array_equal(fill_gaps(track)[:, 0, 0], [1, 1, 2, 3, 3])
    assert fill_gaps(np.full((4, 2, 2), np.nan)) is None


def _body(frames: int = 3) -> np.ndarray:
    """33 landmarks at (5, 5) except shoulders (0,0), (2,0) and hips (0,2), (2,2): torso length 2."""
    points = np.full((frames, 33, 2), 5.0)
    points[:, 11], points[:, 12], points[:, 23], points[:, 24] = (0, 0), (2, 0), (0, 2), (2, 2)
    return points


def test_normalised_is_relative_to_the_first_mid_hip_in_torso_lengths():
    points = _body()
    points[2] += 4.0  # the whole body moves: the torso length stays 2
    assert torso_length(points) == 2.0
    positions, torso = normalised(points)
    assert torso == 2.0
    np.testing.assert_allclose(positions[0, 23], [-0.5, 0.0])
    np.testing.assert_allclose(positions[2, 23], [1.5, 2.0])
    assert normalised(np.full((3, 33, 2), np.nan)) is None


def test_joint_speed_and_pose_envelope():
    points = np.zeros((4, 2, 2))
    points[:, 0, 0] = [0, 3, 6, 9]  # one joint moves 3 units a frame, the other stands still
    np.testing.assert_allclose(joint_speed(points, 30.0), [45.0, 45.0, 45.0])
    signal = pose_motion(points, 30.0, {})
    np.testing.assert_allclose(signal.speed, [45.0] * 4)
    assert signal.params["signal"] == "pose" and not signal.still
    assert pose_motion(np.zeros((4, 2, 2)), 30.0, {}).still


def test_kinetic_features_hand_computed():
    # one joint at p(t) = (t, 0), 2 fps: windowed velocity 2 -> horizontal 4, vertical 0. The corrected
    # acceleration is 0; the AIST one is (after - before) / ft with before = p[m] - p[m-1] / ft = 2 - m,
    # i.e. 2m at m = 1, 2, whose windowed mean is 3 at every frame.
    points = np.zeros((4, 1, 2))
    points[:, 0, 0] = np.arange(4)
    np.testing.assert_allclose(kinetic_features(points, 2.0, aist_acceleration=False), [4.0, 0.0, 0.0])
    np.testing.assert_allclose(kinetic_features(points, 2.0), [4.0, 0.0, 3.0])
    assert kinetic_features(points[:2], 2.0) is None


@pytest.mark.parametrize("frames", [3, 4, 6, 41])
@pytest.mark.parametrize("aist", [True, False])
def test_kinetic_features_match_the_reference_loops(frames, aist):
    points = np.random.default_rng(frames).normal(size=(frames, 5, 2))
    np.testing.assert_allclose(kinetic_features(points, 30.0, aist_acceleration=aist),
                               _loop_features(points, 30.0, aist), rtol=1e-10)


def test_dist_k_hand_computed():
    features = np.array([[0.0], [1.0], [3.0]])
    # z-scores (x - 4/3) / sqrt(14/9); pairwise |dz| = (1 + 3 + 2) / sqrt(14/9) over 3 pairs
    assert dist_k(features) == pytest.approx(2.0 / np.sqrt(14.0 / 9.0))
    reference = np.array([[0.0], [2.0]])  # mean 1, std 1
    assert dist_k(features, reference=reference) == pytest.approx(2.0)
    assert dist_k(features[:1]) is None


def test_kinetic_features_of_3d_joints_take_x_and_z_as_horizontal():
    """aistplusplus_api's up_vec="y": x and z are horizontal, y vertical (AIST++'s SMPL joints)."""
    frames, fps, step = 12, 60.0, 0.02
    track = np.zeros((frames, 2, 3))
    track[:, 0, 2] = step * np.arange(frames)  # joint 0 walks along z
    track[:, 1, 1] = step * np.arange(frames)  # joint 1 rises along y
    features = kinetic_features(track, fps, aist_acceleration=False).reshape(2, 3)
    speed_sq = (step * fps) ** 2  # a constant velocity: every windowed mean is step * fps
    np.testing.assert_allclose(features[0], [speed_sq, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(features[1], [0.0, speed_sq, 0.0], atol=1e-9)
    flat = kinetic_features(track[..., [2, 1]], fps, aist_acceleration=False).reshape(2, 3)  # (x=z, y) in 2-D
    np.testing.assert_allclose(flat, features, atol=1e-9)
    with pytest.raises(ConfigError, match=r"\(T, J, 2\) or \(T, J, 3\), got \(12, 2, 4\)"):
        kinetic_features(np.zeros((frames, 2, 4)), fps)


def _dance(fps: float, seconds: float = 4.0, joints: int = 5) -> np.ndarray:
    """A smooth 2-D motion (each joint a sum of 1-3 Hz sines) sampled at `fps`: (T, joints, 2)."""
    t = np.arange(int(round(seconds * fps))) / fps
    rng = np.random.default_rng(0)
    shape = (3, joints, 2)
    freq, phase, amp = rng.uniform(1, 3, shape), rng.uniform(0, 6.3, shape), rng.uniform(0.1, 0.5, shape)
    return (amp[None] * np.sin(2 * np.pi * freq[None] * t[:, None, None, None] + phase[None])).sum(axis=1)


def test_kinetic_features_of_one_motion_do_not_depend_on_the_frame_rate():
    reference = kinetic_features(_dance(60.0), KINETIC_FPS)
    for fps in (30.0, 24.0, 10.0):
        resampled = kinetic_features(at_kinetic_rate(_dance(fps), fps), KINETIC_FPS)
        np.testing.assert_allclose(resampled, reference, rtol=0.15)
        raw = kinetic_features(_dance(fps), fps)  # the script run at the video's own rate: far off
        assert np.abs(raw / reference - 1).max() > 0.3


def test_resampling_to_60_fps_keeps_the_span_and_the_frames():
    track = _dance(30.0, seconds=2.0)
    at60 = at_kinetic_rate(track, 30.0)
    assert len(at60) == 2 * (len(track) - 1) + 1  # frames j / 60 up to the last frame's time
    np.testing.assert_allclose(at60[::2], track, atol=1e-12)  # through every original frame
    assert np.array_equal(at_kinetic_rate(track, 60.0), track)  # already at 60 fps: unchanged


def test_body_joints_leave_out_the_face_and_hand_points():
    landmarks = np.arange(33 * 2, dtype=float).reshape(1, 33, 2)
    kept = body(landmarks)[0, :, 0] / 2
    assert kept.tolist() == list(BODY_JOINTS) and len(BODY_JOINTS) == 17
    assert not set(range(1, 11)) & set(BODY_JOINTS) and not set(range(17, 23)) & set(BODY_JOINTS)
