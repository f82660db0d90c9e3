"""Building blocks shared by the MM-Diffusion coupled U-Net and its super-resolution U-Net.

Owns the pieces whose numerics the golden fixtures pin down: the float32 GroupNorms, the "2d+1d" video
convolution, the sinusoidal timestep embedding and q/k/v self-attention in both head-splitting orders.
Module and parameter names mirror researchmm/MM-Diffusion (MIT; ported, not copied) so the official
checkpoints load without a key map. Video tensors are frames-first: [B, F, C, H, W].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mibench.errors import ConfigError


class GroupNorm32(nn.Module):
    """GroupNorm(32, C) computed in float32, stored as child `GroupNorm` (keys `....GroupNorm.weight`).

    A 5-D video [B, F, C, H, W] is normalised as [B, C, F, H, W]: statistics pool the group's channels
    over all frames and pixels. (The reference skips that permute when F == C, a bug no real config hits;
    the port always permutes.)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.GroupNorm = nn.GroupNorm(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return self.GroupNorm(x.transpose(1, 2).float()).transpose(1, 2).to(x.dtype)
        return self.GroupNorm(x.float()).to(x.dtype)


class GroupNormF32(nn.GroupNorm):
    """Plain GroupNorm(32, C) computed in float32 (the upsampler's `ImgGroupNorm`, keys `....weight`)."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class VideoConv(nn.Module):
    """Convolution of a [B, F, C, H, W] video: '2d+1d' = per-frame Conv2d then per-pixel Conv1d over
    frames, or '3d' = Conv3d on [B, C, F, H, W]; 'same' padding, stride 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, conv_type: str = "2d+1d"):
        super().__init__()
        self.conv_type = conv_type
        if conv_type == "2d+1d":
            self.video_conv_spatial = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same")
            self.video_conv_temporal = nn.Conv1d(out_channels, out_channels, kernel_size, padding="same")
        elif conv_type == "3d":
            self.video_conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding="same")
        else:
            raise ConfigError(f"unknown video convolution type {conv_type!r}", "use '2d+1d' or '3d'")

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, f, _, h, w = video.shape
        if self.conv_type == "3d":
            return self.video_conv(video.transpose(1, 2)).transpose(1, 2)
        x = self.video_conv_spatial(video.flatten(0, 1))
        c = x.shape[1]
        x = x.reshape(b, f, c, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c, f)
        x = self.video_conv_temporal(x)
        return x.reshape(b, h, w, c, f).permute(0, 4, 3, 1, 2)


class AudioConv(nn.Module):
    """Conv1d over a [B, C, L] waveform feature map with 'same' padding (key `audio_conv`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.audio_conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding="same", dilation=dilation)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.audio_conv(audio)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t f), sin(t f)] with f = exp(-ln(max_period) k / (dim/2)), in float32: [N] -> [N, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def split_heads(qkv: torch.Tensor, heads: int, *, legacy: bool) -> tuple[torch.Tensor, ...]:
    """[N, 3*H*ch, T] -> q, k, v of shape [N, H, T, ch].

    New order (MM-Diffusion U-Net): q/k/v are the three channel thirds, each then split into heads.
    Legacy order (guided-diffusion upsampler): heads first, each holding its own q, k, v.
    """
    n, width, length = qkv.shape
    ch = width // (3 * heads)
    shape = (n, heads, 3, ch, length) if legacy else (n, 3, heads, ch, length)
    return qkv.reshape(shape).transpose(-1, -2).unbind(2 if legacy else 1)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[N, H, T, ch] -> [N, H*ch, T]."""
    n, heads, length, ch = x.shape
    return x.transpose(-1, -2).reshape(n, heads * ch, length)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(ch)) v over the last two dims (the reference scales q and k by ch**-1/4 each)."""
    return F.scaled_dot_product_attention(q, k, v)


class AttentionBlock(nn.Module):
    """Residual multi-head self-attention over the trailing axes of [N, C, ...]: norm -> qkv (1x1) ->
    attention -> proj_out (1x1) -> + x. Keys `norm`, `qkv`, `proj_out`."""

    def __init__(self, channels: int, num_heads: int, norm: nn.Module, *, legacy_order: bool):
        super().__init__()
        self.num_heads = num_heads
        self.legacy_order = legacy_order
        self.norm = norm
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        q, k, v = split_heads(self.qkv(self.norm(x)), self.num_heads, legacy=self.legacy_order)
        h = self.proj_out(merge_heads(attend(q, k, v)))
        return (x + h).reshape(b, c, *spatial)


def heads_for(channels: int, num_heads: int, num_head_channels: int) -> int:
    """Head count: channels // num_head_channels when that is set (!= -1), else num_heads."""
    if num_head_channels == -1:
        return num_heads
    if channels % num_head_channels:
        raise ConfigError(f"{channels} channels are not divisible by num_head_channels {num_head_channels}")
    return channels // num_head_channels
