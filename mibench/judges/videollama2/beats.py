"""BEATs audio encoder (inference only) as VideoLLaMA 2.1-AV runs it: `extract_features(fbank)`.

Post-LN deep-norm transformer over 16x16 fbank patches, fairseq attention with a gated T5-style
relative position bias that is computed once and shared by every layer. Parameter names follow the
checkpoint under `model.audio_tower.`; `convert_checkpoint` maps the checkpoint's legacy
weight-norm pair and per-layer bias copies onto this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from mibench.errors import WeightsError

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
ATTN_ALPHA = 32.0
# BEATsConfig fields that only matter for training or for the unused label predictor.
_TRAINING_FIELDS = {
    "hidden_size", "layer_wise_gradient_decay_ratio", "dropout", "attention_dropout",
    "activation_dropout", "encoder_layerdrop", "dropout_input", "predictor_dropout",
    "finetuned_model", "predictor_class",
}


@dataclass(frozen=True)
class BEATsConfig:
    """The official `BEATsConfig()` defaults (VideoLLaMA 2.1-AV never reads another config)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> BEATsConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known - _TRAINING_FIELDS
        if unknown:
            raise WeightsError(f"unknown BEATs config fields {sorted(unknown)}", "check mm_audio_tower_cfg")
        cfg = cls(**{k: v for k, v in values.items() if k in known})
        supported = (cfg.activation_fn == "gelu" and not cfg.layer_norm_first and cfg.gru_rel_pos
                     and cfg.relative_position_embedding)
        if not supported:
            raise WeightsError("unsupported BEATs variant (need post-LN, gelu, gated relative bias)",
                               "use the VideoLLaMA 2.1-AV audio tower config")
        return cfg


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`weight_norm_fix.py` with dim=2: w = g * v * rsqrt(sum over dims (0, 1) of v^2 + 1e-6), in float32.

    The +1e-6 matters: torch's own weight_norm has no eps and gives a different weight.
    """
    v32 = v.float()
    return g.float() * (v32 * torch.rsqrt(v32.pow(2).sum(dim=(0, 1), keepdim=True) + 1e-6))


def convert_checkpoint(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint tensors (prefix `model.audio_tower.` stripped) -> this module's state dict.

    `encoder.pos_conv.0.weight_g/_v` are folded into `encoder.pos_conv.weight` (never dropped, the
    trap of transformers >= 4.45); the relative bias copies of layers 1.. must equal layer 0's;
    `predictor.*` (the AudioSet head) is unused by the judge.
    """
    out = {}
    shared = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    for key, value in tensors.items():
        if key.startswith("predictor."):
            continue
        elif key.startswith("encoder.pos_conv.0."):
            name = key.removeprefix("encoder.pos_conv.0.")
            if name == "bias":
                out["encoder.pos_conv.bias"] = value
            elif name not in ("weight_g", "weight_v"):
                out[key] = value  # reported as unexpected by the strict load
        elif key.endswith("self_attn.relative_attention_bias.weight"):
            if key == shared:
                out["encoder.relative_attention_bias.weight"] = value
            elif not (shared in tensors and torch.equal(value, tensors[shared])):
                out[key] = value  # a differing copy: unexpected
        else:
            out[key] = value
    if "encoder.pos_conv.0.weight_g" in tensors and "encoder.pos_conv.0.weight_v" in tensors:
        out["encoder.pos_conv.weight"] = fold_weight_norm(
            tensors["encoder.pos_conv.0.weight_g"], tensors["encoder.pos_conv.0.weight_v"])
    return out


def relative_buckets(length: int, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Bidirectional T5 buckets [length, length] of (key - query) as BEATs computes them."""
    position = torch.arange(length, dtype=torch.long)
    relative = position[None, :] - position[:, None]
    half = num_buckets // 2
    buckets = (relative > 0).long() * half
    relative = relative.abs()
    max_exact = half // 2
    large = max_exact + (
        torch.log(relative.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).long()
    large = torch.clamp(large, max=half - 1)
    return buckets + torch.where(relative < max_exact, relative, large)


class BEATsAttention(nn.Module):
    """fairseq self-attention with BEATs' scaled max-subtraction and gated relative bias."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim**-0.5
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x) * self.scaling * (1 / ATTN_ALPHA))
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        weights = q @ k.transpose(-1, -2)
        weights = (weights - weights.amax(dim=-1, keepdim=True)) * ATTN_ALPHA
        query_layer = q * ATTN_ALPHA / self.scaling
        gates = self.grep_linear(query_layer).view(batch, self.heads, length, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(gates).chunk(2, dim=-1)
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
        probs = F.softmax(weights + gate * position_bias, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(out)


class BEATsLayer(nn.Module):
    """Post-LN deep-norm layer: LN(alpha * x + attn(x)), then LN(alpha * x + fc2(gelu(fc1(x))))."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.alpha = math.pow(2 * cfg.encoder_layers, 1 / 4) if cfg.deep_norm else 1.0
        self.self_attn = BEATsAttention(dim, cfg.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, position_bias))
        hidden = F.gelu(self.fc1(x).float()).type_as(x)
        return self.final_layer_norm(x * self.alpha + self.fc2(hidden))


class BEATsEncoder(nn.Module):
    """Convolutional positional embedding, LayerNorm, then the layers with one shared bias."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.cfg = cfg
        self.pos_conv = nn.Conv1d(dim, dim, cfg.conv_pos, padding=cfg.conv_pos // 2, groups=cfg.conv_pos_groups)
        self.layer_norm = nn.LayerNorm(dim)
        self.relative_attention_bias = nn.Embedding(cfg.num_buckets, cfg.encoder_attention_heads)
        self.layers = nn.ModuleList(BEATsLayer(cfg) for _ in range(cfg.encoder_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.pos_conv(x.transpose(1, 2))
        if self.cfg.conv_pos % 2 == 0:
            conv = conv[:, :, :-1]  # SamePad
        x = self.layer_norm(x + F.gelu(conv).transpose(1, 2))
        buckets = relative_buckets(x.shape[1], self.cfg.num_buckets, self.cfg.max_distance).to(x.device)
        position_bias = self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)
        for layer in self.layers:
            x = layer(x, position_bias)
        return x


class BEATs(nn.Module):
    """fbank [B, frames, 128] -> features [B, (frames // 16) * (128 // 16), encoder_embed_dim]."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        patch = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, patch, stride=patch, bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        )
        self.encoder = BEATsEncoder(cfg)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = (fbank - FBANK_MEAN) / (2 * FBANK_STD)
        x = self.patch_embedding(x.unsqueeze(1)).flatten(2).transpose(1, 2)
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x)
