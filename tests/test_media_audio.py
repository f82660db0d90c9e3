"""mibench.media.audio: decoding (wav, mp3, m4a), first channel, exact lengths, crops, atomic writes, errors."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from mibench.errors import MediaError
from mibench.media import audio
from mibench.media.video import write_mp4


def chirp(n: int, sr: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(n) / sr
    return (amplitude * np.sin(2 * np.pi * (200 + 900 * t) * t)).astype(np.float32)


def write_compressed(path: Path, wave: np.ndarray, sr: int, codec: str, container_format: str) -> Path:
    """Encode a mono float wave with PyAV (mp3 via libmp3lame, m4a via aac)."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts = sr, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def best_lag(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 3000) -> int:
    span = reference.size - max_lag
    return int(np.argmax([np.dot(decoded[lag : lag + span], reference[:span]) for lag in range(max_lag)]))


def assert_names_file(exc: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("subtype", "tolerance"), [("FLOAT", 0.0), ("PCM_16", 1 / 32768), ("PCM_U8", 1 / 128)])
def test_load_wav_keeps_first_channel(tmp_path, subtype, tolerance):
    left = chirp(8000, 8000)
    right = -0.3 * np.ones(8000, np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 8000, subtype=subtype)
    wave, sr = audio.load_audio(path)
    assert sr == 8000 and wave.dtype == np.float32 and wave.shape == (8000,)
    np.testing.assert_allclose(wave, left, atol=tolerance)


@pytest.mark.parametrize(
    ("n", "sr_from", "sr_to"),
    [(44100, 44100, 16000), (12345, 44100, 16000), (1001, 48000, 16000), (777, 16000, 44100), (5, 22050, 16000)],
)
def test_resample_length_rule(n, sr_from, sr_to):
    out = audio.resample(np.zeros(n, np.float32), sr_from, sr_to)
    assert out.dtype == np.float32
    assert out.size == math.ceil(n * sr_to / sr_from)


def test_resample_preserves_a_tone():
    t_in, t_out = np.arange(44100) / 44100, np.arange(16000) / 16000
    out = audio.resample(np.sin(2 * np.pi * 1000 * t_in), 44100, 16000)
    expected = np.sin(2 * np.pi * 1000 * t_out)
    assert np.abs(out - expected)[200:-200].max() < 1e-2


def test_load_audio_resamples_to_exact_length(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, chirp(30001, 44100), 44100, subtype="FLOAT")
    wave, sr = audio.load_audio(path, sr=16000)
    assert sr == 16000 and wave.size == math.ceil(30001 * 16000 / 44100)


def test_mp3_decodes_sample_exact(tmp_path):
    reference = chirp(44100, 44100)
    path = write_compressed(tmp_path / "music.mp3", reference, 44100, "libmp3lame", "mp3")
    wave, sr = audio.load_audio(path)
    assert sr == 44100 and wave.size == reference.size  # LAME header: delay and padding removed
    assert best_lag(wave, reference) == 0
    assert np.corrcoef(wave, reference)[0, 1] > 0.99


def test_m4a_decodes_aligned_with_trailing_padding(tmp_path):
    reference = chirp(16000, 16000)
    path = write_compressed(tmp_path / "music.m4a", reference, 16000, "aac", "ipod")
    wave, _ = audio.load_audio(path)
    assert reference.size <= wave.size <= reference.size + 1024
    assert best_lag(wave, reference) == 0  # the priming is dropped by the decoder
    assert np.corrcoef(wave[: reference.size], reference)[0, 1] > 0.99


def test_crop_or_pad_exact_length_and_seeded_offset():
    sr = 16000
    wave = np.arange(5 * sr, dtype=np.float32)
    n = round(1.2345 * sr)
    offsets = set()
    for seed in range(20):
        clip, offset = audio.crop_or_pad(wave, sr, 1.2345, seed=seed)
        again, offset_again = audio.crop_or_pad(wave, sr, 1.2345, seed=seed)
        start = round(offset * sr)
        assert clip.size == n and offset == offset_again and np.array_equal(clip, again)
        assert 0 <= start <= wave.size - n and start == offset * sr
        np.testing.assert_array_equal(clip, wave[start : start + n])
        offsets.add(offset)
    assert len(offsets) > 15


def test_crop_or_pad_pads_short_waves_at_the_end():
    wave = np.ones(1000, np.float32)
    clip, offset = audio.crop_or_pad(wave, 1000, 2.5, seed=3)
    assert offset == 0.0 and clip.size == 2500
    assert clip[:1000].min() == 1.0 and clip[1000:].max() == 0.0


def test_crop_or_pad_explicit_offset():
    wave = np.arange(1000, dtype=np.float32)
    clip, offset = audio.crop_or_pad(wave, 100, 3.0, offset=8.5)
    assert offset == 8.5 and clip.size == 300
    np.testing.assert_array_equal(clip[:150], wave[850:])
    assert clip[150:].max() == 0.0


def test_is_silent():
    tone = np.sin(np.linspace(0, 200, 8000)) * math.sqrt(2)  # RMS 1.0 = 0 dB
    assert audio.is_silent(np.zeros(100))
    assert audio.is_silent(np.zeros(0))
    assert audio.is_silent(tone * 10 ** (-70 / 20))
    assert not audio.is_silent(tone * 10 ** (-40 / 20))
    assert not audio.is_silent(tone * 10 ** (-50 / 20), threshold_db=-55.0)


@pytest.mark.parametrize("factor", [0.75, 1.25])
def test_change_tempo_length_and_pitch(factor):
    sr = 16000
    wave = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    out = audio.change_tempo(wave, sr, factor)
    assert out.size == math.ceil(sr / factor)
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * sr / out.size
    assert abs(peak_hz - 440 * factor) < 2


def test_write_wav_round_trip_leaves_no_temp(tmp_path):
    wave = chirp(4000, 16000)
    path = audio.write_wav(tmp_path / "sub" / "out.wav", wave, 16000)
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == ["out.wav"]
    back, sr = audio.load_audio(path)
    assert sr == 16000
    np.testing.assert_array_equal(back, wave)


def test_write_wav_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.wav"
    audio.write_wav(path, chirp(100, 16000), 16000)
    before = path.read_bytes()

    def broken(file, *args, **kwargs):
        Path(file).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(audio.soundfile, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        audio.write_wav(path, chirp(200, 16000), 16000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(MediaError, match="not found") as exc:
        audio.load_audio(path)
    assert_names_file(exc, path)


@pytest.mark.parametrize("name", ["junk.wav", "junk.mp4", "junk.mp3"])
def test_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(MediaError, match="cannot be decoded") as exc:
        audio.load_audio(path)
    assert_names_file(exc, path)


def test_video_without_audio_track(tmp_path):
    path = write_mp4(tmp_path / "silent.mp4", np.zeros((3, 16, 16, 3), np.uint8), 10)
    with pytest.raises(MediaError, match="no audio track") as exc:
        audio.load_audio(path)
    assert_names_file(exc, path)


def test_empty_audio_track(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(MediaError, match="empty audio track") as exc:
        audio.load_audio(path)
    assert_names_file(exc, path)
