"""MM-Diffusion audio -> dance video: music of any length in, uint8 frames at 10 fps out.

    pipe = MMDiffusionPipeline.from_checkpoints(Path("AIST++.pt"), Path("AIST++_SR.pt"), device="cuda")
    frames, meta = pipe.generate(wave_16k, seed=0)       # (T, 256, 256, 3) uint8, T = ceil(10 * seconds)

The model makes 1.6-s clips (16 frames at 10 fps, 25600 samples at 16 kHz). Longer music is cut into
consecutive 1.6-s windows (the last one zero-padded) that are generated independently and
concatenated, then trimmed to the music's duration: there is no temporal continuation, so motion and
appearance jump at every window boundary (`meta["windows"]` lists them). Each window draws from its own
generator seeded by (seed, window index): x_T, eps_a, per step the cross-attention shifts and the step
noise, then the upsampler's start noise (one 3 x 256 x 256 draw shared by all frames of the window).

Defaults follow the official AIST++ script (`ssh_scripts/audio2video_sample_sr.sh`): gradient-guided
DDPM with 1000 steps at the effective guidance scale 3 * 2**20 (see config.py), 64 -> 256 super
resolution by DDIM 25. `method="replacement"`, fewer `steps`, `use_ddim` and `guidance_scale` are options
that metadata records. The input wave must be mono 16 kHz in [-1, 1] (the reference took channel 0).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mibench.errors import ConfigError, MediaError

from .conditional import METHODS, sample_video
from .config import (
    AISTPP_MMD,
    AISTPP_SAMPLER,
    AISTPP_SR,
    OFFICIAL_GUIDANCE_SCALE,
    MMDConfig,
    SamplerDefaults,
    SRConfig,
)
from .diffusion import Schedule, spacing_for
from .load import load_mmd, load_sr
from .sr_unet import SuperResUNet
from .tiny import TINY_MMD, TINY_SAMPLER, TINY_SR, random_init_
from .unet import MultimodalUNet

Progress = Callable[[int, int], None]
"""callback(done, total): denoising steps finished so far (base + upsampler, all windows) and in all."""


def window_generator(seed: int, window: int) -> torch.Generator:
    """The CPU generator of one window, independent across (seed, window) pairs."""
    state = np.random.SeedSequence([seed, window]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """[F, 3, H, W] in [-1, 1] -> [F, H, W, 3] uint8, truncating like the reference writer."""
    return ((video + 1) * 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class MMDiffusionPipeline:
    """The coupled U-Net, the optional upsampler and the sampler defaults."""

    def __init__(
        self, mmd: MultimodalUNet, sr: SuperResUNet | None = None, *, defaults: SamplerDefaults = AISTPP_SAMPLER
    ):
        self.mmd, self.sr, self.defaults = mmd, sr, defaults
        frames, (audio_channels, samples) = mmd.config.frames, mmd.config.audio_size
        self.fps: float = defaults.fps
        self.sample_rate: int = defaults.sample_rate
        self.frames_per_clip: int = frames
        self.clip_samples: int = samples
        self.clip_seconds: float = frames / self.fps
        if audio_channels != 1 or samples * self.fps != frames * self.sample_rate:
            raise ConfigError(
                f"the model's clip ({frames} frames, {audio_channels} x {samples} samples) does not fit "
                f"mono audio at {self.sample_rate} Hz and {self.fps} fps"
            )
        self.samples_per_frame = samples // frames

    @classmethod
    def from_checkpoints(
        cls,
        base: Path,
        sr: Path | None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        mmd_config: MMDConfig = AISTPP_MMD,
        sr_config: SRConfig = AISTPP_SR,
        defaults: SamplerDefaults = AISTPP_SAMPLER,
    ) -> MMDiffusionPipeline:
        """Load `AIST++.pt` (and `AIST++_SR.pt`, if given); .pt or .safetensors, strictly.

        `dtype` (e.g. torch.float16 on a GPU, as the official script) applies to the convolutions only.
        """
        mmd = load_mmd(base, mmd_config, device=device, dtype=dtype)
        upsampler = load_sr(sr, sr_config, device=device, dtype=dtype) if sr is not None else None
        return cls(mmd, upsampler, defaults=defaults)

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> MMDiffusionPipeline:
        """The tiny preset (see tiny.py): random weights from `seed` (drawn on the CPU), no download."""
        generator = torch.Generator().manual_seed(seed)
        mmd, sr = MultimodalUNet(TINY_MMD), SuperResUNet(TINY_SR)
        random_init_(mmd, generator)
        random_init_(sr, generator)
        return cls(mmd.eval().requires_grad_(False).to(device), sr.eval().requires_grad_(False).to(device),
                   defaults=TINY_SAMPLER)

    @property
    def device(self) -> torch.device:
        return next(self.mmd.parameters()).device

    def generate(
        self,
        audio_16k: np.ndarray,
        *,
        seed: int = 0,
        method: str | None = None,
        steps: int | None = None,
        use_ddim: bool = False,
        super_resolve: bool = True,
        guidance_scale: float | None = None,
        callback: Progress | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Frames (T, H, W, 3) uint8 at `fps` covering the wave, and metadata (windows, sizes, sampler).

        method: "gradient" (official) or "replacement"; steps: sampler steps (default: the preset's, 1000
        for AIST++), respaced evenly (DDPM) or by DDIM's stride; guidance_scale: the effective gradient
        scale (default 3 * 2**20, the official fp16 script's).
        """
        wave = self._check_wave(audio_16k)
        method = method or self.defaults.method
        if method not in METHODS:
            raise ConfigError(f"unknown MM-Diffusion method {method!r}", f"use one of {', '.join(METHODS)}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        if super_resolve:
            self.require_upsampler()
        spacing = spacing_for(self.defaults.steps if steps is None else steps, ddim=use_ddim)
        schedule = Schedule(spacing)
        sr_schedule = Schedule(f"ddim{self.defaults.sr_steps}") if super_resolve else None
        scale = None
        if method == "gradient":
            scale = self.defaults.guidance_scale if guidance_scale is None else guidance_scale

        num_frames = -(-len(wave) // self.samples_per_frame)
        num_windows = -(-num_frames // self.frames_per_clip)
        padded = np.zeros(num_windows * self.clip_samples, dtype=np.float32)
        padded[: len(wave)] = wave
        total = num_windows * (schedule.num_steps + (sr_schedule.num_steps if sr_schedule else 0))
        done = 0

        def on_step() -> None:
            nonlocal done
            done += 1
            if callback is not None:
                callback(done, total)

        clips = []
        for k in range(num_windows):
            generator = window_generator(seed, k)
            cond = torch.from_numpy(padded[k * self.clip_samples : (k + 1) * self.clip_samples]).to(self.device)
            video = sample_video(
                self.mmd,
                schedule,
                cond.reshape(1, 1, -1),
                (1, *self.mmd.config.video_size),
                method=method,
                guidance_scale=scale or 0.0,
                generator=generator,
                ddim=use_ddim,
                on_step=on_step,
            )[0]
            if sr_schedule is not None:
                video = self.upsample(video, sr_schedule, generator, on_step=on_step)
            clips.append(to_uint8(video))
        frames = np.concatenate(clips)[:num_frames]
        return frames, self._metadata(wave, frames, method, scale, schedule, sr_schedule, use_ddim, seed)

    def upsample(
        self,
        video: torch.Tensor,
        schedule: Schedule,
        generator: torch.Generator,
        *,
        on_step: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Frames [F, 3, h, w] -> [F, 3, H, W] by DDIM (eta 0) from one noise shared by all frames.

        The official script feeds the base sampler's final state as is (not clipped to [-1, 1]).
        """
        sr = self.require_upsampler()
        size = sr.config.large_size
        x = torch.randn((1, 3, size, size), generator=generator).to(self.device).repeat(len(video), 1, 1, 1)
        with torch.no_grad():
            for i in reversed(range(schedule.num_steps)):
                eps = sr(x, schedule.model_timesteps(i, len(x), x.device), video)[:, :3]
                x = schedule.ddim_step(x, eps, i)[0]
                if on_step is not None:
                    on_step()
        return x

    def require_upsampler(self) -> SuperResUNet:
        """The upsampler; ConfigError when the pipeline was built without one."""
        if self.sr is None:
            raise ConfigError(
                "super-resolution needs the upsampler weights", "load AIST++_SR.pt or use super_resolve=False"
            )
        return self.sr

    def _check_wave(self, audio: np.ndarray) -> np.ndarray:
        wave = np.asarray(audio)
        fix = f"pass mono float audio in [-1, 1] resampled to {self.sample_rate} Hz"
        if wave.ndim != 1 or wave.size == 0 or not np.issubdtype(wave.dtype, np.floating):
            raise MediaError(f"MM-Diffusion needs a non-empty 1-D float wave, got {wave.dtype} {wave.shape}", fix)
        if not np.isfinite(wave).all():
            raise MediaError("the audio wave contains NaN or infinite samples", fix)
        return wave.astype(np.float32)

    def _metadata(
        self,
        wave: np.ndarray,
        frames: np.ndarray,
        method: str,
        scale: float | None,
        schedule: Schedule,
        sr_schedule: Schedule | None,
        use_ddim: bool,
        seed: int,
    ) -> dict[str, Any]:
        duration = len(wave) / self.sample_rate
        num_frames, per_clip = len(frames), self.frames_per_clip
        windows = [
            {
                "index": k,
                "start_seconds": round(k * self.clip_seconds, 6),
                "end_seconds": round(min((k + 1) * self.clip_seconds, duration), 6),
                "padded_seconds": round(max(0.0, (k + 1) * self.clip_seconds - duration), 6),
                "first_frame": k * per_clip,
                "end_frame": min((k + 1) * per_clip, num_frames),
            }
            for k in range(-(-num_frames // per_clip))
        ]
        return {
            "model": "mmdiffusion",
            "method": method,
            "guidance_scale": scale,
            "official_guidance_scale": OFFICIAL_GUIDANCE_SCALE,
            "sampler": "ddim" if use_ddim else "ddpm",
            "steps": schedule.num_steps,
            "respacing": schedule.spacing,
            "super_resolved": sr_schedule is not None,
            "sr_steps": sr_schedule.num_steps if sr_schedule else None,
            "seed": seed,
            "fps": self.fps,
            "sample_rate": self.sample_rate,
            "duration_seconds": duration,
            "num_frames": num_frames,
            "base_size": list(self.mmd.config.video_size[2:]),
            "size": list(frames.shape[1:3]),
            "clip_seconds": self.clip_seconds,
            "windows": windows,
            "continuous": False,
            "note": (
                f"{self.clip_seconds:g}-s windows are generated independently (no temporal continuation): "
                "motion and appearance jump at every window boundary; the last window's music is zero-padded "
                "and its frames past the music's end are dropped"
            ),
        }
