"""The MusicInfuser / Mochi sampler on diffusers parts: text conditions, seeded noise, the guided Euler loop.

Equal to genmo's `sample_model` (official `inference.py`, `batch_cfg=False`) when
- the schedule is diffusers' `linear_quadratic_schedule(steps, 0.025)` through
  `FlowMatchEulerDiscreteScheduler(invert_sigmas=True)` (DiT timestep = (1 - sigma) * 1000);
- CFG is over text only, `uncond + s * (cond - uncond)` with s = 6.0, and the same music goes to both
  branches;
- the negative (empty) prompt has an all-False mask: genmo zeroes its tokens and mask, and masked
  features have no influence, so its features are zeros here;
- latents, the CFG combination, the Euler update and the timestep stay float32 whatever the weight dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, MochiTransformer3DModel
from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule

from .zica import AUDIO_FEAT_KEY

THRESHOLD_NOISE = 0.025
VAE_SPATIAL, VAE_TEMPORAL = 8, 6


@dataclass
class TextCondition:
    """T5 token features (B, L, D) and their mask (B, L), True for real tokens."""

    embeds: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def empty_like(cls, other: TextCondition) -> TextCondition:
        """The zeroed empty prompt: zero features, all-False mask."""
        return cls(torch.zeros_like(other.embeds), torch.zeros_like(other.mask, dtype=torch.bool))


def make_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """Mochi's scheduler (the hub config): flow matching, Euler, sigmas inverted to 1 - sigma."""
    return FlowMatchEulerDiscreteScheduler(invert_sigmas=True)


def latent_shape(num_frames: int, height: int, width: int, channels: int = 12) -> tuple[int, ...]:
    return (1, channels, (num_frames - 1) // VAE_TEMPORAL + 1, height // VAE_SPATIAL, width // VAE_SPATIAL)


def initial_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """float32 N(0, 1) from a CPU generator: genmo's `torch.manual_seed(seed); torch.randn(shape)` on CPU."""
    return torch.randn(tuple(shape), generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def dit_to_vae_latents(latents: torch.Tensor, vae_config: Any) -> torch.Tensor:
    """Undo the DiT's per-channel normalisation: `latents * std / scaling_factor + mean`.

    `vae_config` is an `AutoencoderKLMochi` config (anything with `latents_mean`, `latents_std`,
    `scaling_factor`)."""
    view = (1, -1) + (1,) * (latents.ndim - 2)
    mean = torch.tensor(vae_config.latents_mean, dtype=latents.dtype, device=latents.device).view(view)
    std = torch.tensor(vae_config.latents_std, dtype=latents.dtype, device=latents.device).view(view)
    return latents * std / vae_config.scaling_factor + mean


@torch.no_grad()
def denoise(transformer: MochiTransformer3DModel, scheduler: FlowMatchEulerDiscreteScheduler,
            noise: torch.Tensor, cond: TextCondition, uncond: TextCondition, *, steps: int = 64,
            guidance_scale: float = 6.0, audio_feat: torch.Tensor | None = None, batch_cfg: bool = False,
            threshold_noise: float = THRESHOLD_NOISE, callback: Callable[[int, int], None] | None = None,
            ) -> torch.Tensor:
    """The guided Euler loop from `noise` to the final DiT-space latents (float32).

    `audio_feat` (music features, for a transformer with ZICA) goes to both CFG branches. `batch_cfg`
    runs both branches as one batch of 2 (faster on large GPUs, twice the activation memory); the
    default runs them one after the other, as the official inference. `callback(step, steps)` runs
    after every step.
    """
    sigmas = np.array(linear_quadratic_schedule(steps, threshold_noise))
    scheduler.set_timesteps(sigmas=sigmas, device=noise.device)
    scheduler.set_begin_index(0)
    attention_kwargs = None if audio_feat is None else {AUDIO_FEAT_KEY: audio_feat}
    dtype = transformer.dtype

    def velocity(latents: torch.Tensor, timestep: torch.Tensor, text: TextCondition) -> torch.Tensor:
        return transformer(
            hidden_states=latents.to(dtype),
            encoder_hidden_states=text.embeds.to(dtype),
            timestep=timestep.expand(latents.shape[0]),
            encoder_attention_mask=text.mask,
            attention_kwargs=attention_kwargs,
            return_dict=False,
        )[0].float()

    if batch_cfg:
        both = TextCondition(torch.cat([uncond.embeds, cond.embeds]), torch.cat([uncond.mask, cond.mask]))
    latents = noise.float()
    for step, timestep in enumerate(scheduler.timesteps):
        if batch_cfg:
            v_uncond, v_cond = velocity(torch.cat([latents, latents]), timestep, both).chunk(2)
        else:
            v_cond = velocity(latents, timestep, cond)
            v_uncond = velocity(latents, timestep, uncond)
        guided = v_uncond + guidance_scale * (v_cond - v_uncond)
        latents = scheduler.step(guided, timestep, latents, return_dict=False)[0]
        if callback is not None:
            callback(step + 1, steps)
    return latents
