"""mibench.media.synth, figure="person": the cartoon person keeps the dancer's known kinematic beats."""

from __future__ import annotations

import numpy as np
import pytest

from mibench.errors import ConfigError
from mibench.media import synth


def frame_energy(frames: np.ndarray) -> np.ndarray:
    """Mean |frame[i + 1] - frame[i]|; entry i belongs to time (i + 0.5) / fps."""
    return np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))


def test_figures_constant():
    assert synth.FIGURES == ("stick", "person")


@pytest.mark.parametrize("size", [(480, 848), (256, 256), (96, 128)])
def test_person_frames_format_and_framing(size):
    frames = synth.dancer_video(120, 1.0, fps=15, size=size, figure="person")
    assert frames.dtype == np.uint8 and frames.shape == (15, *size, 3)
    background = frames[0, 0, 0]
    drawn = np.any(frames != background, axis=-1)
    for i, mask in enumerate(drawn):
        assert not mask[[0, -1], :].any() and not mask[:, [0, -1]].any(), f"frame {i} touches the border"
    # the figure scales with min(H, W): its bounding box over a whole swing is a similar fraction of it
    ys, xs = np.nonzero(drawn.any(axis=0))
    s = min(size)
    assert 0.75 * s < ys.max() - ys.min() < 0.98 * s
    assert 0.5 * s < xs.max() - xs.min() < 0.98 * s


def test_person_is_deterministic_and_differs_from_stick():
    kwargs = dict(fps=30, size=(96, 128), mode="off_beat", seed=2)
    person = synth.dancer_video(110, 1.0, figure="person", **kwargs)
    assert np.array_equal(person, synth.dancer_video(110, 1.0, figure="person", **kwargs))
    stick = synth.dancer_video(110, 1.0, **kwargs)
    assert np.array_equal(stick, synth.dancer_video(110, 1.0, figure="stick", **kwargs))
    assert person.shape == stick.shape and not np.array_equal(person, stick)
    assert not np.array_equal(person, synth.dancer_video(110, 1.0, figure="person", **{**kwargs, "seed": 3}))


def test_person_has_skin_shirt_and_trousers():
    frame = synth.dancer_video(120, 0.1, fps=10, size=(256, 256), figure="person")[0]
    colours = {tuple(int(v) for v in px) for px in frame.reshape(-1, 3)}
    assert {synth._ROOM, synth._SKIN, synth._SHIRT, synth._TROUSERS, synth._HAIR} <= colours


def test_still_person_has_identical_frames():
    frames = synth.dancer_video(120, 1.0, fps=30, size=(96, 128), mode="still", figure="person")
    assert frame_energy(frames).max() == 0.0
    assert (frames[0] != frames[0, 0, 0]).any()  # the person is drawn


def test_on_beat_person_pauses_on_the_kinematic_beats():
    fps = 30
    frames = synth.dancer_video(120, 2.0, fps=fps, size=(96, 128), figure="person")
    energy = frame_energy(frames)
    peak = energy.max()
    assert peak > 1.0  # it really moves
    beats = synth.motion_beat_times(120, 2.0)
    checked = 0
    for t in beats:
        k = round(t * fps)  # the frame nearest the beat; pairs k-1 and k touch it
        if not 2 <= k <= energy.size - 3:
            continue
        near = energy[k - 1 : k + 1]
        assert near.max() < 0.15 * peak, f"still moving fast at {t:.3f} s"
        assert near.max() < energy[[k - 3, k + 2]].min()  # a local minimum
        checked += 1
    assert checked >= 3


def test_person_pair_straddling_a_beat_is_identical():
    # beats half a frame after frames 0, 15, 30, 45: the two frames around each show the same pose
    frames = synth.dancer_video(120, 2.0, fps=30, size=(96, 128), figure="person", phase_beats=1 / 30)
    energy = frame_energy(frames)
    beat_pairs = np.round(synth.motion_beat_times(120, 2.0, phase_beats=1 / 30) * 30 - 0.5).astype(int)
    np.testing.assert_array_equal(beat_pairs, [0, 15, 30, 45])
    assert energy[beat_pairs].max() <= 0.01 * energy.max()


def test_unknown_figure():
    with pytest.raises(ConfigError, match="unknown dancer figure") as info:
        synth.dancer_video(120, 1.0, figure="robot")
    assert "stick" in info.value.line() and "person" in info.value.line()
