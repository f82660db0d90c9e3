"""Audio: decode any audio or video file to a mono float32 wave, resample, crop/pad, write wavs.

Conventions every caller can rely on:

- `load_audio` decodes with PyAV (wav, mp3, m4a, mp4, ...) and keeps the FIRST channel only (no
  downmix, as MusicInfuser and MM-Diffusion do), as float32 in [-1, 1]. Encoder priming that the file
  marks (mp4 edit lists, LAME headers) is removed by the decoder; trailing codec padding (up to one AAC
  frame, 1024 samples) is kept.
- `resample` uses `scipy.signal.resample_poly` (polyphase FIR, Kaiser window, beta 5) with the exact
  ratio `sr_to / sr_from` reduced by their gcd; the output has exactly
  `ceil(len(wave) * sr_to / sr_from)` samples.
- `crop_or_pad` returns exactly `round(seconds * sr)` samples; a random crop start is drawn from
  `numpy.random.default_rng(seed)` in whole samples.
- Files are written atomically: to a hidden temp name in the target folder, then `os.replace`d.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import soundfile
from scipy.signal import resample_poly

from mibench.errors import MediaError

_FIX_CORRUPT = "re-export or replace the file (e.g. `ffmpeg -i in -c:a pcm_s16le out.wav`)"


def existing_file(path: str | Path) -> Path:
    """`path` as a Path; MediaError when it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"media file not found: {path}", "check the path")
    return path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields a temp path beside `path`; renames it over `path` on success, deletes it on any error.

    The temp name ends in `.tmp`, so writers must be told the format explicitly.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer or float PCM samples as float32 in [-1, 1]."""
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if np.issubdtype(samples.dtype, np.integer):
        return (samples / float(2 ** (8 * samples.dtype.itemsize - 1))).astype(np.float32)
    return samples.astype(np.float32)


def _first_channel(frame: av.AudioFrame) -> np.ndarray:
    """Channel 0 of a decoded frame, planar or interleaved, as float32."""
    data = frame.to_ndarray()
    if frame.format.is_planar:
        return _to_float(data[0])
    return _to_float(data.reshape(-1)[:: frame.layout.nb_channels])


def load_audio(path: str | Path, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode the first channel of `path` as float32 1-D; resample to `sr` when given.

    Returns (wave, sample_rate). MediaError (naming the file) when the file is missing, cannot be
    decoded, has no audio track, or its audio track holds zero samples.
    """
    path = existing_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path} has no audio track", "use a file with sound, or mux music into it")
            stream = container.streams.audio[0]
            chunks = [_first_channel(frame) for frame in container.decode(stream)]
            native_sr = stream.sample_rate
    except av.FFmpegError as exc:
        raise MediaError(f"{path} cannot be decoded: {exc.strerror}", _FIX_CORRUPT) from exc
    wave = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if wave.size == 0:
        raise MediaError(f"{path} has an empty audio track (0 samples)", "use a file that contains sound")
    if sr is not None and sr != native_sr:
        return resample(wave, native_sr, sr), sr
    return wave, native_sr


def resample(wave: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample a 1-D wave (scipy `resample_poly`); exactly `ceil(len * sr_to / sr_from)` samples."""
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    wave = np.asarray(wave, dtype=np.float32)
    if sr_from == sr_to or wave.size == 0:
        return wave.copy()
    g = math.gcd(int(sr_from), int(sr_to))
    return resample_poly(wave, int(sr_to) // g, int(sr_from) // g).astype(np.float32)


def crop_or_pad(
    wave: np.ndarray,
    sr: int,
    seconds: float,
    *,
    offset: float | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, float]:
    """Exactly `round(seconds * sr)` samples of `wave`, and the start offset in seconds.

    - `offset` given: the window starts at sample `round(offset * sr)`; zero-padded past the end.
    - `offset` None and the wave is longer: the start sample is drawn uniformly from
      `0 .. len - n` (inclusive) with `numpy.random.default_rng(seed).integers`; same seed, same start.
    - `offset` None and the wave is not longer: start 0, zero-padded at the end.
    """
    n = round(seconds * sr)
    if n < 0 or (offset is not None and offset < 0):
        raise ValueError(f"seconds and offset must be >= 0, got {seconds}, {offset}")
    wave = np.asarray(wave, dtype=np.float32)
    if offset is not None:
        start = round(offset * sr)
    elif wave.size > n:
        start = int(np.random.default_rng(seed).integers(0, wave.size - n + 1))
    else:
        start = 0
    out = np.zeros(n, np.float32)
    piece = wave[start : start + n]
    out[: piece.size] = piece
    return out, start / sr


def is_silent(wave: np.ndarray, threshold_db: float = -60.0) -> bool:
    """True when the RMS level (dB re full scale 1.0) is below `threshold_db`; empty waves are silent."""
    wave = np.asarray(wave, dtype=np.float64)
    rms = math.sqrt(float(np.mean(wave**2))) if wave.size else 0.0
    return rms == 0.0 or 20.0 * math.log10(rms) < threshold_db


def write_wav(path: str | Path, wave: np.ndarray, sr: int) -> Path:
    """Write a mono 32-bit float wav atomically (lossless for float32 waves); returns the path."""
    with atomic_output(path) as tmp:
        soundfile.write(tmp, np.asarray(wave, dtype=np.float32), sr, subtype="FLOAT", format="WAV")
    return Path(path)


def change_tempo(wave: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play `wave` `factor` times faster by resampling, so pitch shifts with it (a turntable).

    The wave is treated as recorded at `round(sr * factor)` Hz and resampled to `sr`, so the output
    has `ceil(len * sr / round(sr * factor))` samples, which is `ceil(len / factor)` whenever
    `sr * factor` is a whole number (e.g. 0.75x and 1.25x at 16 or 44.1 kHz).
    """
    if factor <= 0:
        raise ValueError(f"tempo factor must be > 0, got {factor}")
    return resample(wave, round(sr * factor), sr)
