"""Beat Alignment Score recipes (FACT, Bailando, mibench), kinematic beats, speeds and tempo helpers against
values derived by hand from the papers' definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mibench.errors import ConfigError
from mibench.metrics.bas import (
    BAILANDO,
    FACT,
    MIBENCH,
    alignment_score,
    beat_alignment,
    envelope,
    kinematic_beats,
    recipe,
)
from mibench.metrics.motion import frame_speeds
from mibench.metrics.music_beats import BAILANDO_MUSIC, FACT_MUSIC, MIBENCH_MUSIC
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


def test_recipes_scale_from_60_fps():
    assert (FACT.direction, BAILANDO.direction, MIBENCH.direction) == ("motion", "music", "motion")
    assert (FACT.labelling, BAILANDO.labelling, MIBENCH.labelling) == ("later", "earlier", "centred")
    assert FACT.sigma_s == BAILANDO.sigma_s == MIBENCH.sigma_s == pytest.approx(3 / 60)
    assert [FACT.peak_order(f) for f in (60, 30, 24, 10)] == [10, 5, 4, 2]
    assert [BAILANDO.peak_order(f) for f in (60, 30, 10)] == [1, 1, 1]
    assert FACT.smooth_s == 0.0 and BAILANDO.smooth_s == pytest.approx(5 / 60)
    assert (FACT.music, BAILANDO.music, MIBENCH.music) == (FACT_MUSIC, BAILANDO_MUSIC, MIBENCH_MUSIC)
    assert (FACT_MUSIC.envelope, FACT_MUSIC.analysis_fps, FACT_MUSIC.lag_frames, FACT_MUSIC.tempo_prior) == (
        "onset", 60.0, 0, True)
    assert (BAILANDO_MUSIC.envelope, BAILANDO_MUSIC.analysis_fps, BAILANDO_MUSIC.lag_frames,
            BAILANDO_MUSIC.tempo_prior) == ("percussive", 60.0, 0, False)
    assert (MIBENCH_MUSIC.analysis_fps, MIBENCH_MUSIC.lag_frames) == (None, 1)
    params = BAILANDO.params(30.0)
    assert params == {"recipe": "bailando", "source": BAILANDO.source, "fps": 30.0, "sigma_s": 3 / 60,
                      "direction": "music", "labelling": "earlier", "smooth_s": 5 / 60, "peak_order": 1,
                      "music_recipe": "bailando"}
    with pytest.raises(ConfigError, match="unknown BAS recipe 'edge'"):
        recipe("edge")


def test_envelopes_place_the_step_speed_as_each_paper_does():
    steps = np.array([4.0, 2.0, 6.0])  # speed between frames 0-1, 1-2, 2-3 (T = 4 frames)
    assert envelope(steps, "later").tolist() == [0.0, 4.0, 2.0, 6.0]  # FACT: v[t] = p[t] - p[t-1], v[0] = 0
    assert envelope(steps, "earlier").tolist() == [4.0, 2.0, 6.0]  # Bailando: |p[i+1] - p[i]| at frame i
    assert envelope(steps, "centred").tolist() == [4.0, 3.0, 4.0, 6.0]  # mibench: mean of the two steps


# A V-shaped step speed at 60 fps whose minimum is the step 20 -> 21 (between two frames): T = 41 frames.
V_STEPS = np.abs(np.arange(40.0) - 20.0) + 0.5


def test_minimum_between_frames_on_and_off_the_grid():
    # FACT labels the step 20->21 at frame 21; Bailando at frame 20; centred speed ties frames 20 and 21
    fact, params = beat_alignment(V_STEPS, 60.0, np.array([21 / 60]), FACT)
    assert fact == pytest.approx(1.0) and params["motion_beats"] == 1 and params["peak_order"] == 10
    bailando, params = beat_alignment(V_STEPS, 60.0, np.array([20 / 60]), BAILANDO)
    assert bailando == pytest.approx(1.0) and params["motion_beats"] == 1
    mibench, params = beat_alignment(V_STEPS, 60.0, np.array([20 / 60, 21 / 60]), MIBENCH)
    assert mibench == 0.0 and params["motion_beats"] == 0  # a tie is no strict minimum
    # a music beat half a frame off the grid: d = 1/120 s, score exp(-(1/120)^2 / (2 (3/60)^2)) = exp(-1/72)
    off_grid = np.array([20.5 / 60])
    assert beat_alignment(V_STEPS, 60.0, off_grid, FACT)[0] == pytest.approx(math.exp(-1 / 72))
    assert beat_alignment(V_STEPS, 60.0, off_grid, BAILANDO)[0] == pytest.approx(math.exp(-1 / 72))


def test_minimum_exactly_on_a_frame():
    # the speed falls to an extreme ON frame 20: the steps 19->20 and 20->21 are equal
    steps = np.abs(np.arange(40.0) - 19.5)
    beat = np.array([20 / 60])
    fact, params = beat_alignment(steps, 60.0, beat, FACT)
    assert fact == 0.0 and params["motion_beats"] == 0  # FACT's strict minima: frames 20 and 21 tie
    bailando, params = beat_alignment(steps, 60.0, beat, BAILANDO)
    assert bailando == 0.0 and params["motion_beats"] == 0  # Bailando: frames 19 and 20 tie (smoothing keeps it)
    mibench, params = beat_alignment(steps, 60.0, beat, MIBENCH)
    assert mibench == pytest.approx(1.0) and params["motion_beats"] == 1  # centred speed: minimum at frame 20


def test_a_music_beat_on_the_last_frame():
    music = np.array([20 / 60, 40 / 60])  # T = 41 frames: frame 40 is the last
    _, params = beat_alignment(V_STEPS, 60.0, music, FACT)
    assert params["music_beats"] == 2  # FACT keeps music beats on frames 0 .. T - 1
    # Bailando keeps music beats on frames < T - 1: only 20/60 is averaged, and it is on the motion beat
    bailando, params = beat_alignment(V_STEPS, 60.0, music, BAILANDO)
    assert params["music_beats"] == 1 and bailando == pytest.approx(1.0)


def test_no_beats():
    for chosen in (FACT, BAILANDO, MIBENCH):
        assert beat_alignment(V_STEPS, 60.0, np.array([]), chosen)[0] is None  # no music beats: undefined
        score, params = beat_alignment(np.zeros(40), 60.0, np.array([20 / 60]), chosen)  # still: no motion beats
        assert score == 0.0 and params["motion_beats"] == 0


def test_30_fps_uses_the_windows_in_seconds():
    steps = np.abs(np.arange(20.0) - 10.0) + 0.5  # minimum at the step 10 -> 11 at 30 fps
    fact, params = beat_alignment(steps, 30.0, np.array([11 / 30]), FACT)
    assert fact == pytest.approx(1.0) and params["peak_order"] == 5 and params["fps"] == 30.0
    # a music beat one 60-fps frame after the motion beat: d = 1/60 s, score exp(-(1/60)^2 / (2 (3/60)^2))
    assert beat_alignment(steps, 30.0, np.array([10 / 30 + 1 / 60]), BAILANDO)[0] == pytest.approx(
        math.exp(-1 / 18))


def test_music_beats_after_the_video_are_dropped():
    steps = np.abs(np.arange(29.0) - 14.0) + 0.5  # 1 s at 30 fps (T = 30)
    _, params = beat_alignment(steps, 30.0, np.array([0.5, 1.5]), FACT)
    assert params["music_beats"] == 1 and params["peak_order"] == 5


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
