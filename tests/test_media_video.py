"""mibench.media.video: probe, exact frame reads (decord), mp4+aac round trip, odd sizes, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from mibench.errors import MediaError
from mibench.media import video
from mibench.media.audio import load_audio
from mibench.media.synth import dancer_video
from mibench.provenance import versions


def indexed_frames(count: int, height: int = 32, width: int = 64) -> np.ndarray:
    """Flat frames whose colour encodes their index i (mod 13): (20 i, 255 - 20 i, 128)."""
    frames = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        frames[i] = (20 * (i % 13), 255 - 20 * (i % 13), 128)
    return frames


def decoded_index(frame: np.ndarray) -> int:
    return round(float(frame[..., 0].mean()) / 20)


def chirp(n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    return (0.5 * np.sin(2 * np.pi * (200 + 900 * t) * t)).astype(np.float32)


@pytest.fixture(params=[64, 48], ids=["decord", "pyav-fallback"])
def indexed_mp4(tmp_path, request):
    """12 indexed frames, 32 px high; decord 0.6 cannot batch-read the 48 px wide one."""
    return video.write_mp4(tmp_path / "indexed.mp4", indexed_frames(12, width=request.param), 24)


def assert_names_file(exc: pytest.ExceptionInfo, path) -> None:
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_read_frames_exact_indices(indexed_mp4):
    frames = video.read_frames(indexed_mp4, [0, 7, 3, 11, 7])
    width = video.probe(indexed_mp4).width
    assert frames.dtype == np.uint8 and frames.shape == (5, 32, width, 3)
    assert [decoded_index(f) for f in frames] == [0, 7, 3, 11, 7]
    expected = indexed_frames(12, width=width)[[0, 7, 3, 11, 7]].astype(int)
    assert np.abs(frames.astype(int) - expected).max() <= 3


def test_read_all_frames_in_order(indexed_mp4):
    frames = video.read_frames(indexed_mp4)
    width = video.probe(indexed_mp4).width
    assert frames.shape == (12, 32, width, 3)
    assert [decoded_index(f) for f in frames] == list(range(12))
    assert video.read_frames(indexed_mp4, []).shape == (0, 32, width, 3)


def test_decord_and_pyav_decode_the_same_pixels(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 64, 3), dtype=np.uint8)
    path = video.write_mp4(tmp_path / "noise.mp4", frames, 10)
    np.testing.assert_array_equal(video.read_frames(path, [4, 1]), video._read_frames_pyav(path, [4, 1]))


def test_probe_video_only(tmp_path):
    path = video.write_mp4(tmp_path / "v.mp4", indexed_frames(12), 24)
    assert video.probe(path) == video.VideoInfo(
        num_frames=12, fps=24.0, width=64, height=32, duration=0.5, has_audio=False, audio_sample_rate=None
    )


@pytest.mark.parametrize("fps", [30.0, 30000 / 1001])
def test_mp4_aac_round_trip(tmp_path, fps):
    sr, count = 16000, 45
    n_video = round(count / fps * sr)
    tone = chirp(3 * sr, sr)  # longer than the video: must be trimmed
    path = video.write_mp4(tmp_path / "clip.mp4", indexed_frames(count), fps, audio=tone, audio_sr=sr)

    info = video.probe(path)
    assert (info.num_frames, info.width, info.height) == (count, 64, 32)
    assert info.fps == pytest.approx(fps) and info.duration == pytest.approx(count / fps)
    assert info.has_audio and info.audio_sample_rate == sr
    assert video.read_frames(path).shape == (count, 32, 64, 3)

    wave, wave_sr = load_audio(path)
    assert wave_sr == sr
    assert n_video <= wave.size <= n_video + 1024  # trailing AAC padding, at most one frame
    lags = range(-50, 51)
    scores = [np.dot(wave[200 + lag : n_video - 200 + lag], tone[200 : n_video - 200]) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0  # priming removed: audio aligned with the video
    assert np.corrcoef(wave[:n_video], tone[:n_video])[0, 1] > 0.99
    assert np.abs(wave[n_video + 64 :]).max(initial=0.0) < 0.05


def test_short_audio_is_padded_with_silence(tmp_path):
    sr = 44100
    path = video.write_mp4(tmp_path / "pad.mp4", indexed_frames(12), 12, audio=chirp(sr // 4, sr), audio_sr=sr)
    wave, _ = load_audio(path)
    assert sr <= wave.size <= sr + 1024
    assert np.abs(wave[: sr // 4 - 500]).max() > 0.3
    assert np.abs(wave[sr // 4 + 500 :]).max() < 0.02


def test_odd_size_is_padded_by_edge_pixels(tmp_path):
    frames = np.zeros((4, 31, 63, 3), np.uint8)
    frames[:, -1, :] = 200
    frames[:, :, -1] = 100
    path = video.write_mp4(tmp_path / "odd.mp4", frames, 10)
    info = video.probe(path)
    assert (info.height, info.width) == (32, 64)
    back = video.read_frames(path, [2])[0].astype(int)
    assert abs(back[-2:, 10].mean() - 200) < 8 and abs(back[10, -2:].mean() - 100) < 8


def test_write_is_deterministic(tmp_path):
    frames, tone = indexed_frames(10), chirp(16000, 16000)
    a = video.write_mp4(tmp_path / "a.mp4", frames, 30, audio=tone, audio_sr=16000)
    b = video.write_mp4(tmp_path / "b.mp4", frames, 30, audio=tone, audio_sr=16000)
    assert a.read_bytes() == b.read_bytes()


def test_textured_motion_writes_the_same_bytes_every_time(tmp_path):
    """A noisy dancer 192 px wide: x264's AVX-512 kernels wrote different streams for these frames (3 distinct
    files in 25 writes on a loaded AVX-512 machine); with `X264_SIMD` on such CPUs every write is identical."""
    frames = dancer_video(120.0, 1.0, fps=30, size=(128, 192), mode="on_beat", seed=1)
    noise = np.random.default_rng(0).integers(0, 6, frames.shape)
    frames = np.clip(frames + noise, 0, 255).astype(np.uint8)
    written = {video.write_mp4(tmp_path / f"{i}.mp4", frames, 30).read_bytes() for i in range(12)}
    assert len(written) == 1


def test_atomic_write_replaces_only_on_success(tmp_path, monkeypatch):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    video.write_mp4(path, indexed_frames(3), 10)
    assert video.probe(path).num_frames == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]

    before = path.read_bytes()
    calls = []

    def failing(array, format):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("encoder crashed")
        return original(array, format=format)

    original = video.av.VideoFrame.from_ndarray
    monkeypatch.setattr(video.av.VideoFrame, "from_ndarray", failing)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        video.write_mp4(path, indexed_frames(6), 10)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("indices", [[0, 12], [-1], [100]])
def test_out_of_range_index(tmp_path, indices):
    path = video.write_mp4(tmp_path / "v.mp4", indexed_frames(12), 24)
    with pytest.raises(MediaError, match="out of range") as exc:
        video.read_frames(path, indices)
    assert_names_file(exc, path)


@pytest.mark.parametrize("reader", [video.probe, video.read_frames])
def test_missing_file(tmp_path, reader):
    path = tmp_path / "nope.mp4"
    with pytest.raises(MediaError, match="not found") as exc:
        reader(path)
    assert_names_file(exc, path)


@pytest.mark.parametrize("reader", [video.probe, video.read_frames])
def test_corrupt_file(tmp_path, reader):
    path = tmp_path / "junk.mp4"
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(MediaError, match="cannot be decoded") as exc:
        reader(path)
    assert_names_file(exc, path)


def test_probe_audio_only_file(tmp_path):
    path = tmp_path / "music.wav"
    soundfile.write(path, chirp(1600, 16000), 16000)
    with pytest.raises(MediaError, match="no video track") as exc:
        video.probe(path)
    assert_names_file(exc, path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        video.write_mp4(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), 10)
    with pytest.raises(ValueError, match="AAC cannot store"):
        video.write_mp4(tmp_path / "x.mp4", indexed_frames(2), 10, audio=np.zeros(100), audio_sr=16001)
    with pytest.raises(ValueError, match="together"):
        video.write_mp4(tmp_path / "x.mp4", indexed_frames(2), 10, audio=np.zeros(100))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("avx512", "expected"), [(True, "AVX2 (capped)"), (False, "auto")])
def test_the_x264_simd_cap_follows_the_cpu_and_is_recorded_with_the_versions(avx512, expected, monkeypatch):
    from numpy._core._multiarray_umath import __cpu_features__

    monkeypatch.setitem(__cpu_features__, "AVX512F", avx512)
    assert video.x264_simd() == expected and versions()["x264 simd"] == expected
