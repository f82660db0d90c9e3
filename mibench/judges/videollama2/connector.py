"""Projectors of VideoLLaMA 2.1-AV: the STC connector (`stc_connector_v35`) for video and the MLP
(`mlp2x_gelu` / `linear`) for audio, with parameter names as under `model.mm_projector(_a).`.

The STC stages are timm `RegStage(depth=4)` of RegNet bottlenecks written out here (no timm):
1x1 conv -> 3x3 depthwise conv -> squeeze-excite -> 1x1 conv, each conv followed by a channel
LayerNorm with eps 1e-5 (timm's LayerNormAct2d), SiLU activations, residual shortcut.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mibench.errors import WeightsError


class ChannelNormAct(nn.Module):
    """timm LayerNormAct2d: LayerNorm over channels of NCHW (eps 1e-5), then optional SiLU."""

    def __init__(self, channels: int, act: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, 1e-5).permute(0, 3, 1, 2)
        return F.silu(x) if self.act else x


class ConvNormAct(nn.Module):
    """Bias-free conv (`conv`) followed by ChannelNormAct (`bn`, the timm name)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = ChannelNormAct(cout, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(silu(fc1(mean_hw(x))))) with 1x1 convs."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(x.mean((2, 3), keepdim=True)))))


class Bottleneck(nn.Module):
    """timm RegNet Bottleneck (bottle_ratio 1, group_size 1, se_ratio 0.25, stride 1)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, 1)
        self.conv2 = ConvNormAct(cout, cout, 3, groups=cout)
        self.se = SqueezeExcite(cout, round(cin * 0.25))
        self.conv3 = ConvNormAct(cout, cout, 1, act=False)
        self.downsample = ConvNormAct(cin, cout, 1, act=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.silu(self.conv3(self.se(self.conv2(self.conv1(x)))) + shortcut)


class RegStage(nn.Sequential):
    """`depth` bottlenecks b1..b{depth}; only b1 changes the channel count."""

    def __init__(self, depth: int, cin: int, cout: int):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", Bottleneck(cin if i == 0 else cout, cout))


class STCConnector(nn.Module):
    """`stc_connector_v35`: frames [T, N, Dv] (N a square grid) -> tokens [T/2 * (h/2) * (w/2), D].

    s1 RegStage per frame -> Conv3d k=s=2 with padding 0 (odd sizes floor) + SiLU -> s2 RegStage ->
    flatten in (t, h, w) order -> Linear, exact GELU, Linear.
    """

    def __init__(self, vision_dim: int, hidden: int, depth: int = 4):
        super().__init__()
        self.s1 = RegStage(depth, vision_dim, hidden)
        self.sampler = nn.Sequential(nn.Conv3d(hidden, hidden, 2, stride=2, padding=0), nn.SiLU())
        self.s2 = RegStage(depth, hidden, hidden)
        self.readout = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        t, n, d = frames.shape
        side = int(n**0.5)
        x = frames.transpose(1, 2).reshape(t, d, side, side)
        x = self.s1(x)
        x = self.sampler(x.transpose(0, 1).unsqueeze(0))[0]  # [D, t', h', w']
        x = self.s2(x.transpose(0, 1))  # [t', D, h', w']
        x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        return self.readout(x)


def audio_projector(kind: str, audio_dim: int, hidden: int) -> nn.Module:
    """`mm_projector_a_type`: "linear" or "mlp{n}x_gelu" (Linear, then (GELU, Linear) x (n - 1))."""
    if kind == "linear":
        return nn.Linear(audio_dim, hidden)
    if kind.startswith("mlp") and kind.endswith("x_gelu") and kind[3:-6].isdigit():
        layers: list[nn.Module] = [nn.Linear(audio_dim, hidden)]
        for _ in range(int(kind[3:-6]) - 1):
            layers += [nn.GELU(), nn.Linear(hidden, hidden)]
        return nn.Sequential(*layers)
    raise WeightsError(f"unsupported audio projector type {kind!r}", "expected linear or mlp2x_gelu")
