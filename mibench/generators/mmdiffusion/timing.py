"""Wall-clock timing of MM-Diffusion for `mibench bench`: one denoising step, one upsampler step, one clip.

Steps run on random inputs at the loaded model's full size (batch 1 = one 1.6-s window), after one
warm-up call; CUDA work is synchronised before each clock read. The CLI formats the returned dicts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from .conditional import gradient_step, replacement_step
from .diffusion import Schedule
from .pipeline import MMDiffusionPipeline


def _seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> list[float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def time_denoise_step(
    pipe: MMDiffusionPipeline, *, method: str = "gradient", use_ddim: bool = False, repeats: int = 3
) -> dict[str, Any]:
    """Seconds for one audio-conditioned step of the coupled U-Net (gradient = forward + backward)."""
    model, device = pipe.mmd, pipe.device
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator).to(device)

    cfg, schedule = model.config, Schedule()
    video, cond, eps = randn(1, *cfg.video_size), randn(1, *cfg.audio_size).clamp(-1, 1), randn(1, *cfg.audio_size)
    denoise = partial(model, shifts=model.draw_shifts(generator))
    noise = {} if use_ddim else {"noise_video": randn(*video.shape), "noise_audio": randn(*eps.shape)}

    def step() -> object:
        i = schedule.num_steps - 1
        if method == "gradient":
            scale = pipe.defaults.guidance_scale
            return gradient_step(denoise, schedule, video, cond, eps, i, guidance_scale=scale, ddim=use_ddim, **noise)
        return replacement_step(denoise, schedule, video, cond, eps, i, ddim=use_ddim, **noise)

    times = _seconds(step, device, repeats)
    return {"stage": "base_step", "method": method, "seconds": statistics.median(times), "times": times}


def time_upsample_step(pipe: MMDiffusionPipeline, *, repeats: int = 3) -> dict[str, Any]:
    """Seconds for one DDIM step of the upsampler over the frames of one window."""
    sr, device, frames = pipe.require_upsampler(), pipe.device, pipe.frames_per_clip
    generator = torch.Generator().manual_seed(0)
    size, small = sr.config.large_size, pipe.mmd.config.video_size[-1]
    x = torch.randn((frames, 3, size, size), generator=generator).to(device)
    low = torch.randn((frames, 3, small, small), generator=generator).clamp(-1, 1).to(device)
    t = torch.full((frames,), 500, dtype=torch.long, device=device)

    def step() -> object:
        with torch.no_grad():
            return sr(x, t, low)

    times = _seconds(step, device, repeats)
    return {"stage": "upsample_step", "frames": frames, "seconds": statistics.median(times), "times": times}


def time_clip(pipe: MMDiffusionPipeline, **generate_options: Any) -> dict[str, Any]:
    """Seconds to generate one window (clip_seconds of random music) with `generate`'s options."""
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, pipe.clip_samples).astype(np.float32)
    start = time.perf_counter()
    _, meta = pipe.generate(wave, **generate_options)
    if pipe.device.type == "cuda":
        torch.cuda.synchronize(pipe.device)
    seconds = time.perf_counter() - start
    return {
        "stage": "clip",
        "seconds": seconds,
        "clip_seconds": pipe.clip_seconds,
        "seconds_per_video_second": seconds / pipe.clip_seconds,
        "settings": {k: meta[k] for k in ("method", "sampler", "steps", "super_resolved", "sr_steps")},
    }
