"""The MM-Diffusion pipeline on the tiny preset: long music -> concatenated 1.6-s windows of uint8 frames,
deterministic under a seed; sampler options; input errors; the timing helpers for `mibench bench`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mibench.errors import ConfigError, MediaError
from mibench.generators.mmdiffusion import (
    OFFICIAL_GUIDANCE_SCALE,
    MMDiffusionPipeline,
    time_clip,
    time_denoise_step,
    time_upsample_step,
)


@pytest.fixture(scope="module")
def pipe() -> MMDiffusionPipeline:
    return MMDiffusionPipeline.tiny(seed=0)


def music(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    noise = np.random.default_rng(seed).normal(0, 0.05, t.size)
    return (0.4 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.1) + noise).astype(np.float32)


def test_long_music_is_covered_by_concatenated_windows(pipe: MMDiffusionPipeline) -> None:
    wave = music(2.5)
    progress: list[tuple[int, int]] = []
    frames, meta = pipe.generate(wave, seed=3, method="replacement", steps=2, callback=lambda *p: progress.append(p))
    assert (pipe.fps, pipe.sample_rate, pipe.clip_seconds) == (10.0, 16000, 1.6)
    assert frames.dtype == np.uint8 and frames.shape == (25, 32, 32, 3)
    assert frames.std() > 0
    assert meta["num_frames"] == 25 and meta["size"] == [32, 32] and meta["base_size"] == [16, 16]
    assert meta["continuous"] is False and "independently" in meta["note"]
    assert [(w["first_frame"], w["end_frame"]) for w in meta["windows"]] == [(0, 16), (16, 25)]
    assert [(w["start_seconds"], w["end_seconds"]) for w in meta["windows"]] == [(0.0, 1.6), (1.6, 2.5)]
    assert meta["windows"][-1]["padded_seconds"] == pytest.approx(0.7)
    assert (meta["method"], meta["guidance_scale"], meta["sampler"], meta["steps"]) == ("replacement", None, "ddpm", 2)
    assert (meta["super_resolved"], meta["sr_steps"]) == (True, pipe.defaults.sr_steps)
    total = 2 * (2 + pipe.defaults.sr_steps)
    assert progress == [(done, total) for done in range(1, total + 1)]
    again, _ = pipe.generate(wave, seed=3, method="replacement", steps=2)
    assert np.array_equal(frames, again)


def test_windows_are_seeded_independently(pipe: MMDiffusionPipeline) -> None:
    """Window k depends on (seed, k) and its own music only: a prefix of the music gives a prefix of the video."""
    wave = music(3.2, seed=1)
    options = {"method": "replacement", "steps": 2, "super_resolve": False}
    full, _ = pipe.generate(wave, seed=0, **options)
    first, _ = pipe.generate(wave[:25600], seed=0, **options)
    assert full.shape == (32, 16, 16, 3) and np.array_equal(full[:16], first)
    other_seed, _ = pipe.generate(wave[:25600], seed=1, **options)
    assert not np.array_equal(first, other_seed)
    silent, _ = pipe.generate(np.zeros(25600, np.float32), seed=0, **options)
    assert not np.array_equal(first, silent)  # the music conditions the video


def test_gradient_method_uses_the_official_effective_scale(pipe: MMDiffusionPipeline) -> None:
    wave = music(1.0)
    frames, meta = pipe.generate(wave, seed=0, steps=2, super_resolve=False)
    assert frames.shape == (10, 16, 16, 3)
    assert meta["method"] == "gradient" and meta["guidance_scale"] == OFFICIAL_GUIDANCE_SCALE == 3 * 2**20
    weak, meta = pipe.generate(wave, seed=0, steps=2, super_resolve=False, guidance_scale=3.0, use_ddim=True)
    assert (meta["guidance_scale"], meta["sampler"], meta["respacing"]) == (3.0, "ddim", "ddim2")
    assert weak.shape == frames.shape


def test_bad_inputs_fail_clearly(pipe: MMDiffusionPipeline) -> None:
    wave = music(0.5)
    for bad in (np.stack([wave, wave]), (wave * 32767).astype(np.int16), wave[:0], np.full(100, np.nan, np.float32)):
        with pytest.raises(MediaError):
            pipe.generate(bad)
    with pytest.raises(ConfigError, match="unknown MM-Diffusion method"):
        pipe.generate(wave, method="inpaint")
    with pytest.raises(ConfigError, match="steps must be between"):
        pipe.generate(wave, steps=1)
    no_sr = MMDiffusionPipeline(pipe.mmd, None, defaults=pipe.defaults)
    with pytest.raises(ConfigError, match="upsampler weights"):
        no_sr.generate(wave)


def test_shifts_come_from_the_generator(pipe: MMDiffusionPipeline) -> None:
    model = pipe.mmd
    draws = [model.draw_shifts(torch.Generator().manual_seed(5)) for _ in range(2)]
    assert draws[0] == draws[1] and list(draws[0]) == model.shift_blocks
    assert all(0 <= s <= blk.max_shift for blk in model.cross_blocks if blk.random_shift for s in [draws[0][blk.name]])
    video, audio = torch.zeros(1, *model.config.video_size), torch.zeros(1, *model.config.audio_size)
    t = torch.tensor([10])
    with torch.no_grad():
        a = model(video, audio, t, generator=torch.Generator().manual_seed(5))
        b = model(video, audio, t, shifts=draws[0])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_timing_helpers(pipe: MMDiffusionPipeline) -> None:
    assert time_denoise_step(pipe, method="replacement", repeats=1)["seconds"] > 0
    assert time_upsample_step(pipe, repeats=1)["frames"] == 16
    clip = time_clip(pipe, method="replacement", steps=2, super_resolve=False)
    assert clip["seconds"] > 0 and clip["settings"]["steps"] == 2
