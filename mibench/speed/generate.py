"""`mibench bench generate`: seconds per video and per denoising step of a generator, and peak memory.

The first run is a warm-up and is not counted; the median of `repeats` timed runs is reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from mibench.generators.base import build_generator
from mibench.media.audio import write_wav
from mibench.media.synth import drum_track
from mibench.speed.memory import peak_memory_kind, peak_memory_mib, reset_peak
from mibench.suite.jobs import Job

SAMPLE_RATE = 16000


def bench_generator(model: str, preset: str, *, repeats: int = 3, frames: int | None = None,
                    weights: Path | None = None, device: str | None = None) -> dict:
    """Seconds per video and, for diffusion models, per denoising step, on synthetic music."""
    generator = build_generator(model, preset, weights=weights, device=device, options={"num_frames": frames})
    device = generator.device
    with tempfile.TemporaryDirectory() as tmp:
        music = Path(tmp) / "music-120bpm.wav"
        write_wav(music, drum_track(120, 30.0, sr=SAMPLE_RATE), SAMPLE_RATE)
        job = Job(model=model, suite="bench", music_id="music-120bpm", music_path=str(music), prompt_id="bench",
                  prompt="a professional dancer dancing in a studio with a white backdrop", seed=0,
                  num_frames=generator.num_frames, bpm=120.0)
        video_s, step_s = [], []
        reset_peak(device)
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
        "peak_memory_kind": peak_memory_kind(device),
    }
    if step_s:
        result["seconds_per_step_median"] = round(statistics.median(step_s), 5)
        result["steps_timed"] = len(step_s)
    return result
