"""MM-Diffusion (CVPR 2023) audio -> video baseline: coupled audio-video U-Net, zero-shot audio-conditioned
sampling (replacement and gradient guidance), 64 -> 256 frame upsampler, long-music windowing.

Port of researchmm/MM-Diffusion @7250222 (MIT). Modules: config (official AIST++ settings), blocks, unet,
sr_unet, diffusion (schedule, respacing, DDPM/DDIM steps), conditional (the two a2v samplers), load
(strict checkpoint loading), tiny (the tiny preset), pipeline (`MMDiffusionPipeline`), timing (bench).
"""

from .config import AISTPP_MMD, AISTPP_SAMPLER, AISTPP_SR, OFFICIAL_GUIDANCE_SCALE, MMDConfig, SamplerDefaults, SRConfig
from .pipeline import MMDiffusionPipeline
from .timing import time_clip, time_denoise_step, time_upsample_step

__all__ = [
    "AISTPP_MMD",
    "AISTPP_SAMPLER",
    "AISTPP_SR",
    "OFFICIAL_GUIDANCE_SCALE",
    "MMDConfig",
    "MMDiffusionPipeline",
    "SRConfig",
    "SamplerDefaults",
    "time_clip",
    "time_denoise_step",
    "time_upsample_step",
]
