"""`mibench bench metrics`: seconds of metric computation per minute of video, cold, with the music
already tracked, and with N worker processes (as `mibench metrics --workers N`), and peak memory.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mibench.errors import MediaError
from mibench.media.synth import dancer_video, drum_track
from mibench.media.video import probe, write_mp4
from mibench.metrics.bas import PUBLISHED
from mibench.metrics.compute import compute_video_metrics
from mibench.speed.memory import peak_memory_kind, peak_memory_mib
from mibench.stages.measure import measure_afresh


def worker_throughput(video: Path, warm: Path, *, workers: int, copies: int, options: dict) -> float:
    """Wall seconds per video while `workers` processes measure `copies` copies of `video`, each from
    scratch (no music shared); the processes start and measure `warm` before the clock starts."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(measure_afresh, [str(warm)] * workers, [options] * workers))
        start = time.perf_counter()
        results = list(pool.map(measure_afresh, [str(video)] * copies, [options] * copies))
        elapsed = time.perf_counter() - start
    errors = [error for _, error in results if error]
    if errors:
        raise MediaError(errors[0], "pass a readable video")
    return elapsed / copies



def _write_dancer(path: Path, bpm: float, seconds: float, fps: float, size: tuple[int, int], figure: str) -> None:
    frames = dancer_video(bpm, seconds, fps=fps, size=size, figure=figure)
    write_mp4(path, frames, fps, audio=drum_track(bpm, seconds), audio_sr=16000)


def bench_metrics(video: Path | None = None, *, seconds: float = 20.0, size: tuple[int, int] = (480, 848),
                  fps: float = 30.0, bpm: float = 120.0, method: str = "diff",
                  recipes: Sequence[str] = PUBLISHED, repeats: int = 1, pose: bool = False,
                  workers: int = 1) -> dict:
    """Time `compute_video_metrics` on `video`, or on a synthetic on-beat dancer with a drum track
    (`seconds` long, `size` = (H, W), `fps`; the "person" figure with `pose`) written to a temp folder
    first (not timed). A one-second clip is computed first so librosa's numba kernels are compiled
    before the clock starts. Returns the clip's length and size, the median over `repeats` timed runs
    of the wall and CPU seconds taken (CPU: this process, all its threads; on a shared machine wall time
    includes waiting for a core), wall seconds per minute of video and x real time, cold and with the
    music already tracked; with `workers` > 1 also the throughput of that many worker processes
    (`worker_throughput`, 2 x workers x repeats copies)."""
    with tempfile.TemporaryDirectory(prefix="mibench-bench-") as tmp:
        warm = Path(tmp) / "warm.mp4"
        options = {"bpm": bpm, "method": method, "recipes": tuple(recipes), "pose": pose}
        _write_dancer(warm, bpm, 1.0, fps, (64, 64), "stick")
        compute_video_metrics(warm, **options)
        if video is None:
            video = Path(tmp) / "bench.mp4"
            # in a child process: the clip's frames (730 MB for 20 s at 480x848) stay out of this
            # process's peak memory, which `mibench bench metrics` reports
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as child:
                child.submit(_write_dancer, video, bpm, seconds, fps, size, "person" if pose else "stick").result()
        info = probe(video)
        walls, cpus, shared = [], [], []
        for _ in range(repeats):
            cache: dict = {}
            start, cpu = time.perf_counter(), time.process_time()
            compute_video_metrics(video, music_cache=cache, **options)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
            start = time.perf_counter()
            compute_video_metrics(video, music_cache=cache, **options)
            shared.append(time.perf_counter() - start)
        if workers > 1:
            per_video = worker_throughput(video, warm, workers=workers, copies=2 * workers * repeats,
                                          options=options)
    elapsed, cpu, again = statistics.median(walls), statistics.median(cpus), statistics.median(shared)
    return {"peak_memory_mib": round(peak_memory_mib(), 1), "peak_memory_kind": peak_memory_kind(),
            "video_s": info.duration, "width": info.width, "height": info.height, "fps": info.fps,
            "method": method, "pose": pose, "recipes": list(recipes), "repeats": repeats, "seconds": elapsed,
            "cpu_seconds": cpu, "seconds_runs": walls, "seconds_per_minute": elapsed * 60.0 / info.duration,
            "x_realtime": info.duration / elapsed,
            "seconds_per_minute_shared_music": again * 60.0 / info.duration,
            "x_realtime_shared_music": info.duration / again} | (
        {"workers": workers, "seconds_per_video_workers": per_video, "x_realtime_workers": info.duration / per_video}
        if workers > 1 else {})
