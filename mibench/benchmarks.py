"""`mibench bench ...`: speed and peak memory of each stage, as medians of repeated timed runs.

Peak memory is the process's peak resident set size on CPU (`ru_maxrss`, which never decreases) and
`torch.cuda.max_memory_allocated` on a GPU. The first run of each measurement is a warm-up and is
not counted.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mibench.bench.jobs import Job
from mibench.generators.base import build_generator
from mibench.media.audio import write_wav
from mibench.media.synth import drum_track

SAMPLE_RATE = 16000


def peak_memory_mib(device: str = "cpu") -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def bench_generator(model: str, preset: str, *, repeats: int = 3, frames: int | None = None,
                    weights: Path | None = None, device: str = "cpu") -> dict:
    """Seconds per video and, for diffusion models, per denoising step, on synthetic music."""
    generator = build_generator(model, preset, weights=weights, device=device, options={"num_frames": frames})
    with tempfile.TemporaryDirectory() as tmp:
        music = Path(tmp) / "music-120bpm.wav"
        write_wav(music, drum_track(120, 30.0, sr=SAMPLE_RATE), SAMPLE_RATE)
        job = Job(model=model, suite="bench", music_id="music-120bpm", music_path=str(music), prompt_id="bench",
                  prompt="a professional dancer dancing in a studio with a white backdrop", seed=0,
                  num_frames=generator.num_frames, bpm=120.0)
        video_s, step_s = [], []
        _reset_peak(device)
        for i in range(repeats + 1):
            start = time.perf_counter()
            info = generator.generate(job, Path(tmp) / f"bench-{i}.mp4")
            if i == 0:
                continue
            video_s.append(time.perf_counter() - start)
            step_s.extend(info.get("step_seconds", []))
    result = {
        "model": model, "preset": preset, "device": device, "repeats": repeats,
        "num_frames": generator.num_frames, "settings": generator.settings,
        "seconds_per_video_median": round(statistics.median(video_s), 4),
        "seconds_per_video_runs": [round(s, 4) for s in video_s],
        "peak_memory_mib": round(peak_memory_mib(device), 1),
        "peak_memory_kind": "cuda max allocated" if device.startswith("cuda") else "process peak RSS",
    }
    if step_s:
        result["seconds_per_step_median"] = round(statistics.median(step_s), 5)
        result["steps_timed"] = len(step_s)
    return result


def bench_metrics(*, seconds: float = 20.0, repeats: int = 3, video: Path | None = None, pose: bool = False,
                  workers: int = 1) -> dict:
    """Seconds of metric computation per minute of 480x848 video (median of `repeats`)."""
    from mibench.metrics.compute import bench_metrics as measure

    result = measure(video, seconds=seconds, repeats=repeats, pose=pose, workers=workers)
    return {**result, "peak_memory_mib": round(peak_memory_mib(), 1), "peak_memory_kind": "process peak RSS"}
