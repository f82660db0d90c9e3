"""Video and audio of an mp4 for the Qwen-Omni judges, exactly as the official preprocessing.

Reproduces `process_mm_info([... {"type": "video", "video": path} ...], use_audio_in_video=True)` of
qwen-omni-utils 0.0.9 (`v2_5/vision_process.py` VP, `v2_5/audio_process.py` AP), the helper that the
Qwen2.5-Omni and Qwen3-Omni model cards use, with its defaults (`image_patch_size=14`, no env vars):

- Frame count (`num_frames`; VP:144 `smart_nframes`): `total / video_fps * fps` (fps 2.0), clamped to
  `[ceil2(4), floor2(min(768, total))]` and to `total`, floored to a multiple of FRAME_FACTOR 2; fewer
  than 2 is an error. `total`, `video_fps`: decord's `len(reader)`, `get_avg_fps()` (VP:310).
- Indices (`frame_indices`; VP:317): `torch.linspace(0, total - 1, n)` in float32, `.round()` (half to even).
- Reader (VP:390): torchcodec if installed, else decord, else torchvision (`FORCE_QWENVL_VIDEO_READER`
  overrides; any error falls back to torchvision `read_video`, i.e. PyAV). The Qwen2.5-Omni card installs
  `qwen-omni-utils[decord]`; this module reads with decord 0.6 `get_batch` (`mibench.media.video.read_frames`,
  which decodes with PyAV the few narrow widths where decord fails, like their torchvision fallback).
- Size (`smart_resize`; VP:56, VP:449-469; factor 28 = patch 14 x merge 2): min_pixels 128*28*28 and
  max_pixels `max(min(768*28*28, total_pixels / n * 2), int(min_pixels * 1.05))` per frame, total_pixels
  128000*28*28*0.9 (a caller's max_pixels can only lower it); sides rounded to multiples of 28, then
  scaled down (floor) above max_pixels or else up (ceil) below min_pixels; aspect ratio at most 200.
- Resize (`resize_video`; VP:470): torchvision `resize(uint8 TCHW, BICUBIC, antialias=True)`, i.e. float32
  `torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=True)`, clamped to
  0..255 and rounded back to uint8 (nothing when the size is unchanged), then `.float()`: float32
  (T, 3, H, W), RGB, integer values 0..255, not normalised (the transformers processor does that).
- `sample_fps = n / total * video_fps` (VP:321): the rate of the sampled frames, which `process_mm_info`
  returns (as `video_kwargs["fps"]`) only with `return_video_kwargs=True`. The model cards pass no fps,
  so the processor then assumes fps 2.0 (Qwen2.5-Omni) or 1.0 (Qwen3-Omni, transformers 5.25).
- Audio (AP:19-91): `librosa.load(audioread.ffdec.FFmpegAudioFile(path), sr=16000, offset=0.0,
  duration=None)`: the `ffmpeg -i path -f s16le -` CLI's int16 PCM (native rate and channels), /32768 to
  float32, mean of the channels, soxr "HQ" to 16 kHz; the whole track, not trimmed to the video.
  Here: the first audio track decoded by PyAV, converted to s16 by libswresample (as the CLI does), then
  the same librosa calls. Theirs asserts that the video has sound; this returns `audio=None` instead.

`jitter_seed=None` gives exactly the official indices. A seed moves each sample point by `u * step`
frames, `u ~ Uniform[-0.5, 0.5)` from `numpy.random.default_rng(seed)` and `step = (total - 1) / (n - 1)`
the official spacing, then rounds and clips to `0..total - 1`: indices stay non-decreasing, each within
its own interval; the count, `sample_fps` and the audio are unchanged. Any problem with the file is a
one-line MediaError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import decord
import librosa
import numpy as np
import torch

from mibench.errors import MediaError
from mibench.media.video import probe, read_frames
from mibench.quiet import native_stderr_muted

FACTOR = 28  # image_patch_size 14 x SPATIAL_MERGE_SIZE 2
FPS = 2.0
FRAME_FACTOR = 2
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
MAX_RATIO = 200
VIDEO_MIN_PIXELS = 128 * FACTOR * FACTOR
VIDEO_MAX_PIXELS = 768 * FACTOR * FACTOR
VIDEO_TOTAL_PIXELS = 128000 * FACTOR * FACTOR * 0.9  # MODEL_SEQ_LEN 128000, a float as theirs
SAMPLE_RATE = 16000
_FIX = "re-encode the file (e.g. `ffmpeg -i in -c:v libx264 -c:a aac out.mp4`)"


@dataclass
class OmniMedia:
    """What `process_mm_info(..., use_audio_in_video=True)` gives for one local video."""

    video: torch.Tensor  # float32 (T, 3, H, W), RGB 0..255, H and W multiples of 28
    sample_fps: float  # rate of the sampled frames, n / total * video_fps
    audio: np.ndarray | None  # float32 mono 16 kHz, the whole track; None without an audio track
    frame_indices: list[int]


def smart_resize(height: int, width: int, min_pixels: float, max_pixels: float,
                 factor: int = FACTOR) -> tuple[int, int]:
    """(height, width), multiples of `factor`, near the aspect ratio, scaled into [min_pixels, max_pixels]."""
    if max_pixels < min_pixels:
        raise ValueError(f"max_pixels {max_pixels} is below min_pixels {min_pixels}")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):g} is above {MAX_RATIO}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def frame_max_pixels(nframes: int, min_pixels: float = VIDEO_MIN_PIXELS, max_pixels: float | None = None,
                     total_pixels: float = VIDEO_TOTAL_PIXELS) -> float:
    """Per-frame pixel cap: 768 tokens, or the video's share of `total_pixels`, never below 1.05 x min."""
    cap = max(min(VIDEO_MAX_PIXELS, total_pixels / nframes * FRAME_FACTOR), int(min_pixels * 1.05))
    return cap if max_pixels is None else min(max_pixels, cap)


def num_frames(total: int, video_fps: float, fps: float = FPS) -> int:
    """Frames sampled from a video of `total` frames at `video_fps`; ValueError when fewer than 2."""
    low = math.ceil(FPS_MIN_FRAMES / FRAME_FACTOR) * FRAME_FACTOR
    high = math.floor(min(FPS_MAX_FRAMES, total) / FRAME_FACTOR) * FRAME_FACTOR
    wanted = min(min(max(total / video_fps * fps, low), high), total)
    n = math.floor(wanted / FRAME_FACTOR) * FRAME_FACTOR
    if not FRAME_FACTOR <= n <= total:
        raise ValueError(f"{n} frames sampled from {total}, need {FRAME_FACTOR}..{total}")
    return n


def frame_indices(total: int, nframes: int, jitter_seed: int | None = None) -> list[int]:
    """Official evenly spaced indices; with a seed each is moved within its own interval (module docstring)."""
    positions = torch.linspace(0, total - 1, nframes)
    if jitter_seed is None:
        return positions.round().long().tolist()
    step = (total - 1) / max(nframes - 1, 1)
    shifts = np.random.default_rng(jitter_seed).uniform(-0.5, 0.5, nframes) * step
    jittered = np.clip(np.round(positions.double().numpy() + shifts), 0, total - 1)
    return jittered.astype(int).tolist()


def resize_video(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 (T, 3, h, w) -> float32 (T, 3, height, width) as torchvision's tensor bicubic resize."""
    if tuple(frames.shape[-2:]) == (height, width):
        return frames.float()
    out = torch.nn.functional.interpolate(frames.to(torch.float32), size=[height, width], mode="bicubic",
                                          align_corners=False, antialias=True)
    return out.clamp(0, 255).round()


def read_audio(path: Path) -> np.ndarray | None:
    """The first audio track as float32 mono 16 kHz (module docstring); None when there is none."""
    chunks, rate, channels = [], None, 1
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            resampler = None
            for frame in container.decode(container.streams.audio[0]):
                if resampler is None:
                    rate, channels = frame.sample_rate, frame.layout.nb_channels
                    resampler = av.AudioResampler(format="s16", layout=frame.layout.name, rate=rate)
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            if resampler is not None:
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.FFmpegError as exc:
        raise MediaError(f"cannot decode the audio of {path}: {exc.strerror}", _FIX) from exc
    if not chunks:
        return np.zeros(0, np.float32)
    wave = librosa.util.buf_to_float(np.concatenate(chunks).tobytes(), n_bytes=2, dtype=np.float32)
    if channels > 1:
        wave = librosa.to_mono(wave.reshape(-1, channels).T)
    return librosa.resample(wave, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")


def _frame_count_and_rate(path: Path) -> tuple[int, float]:
    """decord's `len(reader)` and `get_avg_fps()`, what the official decord reader samples from."""
    try:
        with native_stderr_muted():
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except (RuntimeError, decord.DECORDError) as exc:
        raise MediaError(f"{path} cannot be decoded as video", _FIX) from exc
    total, rate = len(reader), reader.get_avg_fps()
    if total < 1 or not rate > 0:
        raise MediaError(f"{path} has no frame count or frame rate in its header", _FIX)
    return total, rate


def read_media(path: Path, *, fps: float = FPS, min_pixels: float = VIDEO_MIN_PIXELS, max_pixels: float | None = None,
               total_pixels: float = VIDEO_TOTAL_PIXELS, jitter_seed: int | None = None,
               with_audio: bool = True) -> OmniMedia:
    """The frames (and the audio of the file's track) that the official usage feeds the processor.

    `max_pixels=None` is the official per-frame cap (`frame_max_pixels`); a value can only lower it.
    MediaError when the file is missing, undecodable, has no video track, fewer than 2 frames or an
    aspect ratio above 200.
    """
    if max_pixels is not None and max_pixels < min_pixels:
        raise ValueError(f"max_pixels {max_pixels} is below min_pixels {min_pixels}")
    path = Path(path)
    has_audio = probe(path).has_audio
    total, video_fps = _frame_count_and_rate(path)
    try:
        nframes = num_frames(total, video_fps, fps)
    except ValueError as exc:
        raise MediaError(f"{path} has {total} frame(s), too few for Qwen-Omni", "pass at least 2 frames") from exc
    indices = frame_indices(total, nframes, jitter_seed)
    frames = torch.from_numpy(read_frames(path, indices)).permute(0, 3, 1, 2)
    height, width = frames.shape[-2:]
    try:
        size = smart_resize(height, width, min_pixels, frame_max_pixels(nframes, min_pixels, max_pixels, total_pixels))
    except ValueError as exc:
        raise MediaError(f"{path} cannot be sized for Qwen-Omni: {exc}", "crop or re-encode the video") from exc
    return OmniMedia(
        video=resize_video(frames, *size),
        sample_fps=nframes / max(total, 1e-6) * video_fps,
        audio=read_audio(path) if with_audio and has_audio else None,
        frame_indices=indices,
    )
