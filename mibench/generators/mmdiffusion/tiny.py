"""The tiny MM-Diffusion preset: the real code path with small configs and seeded random weights.

Same clip geometry as AIST++ (16 frames at 10 fps, 1.6 s of 16 kHz audio, the [1, 4, 8] cross-attention
windows with the middle cross-attention), but 32 channels, one ResBlock per level, 16x16 frames upsampled
to 32x32, 4 base and 2 upsampler steps by default. Weights are random and non-zero everywhere (including the
convs the reference zero-initialises), so every block influences the output; the video is noise-like.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import MMDConfig, SamplerDefaults, SRConfig

TINY_MMD = MMDConfig(
    video_size=(16, 3, 16, 16),
    audio_size=(1, 25600),
    model_channels=32,
    channel_mult=(1, 1, 1, 1),
    num_res_blocks=1,
    num_heads=4,
    num_head_channels=16,
)
TINY_SR = SRConfig(
    large_size=32,
    small_size=16,
    model_channels=32,
    channel_mult=(1, 1),
    num_res_blocks=1,
    attention_ds=(2,),
    num_heads=4,
)
TINY_SAMPLER = SamplerDefaults(steps=4, sr_steps=2)


def random_init_(module: nn.Module, generator: torch.Generator) -> None:
    """Seeded random weights in named_parameters order: GroupNorm weight 1 + 0.1 n and bias 0.1 n, other
    biases 0.05 n, weights n / sqrt(fan_in), n ~ N(0, 1)."""
    norm_params = {id(p) for m in module.modules() if isinstance(m, nn.GroupNorm) for p in m.parameters()}
    with torch.no_grad():
        for name, param in module.named_parameters():
            n = torch.randn(param.shape, generator=generator)
            if id(param) in norm_params:
                param.copy_(1 + 0.1 * n if name.endswith("weight") else 0.1 * n)
            elif param.dim() == 1:
                param.copy_(0.05 * n)
            else:
                param.copy_(n / math.sqrt(param[0].numel()))
