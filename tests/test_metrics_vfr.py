"""Variable-frame-rate videos score like their constant-rate twins: frames are placed by their container
timestamps and the motion envelopes resampled onto the constant grid (`media.video.FrameTiming`), with a
warning in the notes; constant-rate videos are untouched.

The twins show the same synthetic dance, rendered at 120 fps and written either every 4th frame at 30 fps
(CFR) or at 20 fps for the first half and 40 fps for the second (VFR, explicit pts in 1/90000 s): both
have the header's average rate 30 fps, so they share the grid and the music analysis, and differ only in
when the frames were taken.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from mibench.media.audio import write_wav
from mibench.media.synth import dancer_video, drum_track
from mibench.media.video import FrameTiming, frame_timing, probe, timed_frames, write_mp4
from mibench.metrics.compute import compute_video_metrics

BPM, SECONDS, FPS, FINE, SR = 120.0, 4.0, 30, 120, 16000
TICK = Fraction(1, 90000)
# fine-frame indices of the VFR twin: 20 fps (every 6th of 120 fps), then 40 fps (every 3rd)
HALF = round(SECONDS * FINE / 2)
VFR_FRAMES = list(range(0, HALF, 6)) + list(range(HALF, 2 * HALF, 3))
PIXEL_METRICS = ("bas_mibench", "motion_bpm", "tempo_ratio", "motion_speed", "frame_consistency")
# The synthetic dancer's pose extremes fall exactly on frames: the published recipes' strict minima then
# face a tie between two frames that float noise decides (bas.py), so the twins are compared with
# mibench's recipe (centred speed: no tie); the published ones see the same resampled steps.
RECIPES = ("mibench",)
# Same kinematic beat frames give the same BAS: moving one of the ~8 beats of a 4 s clip at 120 BPM by one
# frame (33 ms against the 50 ms kernel) changes a score by at least 0.01, so 0.005 allows float noise only.
SAME_BAS = 0.005


def _write_vfr(path, frames: np.ndarray, fine_indices: list[int]) -> None:
    """Frames shown at fine_indices / FINE s: explicit pts, each packet lasting until the next frame, no
    B-frames (the mp4 muxer then derives the header's average rate from the true span: 30 fps here)."""
    pts = [round(Fraction(i, FINE) / TICK) for i in fine_indices]
    ends = dict(zip(pts, pts[1:] + [round(Fraction(2 * HALF, FINE) / TICK)], strict=True))
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "18", "bf": "0"}
        stream.codec_context.thread_count, stream.codec_context.time_base = 4, TICK

        def mux(packets):
            for packet in packets:
                packet.duration = ends[packet.pts] - packet.pts
                container.mux(packet)

        for array, stamp in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = stamp, TICK
            mux(stream.encode(frame))
        mux(stream.encode(None))


def _twins(folder, name: str, *, phase: float = 0.0, figure: str = "stick", size=(72, 72)):
    fine = dancer_video(BPM, SECONDS, fps=FINE, size=size, phase_beats=phase, figure=figure)
    cfr, vfr = folder / f"{name}-cfr.mp4", folder / f"{name}-vfr.mp4"
    write_mp4(cfr, fine[:: FINE // FPS], FPS)
    _write_vfr(vfr, fine[VFR_FRAMES], VFR_FRAMES)
    return cfr, vfr


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("vfr") / "drums.wav", drum_track(BPM, SECONDS, sr=SR), SR)


def _timing(path) -> FrameTiming:
    return frame_timing(probe(path).fps, [time for time, _ in timed_frames(path)])


def test_the_twin_really_is_variable_frame_rate(tmp_path):
    cfr, vfr = _twins(tmp_path, "dance")
    assert probe(vfr).fps == FPS and probe(vfr).num_frames == probe(cfr).num_frames == SECONDS * FPS
    times = _timing(vfr).times
    assert times[0] == 0.0 and sorted({round(1000 * step, 6) for step in np.diff(times)}) == [25.0, 50.0]
    np.testing.assert_allclose(times, np.asarray(VFR_FRAMES) / FINE, atol=1e-9)
    assert not _timing(vfr).on_grid and _timing(vfr).irregular
    cfr_timing = _timing(cfr)
    assert cfr_timing.on_grid and cfr_timing.warning() is None
    np.testing.assert_allclose(cfr_timing.times, np.arange(SECONDS * FPS) / FPS, atol=1e-9)


@pytest.mark.parametrize("phase", [0.0, 0.2])  # on the beat (BAS 1) and 3 frames late (BAS about 0.13)
def test_vfr_twin_scores_like_its_cfr_twin(tmp_path, music, phase):
    cfr_path, vfr_path = _twins(tmp_path, f"dance{phase}", phase=phase)
    cfr = compute_video_metrics(cfr_path, music=music, bpm=BPM, recipes=RECIPES)
    vfr = compute_video_metrics(vfr_path, music=music, bpm=BPM, recipes=RECIPES)
    average_rate = compute_video_metrics(vfr_path, music=music, bpm=BPM, fps=probe(vfr_path).fps,  # as before
                                         recipes=RECIPES)
    name = "bas_mibench"
    assert vfr[name][0] == pytest.approx(cfr[name][0], abs=SAME_BAS), (name, cfr[name][0], vfr[name][0])
    assert abs(average_rate[name][0] - cfr[name][0]) > 10 * SAME_BAS, (name, average_rate[name][0])
    if phase == 0.0:
        assert cfr[name][0] == 1.0 and average_rate[name][0] < 0.5
    assert vfr["motion_bpm"][0] == pytest.approx(BPM, rel=0.02)
    assert average_rate["motion_bpm"][0] < 0.8 * BPM  # the first half's 20 fps read as 30: slow motion
    for name in PIXEL_METRICS:
        assert cfr[name][2] is None and average_rate[name][2] is None, name
        assert vfr[name][2].startswith("variable frame rate (frame intervals 25.0/25.0/50.0 ms"), name
    assert vfr["music_bpm"][2] is None
    motion = vfr["bas_mibench"][1]["motion"]
    assert motion["frame_times"].startswith("container timestamps, irregular") and motion["fps"] == FPS
    assert cfr["bas_mibench"][1]["motion"]["frame_times"] == "container timestamps, on the 30 fps grid"


def test_cfr_scores_are_those_of_frame_index_over_fps(tmp_path, music):
    """A constant-rate video gives exactly the numbers of frame i at i / fps (the behaviour before timestamps),
    including its notes (a still video)."""
    still = tmp_path / "still.mp4"
    write_mp4(still, dancer_video(BPM, SECONDS, fps=FPS, size=(72, 72), mode="still"), FPS)
    for path in (_twins(tmp_path, "dance", phase=0.1)[0], still):
        by_timestamps = compute_video_metrics(path, music=music, bpm=BPM)
        by_index = compute_video_metrics(path, music=music, bpm=BPM, fps=FPS)
        assert {k: (v[0], v[2]) for k, v in by_timestamps.items()} == {k: (v[0], v[2]) for k, v in by_index.items()}
        if path == still:
            assert by_timestamps["bas_fact"][2] == "still video: no motion beats, scored 0"


def test_frame_timing_rules():
    ms = np.round(np.arange(10) / 30, 3)  # a 30 fps webm: millisecond timestamps
    assert frame_timing(30, ms).on_grid and frame_timing(30, ms).warning() is None
    slow = frame_timing(30, np.arange(10) / 25)  # constant intervals, but not the header's 1 / 30 s
    assert not slow.on_grid and not slow.irregular
    assert slow.warning().startswith("frame times off the 30 fps grid (frame intervals 40.0/40.0/40.0 ms")
    assert slow.resample(np.arange(10.0)).tolist() == pytest.approx(np.arange(11) * 25 / 30)
    gappy = frame_timing(10, [0.0, 0.1, 0.3, 0.4])
    values = np.array([[0.0, 1.0], [np.nan, np.nan], [3.0, 4.0], [4.0, 5.0]])
    assert gappy.irregular and gappy.resample(values)[:, 0].tolist() == pytest.approx([0, 1, 2, 3, 4])
    assert np.isnan(gappy.resample(np.full((4, 2), np.nan))).all()
    for times, problem in (([0.0, None], "frames without a container timestamp"),
                           ([0.0, 0.1, 0.1], "container timestamps do not increase")):
        timing = frame_timing(10, times)
        assert timing.times is None and timing.warning() == f"{problem}: frame i taken at i / 10 s"
    assert frame_timing(10).describe() == "frame i at i / 10 s" and frame_timing(10).warning() is None


def test_pose_path_uses_the_timestamps(tmp_path, music):
    cfr_path, vfr_path = _twins(tmp_path, "person", figure="person", size=(160, 160))
    cfr = compute_video_metrics(cfr_path, music=music, bpm=BPM, pose=True, recipes=RECIPES)
    vfr = compute_video_metrics(vfr_path, music=music, bpm=BPM, pose=True, recipes=RECIPES)
    assert cfr["pose_detected"][0] == vfr["pose_detected"][0] == 1.0
    # mediapipe's keypoints jitter: a kinematic beat may move a frame either way on either twin; both score
    # as a dancer on the beat (> 0.75, as in test_metrics_pose; frames at index / 30 fps give about 0.2)
    assert cfr["pose_bas_mibench"][0] > 0.75 and vfr["pose_bas_mibench"][0] > 0.75
    average_rate = compute_video_metrics(vfr_path, music=music, bpm=BPM, pose=True, fps=probe(vfr_path).fps,
                                         recipes=RECIPES)
    assert average_rate["pose_bas_mibench"][0] < 0.5
    # the kinetic features' scale survives the resampling (mean squared velocity of the same dance)
    assert vfr["pose_kinetic_energy"][0] == pytest.approx(cfr["pose_kinetic_energy"][0], rel=0.1)
    for name in ("pose_bas_mibench", "pose_kinetic_energy"):
        assert cfr[name][2] is None and vfr[name][2].startswith("variable frame rate"), name
    assert vfr["pose_detected"][2] is None
    assert vfr["pose_kinetic_energy"][1]["pose"]["frame_times"].startswith("container timestamps, irregular")
