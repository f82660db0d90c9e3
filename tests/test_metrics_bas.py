"""Beat Alignment Score, kinematic beats, speeds and tempo helpers against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mibench.metrics.bas import BAILANDO, FACT, alignment_score, beat_alignment, kinematic_beats
from mibench.metrics.motion import frame_speeds
from mibench.metrics.tempo import beats_bpm, periodicity_bpm, tempo_ratio

SIGMA = 0.05


def test_fact_direction_means_over_motion_beats():
    # motion beats 1.0 (on a music beat) and 2.1 (0.1 s from 2.0): (exp(0) + exp(-0.1^2 / (2 * 0.05^2))) / 2
    score = alignment_score(np.array([1.0, 2.1]), np.array([1.0, 2.0, 3.0]), sigma_s=SIGMA, direction="motion")
    assert score == pytest.approx((1.0 + math.exp(-2.0)) / 2)  # 0.567667...


def test_bailando_direction_means_over_music_beats():
    # music beats 1.0, 2.0, 3.0 are 0, 0.1 and 0.9 s from the nearest motion beat (1.0 or 2.1)
    score = alignment_score(np.array([1.0, 2.1]), np.array([1.0, 2.0, 3.0]), sigma_s=SIGMA, direction="music")
    assert score == pytest.approx((1.0 + math.exp(-2.0) + math.exp(-(0.9**2) / (2 * 0.05**2))) / 3)


def test_score_with_sigma_in_seconds():
    # one motion beat 0.05 s from the music beat, sigma 0.1 s: exp(-0.0025 / 0.02) = exp(-0.125)
    score = alignment_score(np.array([0.55]), np.array([0.5]), sigma_s=0.1, direction="motion")
    assert score == pytest.approx(math.exp(-0.125))


def test_empty_beats():
    assert alignment_score(np.array([]), np.array([1.0]), sigma_s=SIGMA, direction="motion") == 0.0
    assert alignment_score(np.array([]), np.array([1.0]), sigma_s=SIGMA, direction="music") == 0.0
    assert alignment_score(np.array([1.0]), np.array([]), sigma_s=SIGMA, direction="motion") is None
    with pytest.raises(ValueError):
        alignment_score(np.array([1.0]), np.array([1.0]), sigma_s=SIGMA, direction="sideways")


def test_kinematic_beats_peak_order():
    speed = np.array([3.0, 1.0, 2.0, 0.5, 2.0, 3.0, 3.0])
    assert kinematic_beats(speed, 30, smooth_s=0.0, order=1).tolist() == [1, 3]
    # order 2: frame 1 (1.0) is not below frame 3 (0.5), two frames away
    assert kinematic_beats(speed, 30, smooth_s=0.0, order=2).tolist() == [3]


def test_kinematic_beats_smoothing_removes_a_notch():
    speed = np.abs(np.arange(40.0) - 20.0)
    speed[5] -= 3.0  # 12 between 16 and 14: a local minimum before smoothing
    assert kinematic_beats(speed, 30, smooth_s=0.0, order=1).tolist() == [5, 20]
    assert kinematic_beats(speed, 30, smooth_s=0.1, order=1).tolist() == [20]  # sigma 3 frames


def test_variants_scale_from_60_fps():
    assert (FACT.direction, BAILANDO.direction) == ("motion", "music")
    assert FACT.sigma_s == BAILANDO.sigma_s == pytest.approx(3 / 60)
    assert [FACT.peak_order(f) for f in (60, 30, 24, 10)] == [10, 5, 4, 2]
    assert [BAILANDO.peak_order(f) for f in (60, 30, 10)] == [1, 1, 1]
    assert FACT.smooth_s == 0.0 and BAILANDO.smooth_s == pytest.approx(5 / 60)
    params = BAILANDO.params(30.0)
    assert params == {"variant": "bailando", "fps": 30.0, "sigma_s": 3 / 60, "direction": "music",
                      "smooth_s": 5 / 60, "peak_order": 1, "music_recipe": "percussive"}


def test_beat_alignment_drops_music_beats_after_the_video():
    speed = np.abs(np.sin(np.pi * np.arange(30) / 15))  # 1 s at 30 fps, minima at frames 0, 15 (frame 0 is an edge)
    score, params = beat_alignment(speed, 30.0, np.array([0.5, 1.5]), FACT)
    assert score == pytest.approx(1.0)
    assert (params["motion_beats"], params["music_beats"], params["peak_order"]) == (1, 1, 5)


def test_frame_speeds_average_neighbouring_changes():
    assert frame_speeds(np.array([1.0, 3.0]), 3).tolist() == [1.0, 2.0, 3.0]
    assert frame_speeds(np.array([]), 1).tolist() == [0.0]


def test_tempo_helpers():
    assert beats_bpm(np.array([0.0, 0.5, 1.0, 1.5])) == pytest.approx(120.0)
    assert beats_bpm(np.array([1.0])) is None
    assert tempo_ratio(150.0, 120.0) == pytest.approx(1.25)
    assert tempo_ratio(None, 120.0) is None and tempo_ratio(150.0, None) is None
    t = np.arange(300) / 30.0
    bpm, peak = periodicity_bpm(np.abs(np.sin(np.pi * t * 135 / 60)), 30.0)
    assert bpm == pytest.approx(135.0, rel=0.01) and peak > 0.5
    assert periodicity_bpm(np.ones(100), 30.0) == (None, None)


@pytest.mark.parametrize("kind", ["drums", "noise", "tone", "short"])
def test_fast_percussive_equals_librosa_bit_for_bit(kind):
    import librosa

    from mibench.media.synth import drum_track
    from mibench.metrics.music_beats import percussive

    y = {"drums": lambda: drum_track(120, 6.0, sr=15360),
         "noise": lambda: np.random.default_rng(0).standard_normal(15360 * 3).astype(np.float32),
         "tone": lambda: (0.3 * np.sin(np.arange(15360 * 2) * 0.05)).astype(np.float32),
         "short": lambda: np.random.default_rng(1).standard_normal(3000).astype(np.float32)}[kind]()
    expected = librosa.effects.percussive(y)
    assert percussive(y).dtype == expected.dtype
    np.testing.assert_array_equal(percussive(y), expected)
