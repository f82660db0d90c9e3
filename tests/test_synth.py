"""mibench.media.synth: the drum track has the asked tempo; the dancer's speed minima fall where promised."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from mibench.errors import ConfigError
from mibench.media import synth


def frame_speed(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of consecutive frames; entry i belongs to time (i + 0.5) / fps."""
    return np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))


def assert_minima_at(speed: np.ndarray, fps: float, expected: np.ndarray) -> None:
    """Around each expected time, the slowest frame pair lies within one frame of it."""
    times = (np.arange(speed.size) + 0.5) / fps
    half_window = 0.3 * np.diff(expected).min()
    checked = 0
    for t in expected:
        near = np.abs(times - t) <= half_window
        if t - half_window < times[0] or t + half_window > times[-1]:
            continue
        assert abs(times[near][np.argmin(speed[near])] - t) <= 1.0 / fps, f"no speed minimum at {t:.3f} s"
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("bpm", [90.0, 120.0])
def test_drum_track_tempo_is_recovered(bpm):
    sr = 16000
    wave = synth.drum_track(bpm, 20.0, sr=sr)
    # hop 128: at hop 512 and 16 kHz librosa's tempo grid around 120 BPM is 117.2 / 125.0
    tempo, _ = librosa.beat.beat_track(y=wave, sr=sr, hop_length=128)
    assert abs(float(np.atleast_1d(tempo)[0]) - bpm) <= 2.0


def test_drum_track_format_and_determinism():
    wave = synth.drum_track(100.0, 3.3, sr=22050, seed=4)
    assert wave.dtype == np.float32 and wave.shape == (round(3.3 * 22050),)
    assert np.abs(wave).max() == pytest.approx(0.9, abs=1e-6)
    assert np.array_equal(wave, synth.drum_track(100.0, 3.3, sr=22050, seed=4))
    assert not np.array_equal(wave, synth.drum_track(100.0, 3.3, sr=22050, seed=5))


def test_beat_times():
    np.testing.assert_allclose(synth.beat_times(120, 2.0), [0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(synth.beat_times(90, 2.1), [0.0, 2 / 3, 4 / 3, 2.0])


def test_on_beat_dancer_speed_minima_on_the_beats():
    frames = synth.dancer_video(120, 4.0, fps=30)
    assert frames.dtype == np.uint8 and frames.shape == (120, 128, 128, 3)
    beats = synth.beat_times(120, 4.0)
    np.testing.assert_allclose(synth.motion_beat_times(120, 4.0), beats)
    speed = frame_speed(frames)
    assert_minima_at(speed, 30, beats)
    assert speed.max() > 5 * speed.min()  # it really moves between beats


def test_phase_shifted_dancer():
    truth = synth.motion_beat_times(100, 4.0, "on_beat", phase_beats=0.5)
    np.testing.assert_allclose(truth, (np.arange(7) + 0.5) * 0.6)
    frames = synth.dancer_video(100, 4.0, fps=30, size=(96, 160), phase_beats=0.5)
    assert frames.shape == (120, 96, 160, 3)
    assert_minima_at(frame_speed(frames), 30, truth)


def test_off_beat_dancer_ignores_the_beat():
    frames = synth.dancer_video(120, 5.0, fps=30, mode="off_beat", seed=3)
    truth = synth.motion_beat_times(120, 5.0, "off_beat", seed=3)
    assert_minima_at(frame_speed(frames), 30, truth)
    beats = synth.beat_times(120, 5.0)
    near_a_beat = np.abs(truth[:, None] - beats[None, :]).min(axis=1) < 2 / 30
    assert near_a_beat.mean() < 0.5


def test_dancer_moves_visibly():
    frames = synth.dancer_video(120, 0.6, fps=30)
    changed = np.any(frames[0] != frames[15], axis=-1)
    assert changed.sum() > 0.05 * changed.size


def test_still_dancer_has_no_motion():
    frames = synth.dancer_video(120, 1.0, fps=30, mode="still")
    assert frame_speed(frames).max() == 0.0
    assert synth.motion_beat_times(120, 1.0, "still").size == 0
    assert (frames[0] != frames[0, 0, 0]).any()  # the figure is drawn


def test_dancer_is_deterministic_under_a_seed():
    a = synth.dancer_video(110, 1.0, mode="off_beat", seed=7)
    assert np.array_equal(a, synth.dancer_video(110, 1.0, mode="off_beat", seed=7))
    assert not np.array_equal(a, synth.dancer_video(110, 1.0, mode="off_beat", seed=8))


def test_unknown_mode():
    with pytest.raises(ConfigError, match="unknown dancer mode"):
        synth.dancer_video(120, 1.0, mode="moonwalk")
