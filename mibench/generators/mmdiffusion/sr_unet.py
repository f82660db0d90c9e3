"""The frame-wise 64 -> 256 upsampler of MM-Diffusion (`AIST++_SR.pt`): guided-diffusion's SuperResModel.

forward(x_t [N, 3, H, W], timesteps [N], low_res [N, 3, h, w]) -> [N, 6, H, W] (eps, then variance
logits when learn_sigma). low_res is resized to H x W bilinearly (align_corners False) and concatenated
after the noisy channels. Differences from the coupled U-Net that matter for numerics: resampling comes
before the conv in up/down ResBlocks, ResBlock output convs are 3x3, time_embed_dim = 4 C, attention
splits heads before q/k/v (legacy order), norms are plain GroupNorms (keys `....0.weight`).
Ported from openai/guided-diffusion via researchmm/MM-Diffusion `mm_diffusion/image_unet.py` (MIT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AttentionBlock, GroupNormF32, heads_for, timestep_embedding
from .config import SRConfig


def _resample(x: torch.Tensor, mode: str) -> torch.Tensor:
    return F.avg_pool2d(x, 2) if mode == "down" else F.interpolate(x, scale_factor=2, mode="nearest")


class SRResBlock(nn.Module):
    """guided-diffusion ResBlock: norm -> SiLU -> [resample] -> 3x3 conv; FiLM norm -> SiLU -> 3x3 conv."""

    def __init__(
        self,
        channels: int,
        out_channels: int,
        emb_channels: int,
        *,
        use_scale_shift_norm: bool,
        resample: str | None = None,
    ):
        super().__init__()
        self.resample = resample
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNormF32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        # index 2 held Dropout in the reference (p = 0 at sampling); kept so that the conv key stays at .3
        self.out_layers = nn.Sequential(
            GroupNormF32(out_channels), nn.SiLU(), nn.Identity(), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection: nn.Module = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.resample is None:
            h = self.in_layers(x)
        else:
            h = self.in_layers[-1](_resample(self.in_layers[:-1](x), self.resample))
            x = _resample(x, self.resample)
        emb_out = self.emb_layers(emb).to(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class SuperResUNet(nn.Module):
    """guided-diffusion SuperResModel; keys `time_embed`, `input_blocks`, `middle_block`, `output_blocks`, `out`."""

    def __init__(self, config: SRConfig):
        super().__init__()
        self.config = config
        cfg, base = config, config.model_channels
        emb_dim = 4 * base
        heads_up = cfg.num_heads if cfg.num_heads_upsample == -1 else cfg.num_heads_upsample

        def res_block(cin: int, cout: int, resample: str | None = None) -> SRResBlock:
            return SRResBlock(cin, cout, emb_dim, use_scale_shift_norm=cfg.use_scale_shift_norm, resample=resample)

        def attention(ch: int, heads: int) -> AttentionBlock:
            return AttentionBlock(ch, heads_for(ch, heads, cfg.num_head_channels), GroupNormF32(ch), legacy_order=True)

        self.time_embed = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        ch = input_ch = int(cfg.channel_mult[0] * base)
        self.input_blocks = nn.ModuleList([nn.ModuleList([nn.Conv2d(6, ch, 3, padding=1)])])
        skip_channels, ds = [ch], 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                out = int(mult * base)
                block: list[nn.Module] = [res_block(ch, out)]
                if ds in cfg.attention_ds:
                    block.append(attention(out, cfg.num_heads))
                self.input_blocks.append(nn.ModuleList(block))
                ch = out
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(nn.ModuleList([res_block(ch, ch, "down")]))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = nn.ModuleList([res_block(ch, ch), attention(ch, cfg.num_heads), res_block(ch, ch)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                out = int(mult * base)
                block = [res_block(ch + skip_channels.pop(), out)]
                ch = out
                if ds in cfg.attention_ds:
                    block.append(attention(ch, heads_up))
                if level and i == cfg.num_res_blocks:
                    block.append(res_block(ch, ch, "up"))
                    ds //= 2
                self.output_blocks.append(nn.ModuleList(block))
        out_channels = 6 if cfg.learn_sigma else 3
        self.out = nn.Sequential(GroupNormF32(ch), nn.SiLU(), nn.Conv2d(input_ch, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, low_res: torch.Tensor) -> torch.Tensor:
        """Model output (float32) for noisy frames x [N, 3, H, W] given low-resolution frames [N, 3, h, w]."""
        upsampled = F.interpolate(low_res, x.shape[-2:], mode="bilinear")
        h = torch.cat([x, upsampled], dim=1).to(self.out[2].weight.dtype)  # the convs' dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels))

        def run(block: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
            for layer in block:
                h = layer(h, emb) if isinstance(layer, SRResBlock) else layer(h)
            return h

        skips = []
        for block in self.input_blocks:
            h = run(block, h)
            skips.append(h)
        h = run(self.middle_block, h)
        for block in self.output_blocks:
            h = run(block, torch.cat([h, skips.pop()], dim=1))
        return self.out(h).float()
