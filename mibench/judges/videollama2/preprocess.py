"""Video and audio preprocessing of the VideoLLaMA 2.1-AV judge, exactly as the official `mm_utils`.

Frames: decord decode, `num_frames` indices at segment midpoints, PIL bicubic squash to SxS, x/255,
(x - mean)/std. Audio: the mp4's track as 16 kHz mono int16 (ffmpeg's swresample via PyAV),
8 windows of 2 s concatenated, zero-padded to 30 s, 128-bin Kaldi fbank, rounded to bfloat16.

`jitter_seed=None` reproduces the official deterministic sampling; an int draws each frame index
(and each audio window start) uniformly inside its segment with `numpy.random.default_rng(seed)`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mibench.errors import MediaError
from mibench.media import video
from mibench.media.video import probe

SAMPLE_RATE = 16000
CLIP_SECONDS = 2
CLIPS_PER_VIDEO = 8
PADDED_SAMPLES = 30 * SAMPLE_RATE
NUM_MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0


def frame_indices(num_video_frames: int, num_frames: int, jitter_seed: int | None = None) -> list[int]:
    """Official "v1" uniform sampling: midpoints of `num_frames` segments of (N - 1)/T frames.

    numpy rounds half to even; the +1e-6 pushes exact .5 ties up. With a jitter seed each index is
    drawn uniformly inside its segment instead of at its midpoint.
    """
    seg = (num_video_frames - 1) / num_frames
    if jitter_seed is None:
        positions = seg * (np.arange(num_frames) + 0.5) + 1e-6
    else:
        positions = seg * (np.arange(num_frames) + np.random.default_rng(jitter_seed).random(num_frames))
    return np.clip(np.round(positions), 0, num_video_frames - 1).astype(int).tolist()


def read_frames(path: Path, num_frames: int, jitter_seed: int | None = None) -> tuple[np.ndarray, list[int]]:
    """RGB uint8 frames [T, H, W, 3] at the sampled indices (decord, as the reference; see media.video)."""
    total = probe(path).num_frames
    if total == 0:
        raise MediaError(f"{path} has no video frames", "check that the file is a complete video")
    indices = frame_indices(total, num_frames, jitter_seed)
    return video.read_frames(path, indices), indices


def pixel_values(
    frames: np.ndarray, size: tuple[int, int], mean: list[float], std: list[float], rescale: float
) -> torch.Tensor:
    """SiglipImageProcessor (PIL path): bicubic resize to (height, width) without crop or pad,
    rescale in float64 then float32, normalise. Returns [T, 3, H, W] float32."""
    height, width = size
    out = []
    for frame in frames:
        resized = np.asarray(Image.fromarray(frame).resize((width, height), resample=Image.BICUBIC))
        scaled = (resized.astype(np.float64) * rescale).astype(np.float32)
        normed = (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        out.append(normed.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


def read_audio(path: Path) -> np.ndarray:
    """The first audio track as mono 16 kHz int16, like `ffmpeg -ac 1 -ar 16000 -f s16le`.

    A missing, undecodable, empty or all-zero track is a MediaError (the reference silently
    substitutes 30 s of silence instead).
    """
    import av

    fix = "mux the music into the mp4, or ask with modal='video' to judge the pictures only"
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path} has no audio track", fix)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            chunks = [f.to_ndarray().reshape(-1) for frame in container.decode(stream)
                      for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode the audio of {path}: {exc}", fix) from exc
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if not pcm.any():
        raise MediaError(f"the audio track of {path} is empty or silent", fix)
    return pcm


def clip_ranges(num_samples: int, jitter_seed: int | None = None) -> list[tuple[int, int]]:
    """Sample ranges of pytorchvideo's ConstantClipsPerVideoSampler(2 s, 8 clips) over the track.

    Starts are k * max(D - 2, 0)/8 seconds as exact Fractions of the float duration D, truncated to
    samples; the last (D - 2)/8 s is never heard. With a jitter seed clip k starts uniformly inside
    [k, k + 1) * (D - 2)/8 instead. A track shorter than 2 s gives 8 copies of itself.
    """
    step = Fraction(max(num_samples / SAMPLE_RATE - CLIP_SECONDS, 0)) / CLIPS_PER_VIDEO
    offsets = [Fraction(k) for k in range(CLIPS_PER_VIDEO)]
    if jitter_seed is not None:
        draws = np.random.default_rng(jitter_seed).random(CLIPS_PER_VIDEO)
        offsets = [k + Fraction(float(u)) for k, u in enumerate(draws)]
    ranges = []
    for offset in offsets:
        start = step * offset
        ranges.append((int(start * SAMPLE_RATE), int((start + CLIP_SECONDS) * SAMPLE_RATE)))
    return ranges


def clip_waveform(pcm: np.ndarray, ranges: list[tuple[int, int]]) -> torch.Tensor:
    """The windows of int16 `pcm` (as /32768 float32) concatenated and zero-padded to 30 s."""
    wav = pcm.astype(np.float32) / 32768.0
    joined = torch.cat([torch.from_numpy(wav[a:b]) for a, b in ranges])
    return torch.nn.functional.pad(joined, (0, PADDED_SAMPLES - joined.numel()))


def _mel_banks(num_bins: int, fft_size: int, sample_rate: int, low_freq: float = 20.0) -> torch.Tensor:
    """torchaudio.compliance.kaldi mel triangles [num_bins, fft_size/2 + 1] (the Nyquist column is 0)."""

    def mel(freq: float) -> float:
        return 1127.0 * math.log(1.0 + freq / 700.0)

    mel_low, mel_high = mel(low_freq), mel(0.5 * sample_rate)
    delta = (mel_high - mel_low) / (num_bins + 1)
    bins = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + bins * delta
    center = mel_low + (bins + 1.0) * delta
    right = mel_low + (bins + 2.0) * delta
    freqs = (sample_rate / fft_size) * torch.arange(fft_size // 2)
    mels = (1127.0 * (1.0 + freqs / 700.0).log()).unsqueeze(0)
    up = (mels - left) / (center - left)
    down = (right - mels) / (right - center)
    return torch.nn.functional.pad(torch.clamp(torch.min(up, down), min=0.0), (0, 1))


def kaldi_fbank(wave: torch.Tensor, num_bins: int = NUM_MEL_BINS, sample_rate: int = SAMPLE_RATE, *,
                frame_length: float = FRAME_LENGTH_MS, frame_shift: float = FRAME_SHIFT_MS) -> torch.Tensor:
    """`torchaudio.compliance.kaldi.fbank(wave, num_mel_bins, sample_frequency, frame_length, frame_shift)`
    with every other default (no dither, DC removal, pre-emphasis 0.97, povey window, power spectrum
    padded to the next power of two - 512 points for 25 ms at 16 kHz -, log floored at float32 eps,
    snip_edges). `wave` is 1-D float32 in int16 units; the official call is the default 16 kHz, 25/10 ms."""
    size = int(sample_rate * frame_length * 0.001)
    shift = int(sample_rate * frame_shift * 0.001)
    fft_size = 1 << (size - 1).bit_length()
    if wave.numel() < size:
        raise ValueError(f"{wave.numel()} samples are fewer than one {frame_length} ms fbank frame")
    count = 1 + (wave.numel() - size) // shift
    frames = wave.as_strided((count, size), (shift, 1))
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = frames - 0.97 * previous[:, :-1]
    frames = frames * torch.hann_window(size, periodic=False, dtype=torch.float32).pow(0.85)
    frames = torch.nn.functional.pad(frames, (0, fft_size - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    energies = torch.mm(power, _mel_banks(num_bins, fft_size, sample_rate).T)
    return torch.max(energies, torch.tensor(torch.finfo(torch.float32).eps)).log()


def audio_fbank(pcm: np.ndarray, ranges: list[tuple[int, int]]) -> torch.Tensor:
    """The judge's audio input: fbank of the clipped, padded track in bfloat16, [1, 2998, 128]."""
    wave = clip_waveform(pcm, ranges) * 2**15
    return kaldi_fbank(wave).to(torch.bfloat16).unsqueeze(0)
