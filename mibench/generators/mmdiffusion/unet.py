"""The coupled audio-video U-Net of MM-Diffusion (`MultimodalUNet`), with the official state-dict layout.

forward(video [B, F, 3, H, W], audio [B, 1, L], timesteps [B]) -> (video eps, audio eps), same shapes.
Two streams run side by side: video ResBlocks (2d+1d convs, spatial + temporal self-attention) and
audio ResBlocks (dilated 1-D convs on the raw waveform), coupled only by `CrossAttentionBlock`
("RS-MMA"): frame i's video queries attend the audio of frames i+s .. i+s+w-1 (mod F) and vice versa,
with a window shift s drawn at random on every call, also at inference. Pass the shifts explicitly
(`shifts={block name: s}`) or a seeded `torch.Generator` to draw them from.

Ported from researchmm/MM-Diffusion `mm_diffusion/multimodal_unet.py` (MIT).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mibench.errors import ConfigError

from .blocks import (
    AttentionBlock,
    AudioConv,
    GroupNorm32,
    VideoConv,
    attend,
    heads_for,
    merge_heads,
    split_heads,
    timestep_embedding,
)
from .config import MMDConfig


def _resample_video(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Halve (average 2x2) or double (nearest) H and W of [B, F, C, H, W]; frames are never resampled."""
    flat = x.flatten(0, 1)
    out = F.avg_pool2d(flat, 2) if mode == "down" else F.interpolate(flat, scale_factor=2, mode="nearest")
    return out.unflatten(0, x.shape[:2])


def _resample_audio(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Quarter (average of 4) or quadruple (nearest) the length of [B, C, L]."""
    return F.avg_pool1d(x, 4) if mode == "down" else F.interpolate(x, scale_factor=4, mode="nearest")


class ResBlock(nn.Module):
    """Coupled residual block: video and audio branches share only the timestep embedding.

    in: norm -> SiLU -> conv (video 3x3 + 3 over frames, audio 3 taps with `audio_dilation`), then the
    optional up/down resampling (applied after the conv, to the residual input too); out: FiLM norm ->
    SiLU -> 1x1 conv; then optional video spatial + temporal / audio self-attention.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        emb_channels: int,
        *,
        audio_dilation: int,
        video_type: str,
        use_scale_shift_norm: bool,
        num_heads: int,
        video_attention: bool = False,
        audio_attention: bool = False,
        resample: str | None = None,
    ):
        super().__init__()
        self.audio_dilation = audio_dilation
        self.resample = resample
        self.use_scale_shift_norm = use_scale_shift_norm
        self.video_in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), VideoConv(channels, out_channels, 3, video_type)
        )
        self.audio_in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), AudioConv(channels, out_channels, 3, audio_dilation)
        )
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        # index 2 held Dropout in the reference (p = 0 at sampling); kept so that conv keys stay at .3
        self.video_out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Identity(), VideoConv(out_channels, out_channels, 1, "3d")
        )
        self.audio_out_layers = nn.Sequential(
            GroupNorm32(out_channels), nn.SiLU(), nn.Identity(), AudioConv(out_channels, out_channels, 1)
        )
        if out_channels == channels:
            self.video_skip_connection: nn.Module = nn.Identity()
            self.audio_skip_connection: nn.Module = nn.Identity()
        else:
            self.video_skip_connection = VideoConv(channels, out_channels, 1, "3d")
            self.audio_skip_connection = AudioConv(channels, out_channels, 1)
        self.video_attention = video_attention
        self.audio_attention = audio_attention
        if video_attention:
            self.spatial_attention_block = AttentionBlock(
                out_channels, num_heads, GroupNorm32(out_channels), legacy_order=False
            )
            self.temporal_attention_block = AttentionBlock(
                out_channels, num_heads, GroupNorm32(out_channels), legacy_order=False
            )
        if audio_attention:
            self.audio_attention_block = AttentionBlock(
                out_channels, num_heads, GroupNorm32(out_channels), legacy_order=False
            )

    def _film(self, layers: nn.Sequential, h: torch.Tensor, emb: torch.Tensor, dim: int) -> torch.Tensor:
        if self.use_scale_shift_norm:
            scale, shift = emb.chunk(2, dim=dim)
            return layers[1:](layers[0](h) * (1 + scale) + shift)
        return layers(h + emb)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        video_h = self.video_in_layers(video)
        audio_h = self.audio_in_layers(audio)
        if self.resample is not None:
            video_h, video = _resample_video(video_h, self.resample), _resample_video(video, self.resample)
            audio_h, audio = _resample_audio(audio_h, self.resample), _resample_audio(audio, self.resample)
        emb_out = self.emb_layers(emb).to(video_h.dtype)
        video_h = self._film(self.video_out_layers, video_h, emb_out[:, None, :, None, None], dim=2)
        audio_h = self._film(self.audio_out_layers, audio_h, emb_out[:, :, None], dim=1)
        video = self.video_skip_connection(video) + video_h
        audio = self.audio_skip_connection(audio) + audio_h
        if self.video_attention:
            b, f, c, h, w = video.shape
            x = self.spatial_attention_block(video.reshape(b * f, c, h * w))
            x = x.reshape(b, f, c, h * w).permute(0, 3, 2, 1).reshape(b * h * w, c, f)
            x = self.temporal_attention_block(x)
            video = x.reshape(b, h, w, c, f).permute(0, 4, 3, 1, 2)
        if self.audio_attention:
            audio = self.audio_attention_block(audio)
        return video, audio


def _window_index(frames: int, window: int, shift: int, per_frame: int, device: torch.device) -> torch.Tensor:
    """[F, window * per_frame] token indices: row i = the tokens of frames (i+shift .. i+shift+window-1) mod F."""
    first = torch.arange(frames, device=device)[:, None] + shift + torch.arange(window, device=device)[None]
    tokens = (first % frames)[..., None] * per_frame + torch.arange(per_frame, device=device)
    return tokens.reshape(frames, window * per_frame)


class CrossAttentionBlock(nn.Module):
    """RS-MMA: windowed audio<->video cross-attention (no intra-modal attention), residual on both streams."""

    def __init__(self, channels: int, num_heads: int, *, window: int, frames: int, random_shift: bool):
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.frames = frames
        self.random_shift = random_shift
        self.name = ""  # dotted module path inside the U-Net, set by MultimodalUNet
        self.v_norm = GroupNorm32(channels)
        self.a_norm = GroupNorm32(channels)
        self.v_qkv = nn.Conv1d(channels, channels * 3, 1)
        self.a_qkv = nn.Conv1d(channels, channels * 3, 1)
        self.video_proj_out = VideoConv(channels, channels, 1, "3d")
        self.audio_proj_out = AudioConv(channels, channels, 1)

    @property
    def max_shift(self) -> int:
        return self.frames - self.window if self.random_shift else 0

    def forward(self, video: torch.Tensor, audio: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
        b, f, c, h, w = video.shape
        heads, length, pixels = self.num_heads, audio.shape[-1], h * w
        per_frame = length // f
        tokens = video.transpose(1, 2).reshape(b, c, f * pixels)
        vq, vk, vv = split_heads(self.v_qkv(self.v_norm(tokens)), heads, legacy=False)
        aq, ak, av = split_heads(self.a_qkv(self.a_norm(audio)), heads, legacy=False)
        audio_idx = _window_index(f, self.window, shift, per_frame, video.device)
        video_idx = _window_index(f, self.window, shift, pixels, video.device)

        def windowed(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            ch = q.shape[-1]
            q = q.reshape(b * heads, f, -1, ch)
            k = k[:, :, idx].reshape(b * heads, f, -1, ch)
            v = v[:, :, idx].reshape(b * heads, f, -1, ch)
            return attend(q, k, v).reshape(b, heads, -1, ch)

        video_h = merge_heads(windowed(vq, ak, av, audio_idx)).reshape(b, c, f, h, w).transpose(1, 2)
        audio_h = merge_heads(windowed(aq, vk, vv, video_idx))
        return video + self.video_proj_out(video_h), audio + self.audio_proj_out(audio_h)


class InitialBlock(nn.Module):
    """First convs: video 2d+1d 3x3 (3 -> C), audio 3 taps (1 -> C)."""

    def __init__(self, video_channels: int, audio_channels: int, out_channels: int):
        super().__init__()
        self.video_conv = VideoConv(video_channels, out_channels, 3, "2d+1d")
        self.audio_conv = AudioConv(audio_channels, out_channels, 3)

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.video_conv(video), self.audio_conv(audio)


class MultimodalUNet(nn.Module):
    """The coupled U-Net; keys `time_embed.*`, `input_blocks.*`, `middle_blocks.*`, `output_blocks.*`,
    `video_out.*`, `audio_out.*` as in the official `AIST++.pt`."""

    def __init__(self, config: MMDConfig):
        super().__init__()
        self.config = config
        cfg, emb_dim = config, config.model_channels
        frames, video_channels = config.video_size[0], config.video_size[1]

        def res_block(
            cin: int, cout: int, counter: int, *, ds: int = 0, middle: bool = False, resample: str | None = None
        ) -> ResBlock:
            """ResBlock number `counter` (audio dilation 2**(counter % 10)); self-attention by level `ds`."""
            return ResBlock(
                cin,
                cout,
                emb_dim,
                audio_dilation=2 ** (counter % 10),
                video_type=cfg.video_type,
                use_scale_shift_norm=cfg.use_scale_shift_norm,
                num_heads=cfg.num_heads,
                video_attention=middle or ds in cfg.video_attention_resolutions,
                audio_attention=middle or ds in cfg.audio_attention_resolutions,
                resample=resample,
            )

        def cross(ch: int, ds: int) -> list[nn.Module]:
            if ds not in cfg.cross_attention_resolutions:
                return []
            window = cfg.cross_attention_windows[cfg.cross_attention_resolutions.index(ds)]
            heads = heads_for(ch, cfg.num_heads, cfg.num_head_channels)
            return [
                CrossAttentionBlock(ch, heads, window=window, frames=frames, random_shift=cfg.cross_attention_shift)
            ]

        self.time_embed = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        ch = input_ch = int(cfg.channel_mult[0] * cfg.model_channels)
        self.input_blocks = nn.ModuleList([nn.ModuleList([InitialBlock(video_channels, cfg.audio_size[0], ch)])])
        skip_channels, ds, dilation = [ch], 1, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                out = int(mult * cfg.model_channels)
                block = [res_block(ch, out, dilation, ds=ds), *cross(out, ds)]
                self.input_blocks.append(nn.ModuleList(block))
                dilation, ch = dilation + 1, out
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(nn.ModuleList([res_block(ch, ch, dilation, resample="down")]))
                dilation, ds = dilation + 1, ds * 2
                skip_channels.append(ch)

        middle_layers: list[nn.Module] = [res_block(ch, ch, dilation, middle=True)]
        if cfg.middle_cross_attention:
            heads = heads_for(ch, cfg.num_heads, cfg.num_head_channels)
            middle_layers.append(CrossAttentionBlock(ch, heads, window=frames, frames=frames, random_shift=False))
        middle_layers.append(res_block(ch, ch, dilation, middle=True))
        self.middle_blocks = nn.ModuleList(middle_layers)

        dilation -= 1
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                out = int(mult * cfg.model_channels)
                block = [res_block(ch + skip_channels.pop(), out, dilation, ds=ds), *cross(out, ds)]
                dilation, ch = dilation - 1, out
                if level and i == cfg.num_res_blocks:
                    block.append(res_block(ch, ch, dilation, resample="up"))
                    ds //= 2
                self.output_blocks.append(nn.ModuleList(block))

        self.video_out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), VideoConv(input_ch, video_channels, 3, "3d"))
        self.audio_out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), AudioConv(input_ch, cfg.audio_size[0], 3))

        widths = {m.GroupNorm.num_channels for m in self.modules() if isinstance(m, GroupNorm32)}
        if frames in widths:
            raise ConfigError(
                f"{frames} frames equal a channel width: the reference then skips the frames-first permute of "
                "its video GroupNorm (a bug this port does not reproduce)",
                "use a frame count that is not a multiple of 32",
            )
        self.cross_blocks: list[CrossAttentionBlock] = []
        for name, module in self.named_modules():
            if isinstance(module, CrossAttentionBlock):
                module.name = name
                self.cross_blocks.append(module)

    @property
    def shift_blocks(self) -> list[str]:
        """Names of the cross-attention blocks that draw a random window shift, in forward order."""
        return [blk.name for blk in self.cross_blocks if blk.random_shift]

    def draw_shifts(self, generator: torch.Generator | None = None) -> dict[str, int]:
        """One shift per random-shift block, uniform in [0, F - window], drawn in forward order."""
        return {
            blk.name: int(torch.randint(0, blk.max_shift + 1, (1,), generator=generator))
            for blk in self.cross_blocks
            if blk.random_shift
        }

    def _check_shifts(self, shifts: Mapping[str, int]) -> None:
        expected = set(self.shift_blocks)
        if set(shifts) != expected:
            raise ValueError(f"shifts must name exactly the random-shift blocks {sorted(expected)}")
        for blk in self.cross_blocks:
            if blk.random_shift and not 0 <= shifts[blk.name] <= blk.max_shift:
                raise ValueError(f"shift {shifts[blk.name]} of {blk.name} is outside [0, {blk.max_shift}]")

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        timesteps: torch.Tensor,
        *,
        shifts: Mapping[str, int] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """eps predictions (float32) for video [B, F, C, H, W] and audio [B, C_a, L] at integer timesteps [B].

        `shifts` fixes the cross-attention window shifts; without it they are drawn from `generator`.
        """
        if shifts is None:
            shifts = self.draw_shifts(generator)
        else:
            self._check_shifts(shifts)
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels))
        dtype = self.video_out[2].video_conv.weight.dtype  # the convs' dtype (float16 with cast_convs_)
        video, audio = video.to(dtype), audio.to(dtype)

        def run(block: nn.ModuleList, v: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            for layer in block:
                if isinstance(layer, ResBlock):
                    v, a = layer(v, a, emb)
                elif isinstance(layer, CrossAttentionBlock):
                    v, a = layer(v, a, shifts.get(layer.name, 0))
                else:
                    v, a = layer(v, a)
            return v, a

        skips = []
        for block in self.input_blocks:
            video, audio = run(block, video, audio)
            skips.append((video, audio))
        video, audio = run(self.middle_blocks, video, audio)
        for block in self.output_blocks:
            skip_video, skip_audio = skips.pop()
            video, audio = run(block, torch.cat([video, skip_video], dim=2), torch.cat([audio, skip_audio], dim=1))
        return self.video_out(video).float(), self.audio_out(audio).float()
