"""mibench.judges.qwen_omni.media: the port of qwen-omni-utils' `process_mm_info(..., use_audio_in_video=True)`.

Golden values (the SMART_RESIZE, NFRAMES, VIDEO and AUDIO tables) were produced once, offline, by
qwen-omni-utils 0.0.9's own code (the PyPI wheel, `qwen_omni_utils/v2_5/vision_process.py` and
`audio_process.py`, loaded with importlib; nothing of it is in this repo):
- `smart_resize(h, w, factor=28, min_pixels, max_pixels)` and `smart_nframes({"fps": fps}, total, video_fps)`
  run as they are (they never touch torchvision).
- `fetch_video({"type": "video", "video": path, **extra}, return_video_sample_fps=True,
  return_video_metadata=True)` with FORCE_QWENVL_VIDEO_READER=decord (decord 0.6.0) on the files that
  `media_files` writes (av 18.1.0), with `torchvision` replaced by a stub module whose
  `transforms.functional.resize` only records its arguments (the requested [H, W], BICUBIC,
  antialias=True) and returns the frames: the indices, sample fps and target size are theirs; the resize
  itself is checked against torch in `test_resize_*` (torchvision cannot be installed here).
- `process_audio_info([...video...], use_audio_in_video=True)[0]`, i.e. librosa 0.11 loading through
  audioread and the Debian `ffmpeg` 5.1.9 CLI. Its AAC decoder differs from PyAV's (libavcodec 62) by
  ~6e-8 before int16 rounding, so 1 in ~2500 samples of the AAC files is 1 LSB (3.05e-5) off: those
  are compared with atol 1e-4. The Matroska file carries float PCM, so decoding is exact and its
  audio is compared at 1e-6 (it matched bit for bit).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch

from mibench.errors import MediaError
from mibench.judges.qwen_omni import media
from mibench.judges.qwen_omni.media import (
    frame_indices,
    frame_max_pixels,
    num_frames,
    read_audio,
    read_media,
    resize_video,
    smart_resize,
)
from mibench.media.video import read_frames, write_mp4

# (height, width, min_pixels, max_pixels) -> official smart_resize(..., factor=28)
SMART_RESIZE = [
    (96, 128, 100352, 602112, (280, 392)),
    (76, 102, 100352, 602112, (280, 392)),
    (90, 160, 100352, 602112, (252, 448)),
    (480, 640, 100352, 602112, (476, 644)),
    (480, 640, 100352, 150000.0, (308, 420)),
    (480, 640, 100352, 200000, (364, 504)),
    (1080, 1920, 100352, 602112, (560, 1008)),
    (1920, 1080, 100352, 602112, (1008, 560)),
    (720, 1280, 100352, 301056.0, (392, 728)),
    (27, 29, 100352, 602112, (308, 336)),
    (3000, 20, 100352, 602112, (3892, 28)),
    (1, 150, 3136, 602112, (28, 140)),
    (96, 128, 100352, 105369, (280, 392)),  # scaled up to min_pixels, past max_pixels: theirs too
]
# (total frames, video fps, fps) -> official smart_nframes
NFRAMES = [
    (120, 30.0, 2.0, 8),
    (120, 30.0, 1.0, 4),
    (120, 30.0, 4.0, 16),
    (75, 29.97002997002997, 2.0, 4),
    (3, 24.0, 2.0, 2),
    (2, 24.0, 2.0, 2),
    (8, 8.0, 2.0, 4),
    (9000, 30.0, 2.0, 600),
    (30000, 30.0, 2.0, 768),
    (1537, 59.94, 2.0, 50),
    (100, 1.0, 2.0, 100),
    (101, 1.0, 2.0, 100),
]
# (file, fetch_video options) -> official (frames_indices, video_sample_fps, resize target (H, W))
VIDEO = [
    ("tone30", {}, [0, 17, 34, 51, 68, 85, 102, 119], 2.0, (280, 392)),
    ("tone30", {"fps": 1.0}, [0, 40, 79, 119], 1.0, (280, 392)),
    ("tone30", {"fps": 4.0}, [0, 8, 16, 24, 32, 40, 48, 56, 63, 71, 79, 87, 95, 103, 111, 119], 4.0, (280, 392)),
    ("tone30", {"total_pixels": 300000}, [0, 17, 34, 51, 68, 85, 102, 119], 2.0, (280, 392)),
    ("odd8", {}, [0, 2, 5, 7], 4.0, (280, 392)),
    ("ntsc", {}, [0, 25, 49, 74], 1.5984015984015985, (280, 392)),
    ("ntsc", {"fps": 4.0}, [0, 8, 16, 25, 33, 41, 49, 58, 66, 74], 3.9960039960039957, (280, 392)),
    ("three", {}, [0, 2], 16.0, (280, 392)),
    ("big", {}, [0, 5, 10, 15], 2.0, (476, 644)),
    ("big", {"fps": 4.0}, [0, 2, 4, 6, 9, 11, 13, 15], 4.0, (476, 644)),
    ("big", {"total_pixels": 300000}, [0, 5, 10, 15], 2.0, (308, 420)),
    ("big", {"max_pixels": 200000}, [0, 5, 10, 15], 2.0, (364, 504)),
    ("pcm", {}, [0, 16, 33, 49], 2.0, (252, 448)),
]
# file -> official audio: (samples, mean, std, max |x|, {index: sample})
AUDIO = {
    "tone30": (64512, -1.1854701571994358e-06, 0.14080713942196216, 0.202423095703125,
               {0: 0.00152587890625, 1: 0.030670166015625, 100: -0.197967529296875, 1000: 0.001373291015625,
                32256: 0.049774169921875, 64511: -0.0001220703125}),
    "odd8": (16347, 4.744825869879348e-06, 0.13970417835013835, 0.20578013360500336,
             {0: 0.004057161509990692, 1: 0.023466791957616806, 100: 0.07646577060222626,
              1000: -0.15245682001113892, 8173: -0.08313869684934616, 16346: 1.54260233102832e-05}),
    "three": (2048, 0.0010020732879638672, 0.13956486203683288, 0.202178955078125,
              {0: 0.003753662109375, 1: 0.037628173828125, 100: 0.139495849609375, 1000: 0.199859619140625,
               1024: 0.00042724609375, 2047: 0.000579833984375}),
    "pcm": (32000, 9.057746819962631e-08, 0.07905686901151034, 0.1427999585866928,
            {0: 0.0028989280108362436, 1: 0.029502157121896744, 100: -0.06465082615613937,
             1000: 0.05000404268503189, 16000: 1.3293174561113119e-08, 31999: -0.029504626989364624}),
}
AUDIO_ATOL = {"tone30": 1e-4, "odd8": 1e-4, "three": 1e-4, "pcm": 1e-6}


def bar_frames(count: int, height: int, width: int) -> np.ndarray:
    """A red ramp, blue 90 and a green bar moving 7 px a frame."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, None, :]
    frames[..., 2] = 90
    for i in range(count):
        x = (i * 7) % max(width - 12, 1)
        frames[i, height // 4: 3 * height // 4, x: x + 12, 1] = 255
    return frames


def tone(seconds: float, sr: int, hz: float, amp: float = 0.2) -> np.ndarray:
    n = int(round(seconds * sr))
    return (amp * np.sin(2 * np.pi * hz * np.arange(n) / sr)).astype(np.float32)


def pcm_mkv(path: Path, count: int = 50, fps: int = 25, sr: int = 44100) -> Path:
    """90x160 H.264 with stereo float PCM (left 440 Hz at 0.2, right 660 Hz at 0.1) in Matroska."""
    n = round(count / fps * sr)
    wave = np.stack([tone(n / sr, sr, 440), tone(n / sr, sr, 660, 0.1)])
    with av.open(str(path), "w", format="matroska") as box:
        video = box.add_stream("libx264", rate=Fraction(fps))
        video.height, video.width, video.pix_fmt = 90, 160, "yuv420p"
        video.codec_context.thread_count = 4
        audio = box.add_stream("pcm_f32le", rate=sr)
        audio.layout = "stereo"
        for i, array in enumerate(bar_frames(count, 90, 160)):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            box.mux(video.encode(frame))
        box.mux(video.encode(None))
        for start in range(0, n, 4096):
            chunk = np.ascontiguousarray(wave[:, start:start + 4096].T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="stereo")
            frame.sample_rate, frame.pts = sr, start
            box.mux(audio.encode(frame))
        box.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def media_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("qwen_omni_media")
    return {
        "tone30": write_mp4(d / "tone30.mp4", bar_frames(120, 96, 128), 30, audio=tone(4, 16000, 440), audio_sr=16000),
        "odd8": write_mp4(d / "odd8.mp4", bar_frames(8, 75, 101), 8, audio=tone(1, 22050, 330), audio_sr=22050),
        "ntsc": write_mp4(d / "ntsc.mp4", bar_frames(75, 120, 160), 30000 / 1001),  # no audio track
        "three": write_mp4(d / "three.mp4", bar_frames(3, 48, 64), 24, audio=tone(0.125, 16000, 500), audio_sr=16000),
        "big": write_mp4(d / "big.mp4", bar_frames(16, 480, 640), 8),
        "pcm": pcm_mkv(d / "pcm.mkv"),
    }


# (a) the arithmetic, worked by hand


def test_smart_resize_by_hand():
    # 96x128: sides round to 84x140 = 11760 < 100352, beta = sqrt(100352 / 12288) = 2.858,
    # ceil(96 * 2.858 / 28) = 10 and ceil(128 * 2.858 / 28) = 14 -> 280x392
    assert smart_resize(96, 128, 100352, 602112) == (280, 392)
    # 480x640 rounds to 476x644 = 306544, inside [100352, 602112]: kept
    assert smart_resize(480, 640, 100352, 602112) == (476, 644)
    # 1080x1920 -> 1092x1932 is too big: beta = sqrt(2073600 / 602112) = 1.856, floor(20.78) = 20, floor(36.95) = 36
    assert smart_resize(1080, 1920, 100352, 602112) == (560, 1008)
    # 76x102 (75x101 frames as write_mp4 pads them) with min 78400: 84x112 = 9408 is too small,
    # beta = sqrt(78400 / 7752) = 3.180, ceil(8.63) = 9 -> 252 and ceil(11.59) = 12 -> 336
    assert smart_resize(76, 102, 78400, 602112) == (252, 336)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 201, 100352, 602112)
    with pytest.raises(ValueError, match="below min_pixels"):
        smart_resize(96, 128, 100352, 100000)


def test_num_frames_by_hand():
    assert num_frames(120, 30.0) == 8  # 4 s at 2 fps
    assert num_frames(75, 30000 / 1001) == 4  # 75 / 29.97 * 2 = 5.005, floored to even
    assert num_frames(8, 8.0) == 4  # 2 wanted, raised to the 4-frame minimum
    assert num_frames(3, 24.0) == 2  # the minimum is capped by floor2(min(768, 3)) = 2
    assert num_frames(30000, 30.0) == 768  # 1000 s: the 768-frame maximum
    assert num_frames(101, 1.0) == 100  # 202 wanted, capped by the 101 frames, floored to even
    with pytest.raises(ValueError):
        num_frames(1, 24.0)  # floor2(min(768, 1)) = 0 frames


def test_frame_indices_by_hand():
    assert frame_indices(120, 8) == [0, 17, 34, 51, 68, 85, 102, 119]  # step 119 / 7 = 17
    assert frame_indices(16, 8) == [0, 2, 4, 6, 9, 11, 13, 15]  # 15 / 7 = 2.14 per step
    assert frame_indices(6, 3) == [0, 2, 5]  # 2.5 rounds half to even, as torch.round
    assert frame_indices(2, 2) == [0, 1]


def test_frame_max_pixels_by_hand():
    assert frame_max_pixels(8) == 602112  # 768 tokens per frame
    assert frame_max_pixels(300) == 602112  # 90316800 / 300 * 2: the budget just reaches 768 tokens
    assert frame_max_pixels(600) == 301056  # 300 s at 2 fps: the total-pixels budget binds
    assert frame_max_pixels(8, total_pixels=300000) == 105369  # floored at int(100352 * 1.05)
    assert frame_max_pixels(4, total_pixels=300000) == 150000
    assert frame_max_pixels(4, max_pixels=200000) == 200000  # a caller's cap only lowers it
    assert frame_max_pixels(4, max_pixels=10**7) == 602112


# (b) against qwen-omni-utils 0.0.9's own outputs


@pytest.mark.parametrize(("height", "width", "low", "high", "expected"), SMART_RESIZE)
def test_smart_resize_matches_official(height, width, low, high, expected):
    assert smart_resize(height, width, low, high) == expected


@pytest.mark.parametrize(("total", "video_fps", "fps", "expected"), NFRAMES)
def test_num_frames_matches_official(total, video_fps, fps, expected):
    assert num_frames(total, video_fps, fps) == expected
    assert frame_indices(total, expected) == torch.linspace(0, total - 1, expected).round().long().tolist()


@pytest.mark.parametrize(("name", "options", "indices", "sample_fps", "size"), VIDEO,
                         ids=[f"{v[0]}-{'-'.join(map(str, v[1].values())) or 'default'}" for v in VIDEO])
def test_read_media_matches_official(media_files, name, options, indices, sample_fps, size):
    out = read_media(media_files[name], with_audio=False, **options)
    assert out.frame_indices == indices
    assert out.sample_fps == sample_fps
    assert out.video.dtype == torch.float32
    assert tuple(out.video.shape) == (len(indices), 3, *size)
    assert out.audio is None


def test_frames_are_the_decord_frames_resized(media_files):
    out = read_media(media_files["tone30"], with_audio=False)
    raw = torch.from_numpy(read_frames(media_files["tone30"], out.frame_indices)).permute(0, 3, 1, 2)
    assert torch.equal(out.video, resize_video(raw, 280, 392))
    assert float(out.video.min()) >= 0 and float(out.video.max()) <= 255
    assert torch.equal(out.video, out.video.round())


@pytest.mark.parametrize("name", sorted(AUDIO))
def test_audio_matches_official(media_files, name):
    count, mean, std, peak, samples = AUDIO[name]
    atol = AUDIO_ATOL[name]
    wave = read_media(media_files[name]).audio
    assert wave.dtype == np.float32 and wave.ndim == 1 and wave.size == count
    assert wave.mean(dtype=np.float64) == pytest.approx(mean, abs=atol)
    assert wave.std(dtype=np.float64) == pytest.approx(std, abs=atol)
    assert np.abs(wave).max() == pytest.approx(peak, abs=atol)
    for index, value in samples.items():
        assert wave[index] == pytest.approx(value, abs=atol), index


def test_audio_is_the_channel_mean(media_files):
    # the left channel alone (0.2 peak) would not give the mean's peak of (0.2 + 0.1) / 2 at most 0.15
    wave = read_audio(media_files["pcm"])
    assert 0.13 < np.abs(wave).max() < 0.15


# (c) the resize: torchvision's tensor BICUBIC antialias path, in torch


def test_resize_is_bicubic_antialias_interpolate():
    frames = torch.randint(0, 256, (3, 76, 102, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    frames = frames.permute(0, 3, 1, 2)  # (T, C, H, W) view of (T, H, W, C) memory, as the decord reader's
    overshoot = False
    for height, width in [(280, 392), (28, 56), (364, 504)]:
        expected = torch.nn.functional.interpolate(frames.contiguous().float(), size=[height, width], mode="bicubic",
                                                   align_corners=False, antialias=True)
        overshoot |= float(expected.min()) < 0 or float(expected.max()) > 255
        out = resize_video(frames, height, width)
        assert out.dtype == torch.float32 and tuple(out.shape) == (3, 3, height, width)
        assert torch.equal(out, expected.clamp(0, 255).round())  # clamped, rounded as uint8, then .float()
    assert overshoot  # bicubic leaves 0..255 on noise, so the clamp is exercised


def test_resize_to_the_same_size_is_a_copy():
    frames = torch.randint(0, 256, (2, 3, 56, 84), dtype=torch.uint8)
    assert torch.equal(resize_video(frames, 56, 84), frames.float())


# (d) temporal jitter


def test_jitter_is_reproducible_and_local(media_files):
    path = media_files["tone30"]
    official = read_media(path)
    first, again, other = (read_media(path, jitter_seed=s) for s in (7, 7, 8))
    assert first.frame_indices == again.frame_indices
    assert first.frame_indices != other.frame_indices
    assert torch.equal(first.video, again.video)
    assert read_media(path, jitter_seed=None).frame_indices == official.frame_indices
    for jittered in (first, other):
        assert len(jittered.frame_indices) == 8 and jittered.sample_fps == official.sample_fps
        assert jittered.frame_indices == sorted(jittered.frame_indices)
        pairs = zip(jittered.frame_indices, official.frame_indices, strict=True)
        assert all(0 <= i <= 119 and abs(i - j) <= 9 for i, j in pairs)  # within half a step (17 / 2) + rounding
        assert np.array_equal(jittered.audio, official.audio)  # the audio is never jittered


def test_jitter_stays_in_range_for_dense_sampling():
    for seed in range(20):
        indices = frame_indices(5, 4, jitter_seed=seed)
        assert indices == sorted(indices) and all(0 <= i <= 4 for i in indices)


# (e) files that cannot be used, and files without sound


def test_no_audio_track_or_no_audio_wanted(media_files):
    assert read_media(media_files["ntsc"]).audio is None
    assert read_media(media_files["tone30"], with_audio=False).audio is None


@pytest.mark.parametrize(("kind", "says"), [("missing", "not found"), ("garbage", "cannot be decoded"),
                                            ("audio_only", "no video track"), ("one_frame", "1 frame(s), too few"),
                                            ("too_thin", "aspect ratio 210")])
def test_bad_files_raise_media_error(tmp_path, kind, says):
    path = tmp_path / f"{kind}.mp4"
    if kind == "garbage":
        path.write_bytes(b"this is not a video" * 100)
    elif kind == "audio_only":
        path = tmp_path / "audio_only.wav"
        soundfile.write(path, tone(1, 16000, 440), 16000)
    elif kind == "one_frame":
        write_mp4(path, bar_frames(1, 64, 64), 24)
    elif kind == "too_thin":
        write_mp4(path, bar_frames(4, 4, 840), 24)  # aspect ratio 210 > 200
    with pytest.raises(MediaError) as exc:
        read_media(path)
    assert str(path) in str(exc.value) and says in str(exc.value) and "\n" not in str(exc.value)


def test_constants_are_the_official_defaults():
    assert media.FPS == 2.0 and media.FACTOR == 28 and media.SAMPLE_RATE == 16000
    assert media.VIDEO_MIN_PIXELS == 128 * 28 * 28 and media.VIDEO_MAX_PIXELS == 768 * 28 * 28
    assert media.VIDEO_TOTAL_PIXELS == 128000 * 28 * 28 * 0.9
