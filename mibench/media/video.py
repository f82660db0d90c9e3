"""Video: probe a file, read exact frames (decord), decode frames with their timestamps and place them on a
constant-rate grid (PyAV), write H.264 + AAC mp4s atomically (PyAV).

- `probe` reads the container header with PyAV; `fps` is the header's average rate and `duration`
  is `num_frames / fps`.
- `timed_frames` decodes every frame with PyAV (`decoded_frames`) and pairs it with its presentation
  time from the container, `(pts - first pts) * time_base` seconds. `frame_timing` checks those times
  against the constant grid `k / fps` (`FrameTiming`): a video is *on the grid* when every frame is
  within `GRID_TOLERANCE` (a tenth) of a frame of `index / fps` (a constant-rate file, whatever its
  timestamps' rounding); otherwise per-frame values are resampled onto the grid (times `k / fps` up to
  the last frame) by linear interpolation over the frame times. Off the grid, the rate is *variable*
  when some frame interval differs from the median interval by more than `IRREGULAR_INTERVAL` (10 %);
  else the intervals are constant but not 1 / fps (a header rate that does not match the timestamps).
- `read_frames` decodes with `decord.VideoReader(path, ctx=cpu(0), num_threads=1)`, the reader the
  VideoLLaMA 2 judge uses, and returns RGB uint8 (N, H, W, 3) for exactly the requested indices
  (PyAV where decord 0.6 fails: a few narrow widths, see `read_frames`).
- `write_mp4` encodes libx264 (yuv420p, CRF `crf`, 4 fixed encoder threads so the bytes do not depend
  on the machine's core count; on CPUs with AVX-512 x264's SIMD is capped at AVX2, because its AVX-512
  kernels gave different output for the same frames from one write to the next, see `X264_SIMD`) with
  optional mono AAC audio (128 kb/s) trimmed or zero-padded to exactly the video's duration.
  yuv420p needs even sizes: frames with an odd height or width are padded by repeating their last row/column,
  so the file is at most one pixel taller/wider than the frames.
  The AAC track starts with the encoder's 1024-sample priming, marked in the mp4 edit list so decoders
  (PyAV, ffmpeg) drop it; decoded audio is aligned with the video and may run up to one AAC frame
  (1024 samples) past the video's end.
- Audio of video files is read with `mibench.media.audio.load_audio`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import decord
import numpy as np
from av.container import OutputContainer

from mibench.errors import MediaError
from mibench.media.audio import atomic_output, existing_file
from mibench.quiet import native_stderr_muted

AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
_ENCODER_THREADS = 4
# PyAV's x264 with its AVX-512 kernels wrote different streams for the same frames (widths 160 and 192:
# up to 7 distinct streams in 15 writes, decoded pixels up to 59 levels apart); capped at AVX2, or with
# no SIMD, every write was identical. AVX-512 CPUs all have AVX2.
X264_SIMD = "asm=AVX2"
_AUDIO_BIT_RATE = 128_000
GRID_TOLERANCE = 0.1  # frames: a timestamp this close to index / fps is on the constant grid
IRREGULAR_INTERVAL = 0.1  # relative: a frame interval this far from the median makes the rate variable
_FIX_CORRUPT = "re-encode or replace the file (e.g. `ffmpeg -i in -c:v libx264 -c:a aac out.mp4`)"


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` reads from a video file's header."""

    num_frames: int
    fps: float
    width: int
    height: int
    duration: float
    has_audio: bool
    audio_sample_rate: int | None


def probe(path: str | Path) -> VideoInfo:
    """Frame count, rate, size, duration and audio presence of a video file (PyAV)."""
    path = existing_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video track", "pass a video file")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            rate = video.average_rate or video.guessed_rate
            num_frames = video.frames or sum(1 for packet in container.demux(video) if packet.size)
    except av.FFmpegError as exc:
        raise MediaError(f"{path} cannot be decoded: {exc.strerror}", _FIX_CORRUPT) from exc
    if not rate:
        raise MediaError(f"{path} has no known frame rate", _FIX_CORRUPT)
    fps = float(rate)
    return VideoInfo(
        num_frames=num_frames,
        fps=fps,
        width=video.width,
        height=video.height,
        duration=num_frames / fps,
        has_audio=audio is not None,
        audio_sample_rate=audio.sample_rate if audio is not None else None,
    )


def read_frames(path: str | Path, indices: Sequence[int] | None = None) -> np.ndarray:
    """RGB uint8 frames (N, H, W, 3) at exactly `indices` (all frames when None), decoded by decord.

    MediaError (naming the file) when the file is missing or undecodable, or an index is outside
    `0 .. num_frames - 1` (negative indices are not wrapped). decord 0.6 mis-sizes the rows of a few
    narrow widths (<= 16, 24, 48 and 72 px); those videos are decoded with PyAV instead, which gives
    the same pixels wherever both work.
    """
    path = existing_file(path)
    try:
        with native_stderr_muted():  # decord's FFmpeg and its own error lines write to fd 2 directly
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except (RuntimeError, decord.DECORDError) as exc:
        raise MediaError(f"{path} cannot be decoded as video", _FIX_CORRUPT) from exc
    total = len(reader)
    wanted = list(range(total)) if indices is None else [int(i) for i in indices]
    bad = [i for i in wanted if not 0 <= i < total]
    if bad:
        raise MediaError(
            f"{path}: frame index {bad[0]} is out of range (the video has {total} frames)",
            f"request indices in 0..{total - 1}",
        )
    if not wanted:
        height, width = reader[0].shape[:2]
        return np.zeros((0, height, width, 3), np.uint8)
    try:
        with native_stderr_muted():
            return reader.get_batch(wanted).asnumpy()
    except decord.DECORDError:
        return _read_frames_pyav(path, wanted)


def decoded_frames(path: str | Path, options: dict[str, str] | None = None) -> Iterator[av.VideoFrame]:
    """Every frame of the first video track in order, decoded by PyAV with the decoder `options`;
    MediaError (naming the file) when it is missing, has no video track or cannot be decoded."""
    path = existing_file(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video track", "pass a video file")
            stream = container.streams.video[0]
            if options:
                stream.codec_context.options = options
            yield from container.decode(stream)
    except av.FFmpegError as exc:
        raise MediaError(f"{path} cannot be decoded: {exc.strerror}", _FIX_CORRUPT) from exc


def timed_frames(path: str | Path,
                 options: dict[str, str] | None = None) -> Iterator[tuple[float | None, av.VideoFrame]]:
    """`decoded_frames`, each with its presentation time in seconds from the first frame's,
    `(pts - first pts) * time_base` (exact, then rounded to float); None for a frame without a pts
    (every frame when the first has none)."""
    first = None
    for i, frame in enumerate(decoded_frames(path, options)):
        if i == 0:
            first = frame.pts
        timed = frame.pts is not None and first is not None
        yield (float((frame.pts - first) * frame.time_base) if timed else None), frame


@dataclass(frozen=True)
class FrameTiming:
    """Where decoded frames sit in time against the constant grid `k / fps` (see the module docstring).

    `times`: each frame's presentation time (s from the first frame); None puts frame i at i / fps,
    because the caller chose so or, as `problem` says, the container's timestamps are unusable."""

    fps: float
    times: np.ndarray | None = None
    problem: str | None = None

    @property
    def on_grid(self) -> bool:
        """True when every frame is within `GRID_TOLERANCE` frames of index / fps (or has no time)."""
        if self.times is None:
            return True
        return bool(np.all(np.abs(self.times * self.fps - np.arange(len(self.times))) <= GRID_TOLERANCE))

    @property
    def irregular(self) -> bool:
        """True when some frame interval differs from the median interval by more than `IRREGULAR_INTERVAL`."""
        if self.times is None or len(self.times) < 3:
            return False
        steps = np.diff(self.times)
        median = np.median(steps)
        return bool(np.any(np.abs(steps - median) > IRREGULAR_INTERVAL * median))

    def resample(self, values: np.ndarray) -> np.ndarray:
        """Per-frame `values` (T, ...) on the grid: unchanged when the frames are on it, else linearly
        interpolated over the frame times at `k / fps` up to the last frame (the ends held); frames with a
        NaN value are skipped as gaps (all NaN when every frame has one)."""
        values = np.asarray(values, dtype=np.float64)
        if self.on_grid:
            return values
        grid = np.arange(int(self.times[-1] * self.fps + GRID_TOLERANCE) + 1) / self.fps
        flat = values.reshape(len(values), -1)
        seen = ~np.isnan(flat).any(axis=1)
        if not seen.any():
            return np.full((grid.size, *values.shape[1:]), np.nan)
        columns = [np.interp(grid, self.times[seen], column[seen]) for column in flat.T]
        return np.stack(columns, axis=1).reshape(grid.size, *values.shape[1:])

    def _intervals(self) -> str:
        steps = 1000.0 * np.diff(self.times)
        return f"frame intervals {steps.min():.1f}/{np.median(steps):.1f}/{steps.max():.1f} ms min/median/max"

    def describe(self) -> str:
        """How the frames were placed in time, for the parameters of what is computed from them."""
        if self.times is None:
            return f"frame i at i / {self.fps:g} s" + (f" ({self.problem})" if self.problem else "")
        if self.on_grid:
            return f"container timestamps, on the {self.fps:g} fps grid"
        kind = "irregular" if self.irregular else "regular"
        return f"container timestamps, {kind} ({self._intervals()}), resampled to {self.fps:g} fps"

    def warning(self) -> str | None:
        """A one-line warning when the frames were not simply taken at the container's index / fps."""
        if self.problem:
            return f"{self.problem}: frame i taken at i / {self.fps:g} s"
        if self.on_grid:
            return None
        kind = "variable frame rate" if self.irregular else f"frame times off the {self.fps:g} fps grid"
        return f"{kind} ({self._intervals()}): resampled to {self.fps:g} fps over the container timestamps"


def frame_timing(fps: float, times: Sequence[float | None] | None = None) -> FrameTiming:
    """The `FrameTiming` of frames shown at `times` (s, from `timed_frames`); None: frame i at i / fps.
    Times that are missing or do not increase are unusable: frame i at i / fps, with a warning."""
    if times is None:
        return FrameTiming(fps)
    if any(t is None for t in times):
        return FrameTiming(fps, problem="frames without a container timestamp")
    array = np.asarray(times, dtype=np.float64)
    if np.any(np.diff(array) <= 0):
        return FrameTiming(fps, problem="container timestamps do not increase")
    return FrameTiming(fps, array)


def _read_frames_pyav(path: Path, wanted: list[int]) -> np.ndarray:
    """`read_frames` by decoding with PyAV from the start up to the last wanted index."""
    needed, last = set(wanted), max(wanted)
    found: dict[int, np.ndarray] = {}
    for i, frame in enumerate(decoded_frames(path)):
        if i in needed:
            found[i] = frame.to_ndarray(format="rgb24")
        if i == last:
            break
    missing = sorted(needed - found.keys())
    if missing:
        raise MediaError(f"{path}: frame {missing[0]} cannot be decoded", _FIX_CORRUPT)
    return np.stack([found[i] for i in wanted])


def _even_frames(frames: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by repeating the last row/column (yuv420p needs even sizes)."""
    _, height, width, _ = frames.shape
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, pad, mode="edge") if height % 2 or width % 2 else frames


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 (T>0, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def _fit_audio(audio: np.ndarray, audio_sr: int, num_frames: int, rate: Fraction) -> np.ndarray:
    """Mono float32 audio trimmed or zero-padded to exactly the video's duration."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {audio.shape}")
    if audio_sr not in AAC_SAMPLE_RATES:
        raise ValueError(f"AAC cannot store {audio_sr} Hz; resample to one of {AAC_SAMPLE_RATES}")
    n = round(Fraction(num_frames) * audio_sr / rate)
    out = np.zeros(n, np.float32)
    out[: min(n, audio.size)] = audio[:n]
    return out


def _video_stream(container: OutputContainer, frames: np.ndarray, rate: Fraction, crf: int) -> av.VideoStream:
    stream = container.add_stream("libx264", rate=rate)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": str(crf), **({"x264-params": X264_SIMD} if x264_simd() != "auto" else {})}
    stream.codec_context.thread_count = _ENCODER_THREADS
    return stream


def x264_simd() -> str:
    """The SIMD x264 may use on this CPU: "AVX2 (capped)" where the CPU has AVX-512 (numpy's runtime CPU
    detection), else "auto" (what x264 detects). Recorded with each session's versions."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        return "auto"
    return "AVX2 (capped)" if __cpu_features__.get("AVX512F") else "auto"


def _audio_stream(container: OutputContainer, sr: int) -> av.AudioStream:
    stream = container.add_stream("aac", rate=sr)
    stream.layout = "mono"
    stream.bit_rate = _AUDIO_BIT_RATE
    return stream


def _mux_video(container: OutputContainer, stream: av.VideoStream, frames: np.ndarray, rate: Fraction) -> None:
    for i, array in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(array, format="rgb24")
        frame.pts, frame.time_base = i, 1 / rate
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _mux_audio(container: OutputContainer, stream: av.AudioStream, wave: np.ndarray, sr: int) -> None:
    frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
    frame.sample_rate, frame.pts = sr, 0  # pts 0 makes the encoder mark its priming in the edit list
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    *,
    audio: np.ndarray | None = None,
    audio_sr: int | None = None,
    crf: int = 18,
) -> Path:
    """Write RGB uint8 frames (T, H, W, 3) as H.264 mp4, with optional mono AAC audio; atomic.

    `fps` is stored as the nearest fraction with denominator <= 1001 (so 29.97... -> 30000/1001).
    The audio (float32 in [-1, 1] at `audio_sr`) is cut or zero-padded to `T / fps` seconds. Odd frame
    sizes are padded by one edge pixel (see the module docstring). Returns `Path(path)`.
    """
    frames = _even_frames(_check_frames(frames))
    if fps <= 0 or not 0 <= crf <= 51:
        raise ValueError(f"need fps > 0 and 0 <= crf <= 51, got fps={fps}, crf={crf}")
    if (audio is None) != (audio_sr is None):
        raise ValueError("pass audio and audio_sr together")
    rate = Fraction(float(fps)).limit_denominator(1001)
    wave = None if audio is None else _fit_audio(audio, audio_sr, len(frames), rate)
    with atomic_output(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        video = _video_stream(container, frames, rate, crf)
        sound = None if wave is None else _audio_stream(container, audio_sr)
        _mux_video(container, video, frames, rate)
        if sound is not None:
            _mux_audio(container, sound, wave, audio_sr)
    return Path(path)
