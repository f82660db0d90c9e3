"""ZICA, MusicInfuser's zero-initialised audio cross-attention, attached to a diffusers
`MochiTransformer3DModel` without forking it.

- `transformer.audio_projection` (`AudioProjector`) and `transformer.audio_cross_attn_blocks`
  (entry j belongs to block `layers[j]`) are registered under the official genmo names: adapter keys
  load verbatim, and `.to()`, dtype casts and CPU offload move them with the transformer.
- Audio is passed per call: `transformer(..., attention_kwargs={"audio_feat": feats})`, feats
  (B_a, T_a, feat_dim) with B_a 1 or the batch size. A forward pre-hook projects it once per forward and
  resizes it to one token per latent frame (nearest over time); a forward hook on each selected block
  applies `x <- x + to_out(SDPA(to_q(x), to_k(a), to_v(a)))` (8 heads, no norm, mask or RoPE) to the
  visual stream after the whole block (attention, MLP and text update). The text stream is untouched.
- The projection runs in the pre-hook, outside any gradient checkpoint, on the device holding the
  projector's weights (CPU for the first step under model offload), then moves to the latents' device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import MochiTransformer3DModel
from torch import nn
from torch.utils.checkpoint import checkpoint

from mibench.errors import ConfigError

OFFICIAL_AUDIO_LAYERS = (6, 7, 8, 9, 10, 21, 34, 35, 36, 38, 39, 43, 44, 45, 46, 47)
AUDIO_CA_HEADS = 8
AUDIO_FEAT_KEY = "audio_feat"


class AudioProjector(nn.Module):
    """Linear -> SiLU -> Linear over the music features, then a nearest resize to `num_frames` tokens."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.projection = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, output_dim))

    def forward(self, audio_feat: torch.Tensor, num_frames: int) -> torch.Tensor:
        projected = self.projection(audio_feat)
        if projected.shape[1] != num_frames:
            projected = F.interpolate(projected.transpose(1, 2), size=num_frames, mode="nearest").transpose(1, 2)
        return projected


class AudioCrossAttention(nn.Module):
    """Video tokens attend to audio tokens; `to_out` starts at zero, so the block starts as the identity."""

    def __init__(self, dim: int, num_heads: int = AUDIO_CA_HEADS):
        super().__init__()
        self.num_heads = num_heads
        self.to_q, self.to_k, self.to_v, self.to_out = (nn.Linear(dim, dim) for _ in range(4))
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.to_q(x)), heads(self.to_k(audio)), heads(self.to_v(audio)))
        return x + self.to_out(out.transpose(1, 2).flatten(2))


class Zica:
    """The hooks that run the audio modules inside the transformer's forward."""

    def __init__(self, transformer: MochiTransformer3DModel, layers: Sequence[int]):
        self.layers = tuple(layers)
        self._tokens: torch.Tensor | None = None
        transformer.register_forward_pre_hook(self._project, with_kwargs=True)
        transformer.register_forward_hook(self._release)
        for j, block_index in enumerate(self.layers):
            cross_attention = transformer.audio_cross_attn_blocks[j]
            transformer.transformer_blocks[block_index].register_forward_hook(self._block_hook(cross_attention))

    def _project(self, transformer: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        attention_kwargs = kwargs.get("attention_kwargs", args[4] if len(args) > 4 else None) or {}
        audio = attention_kwargs.get(AUDIO_FEAT_KEY)
        if audio is None:
            raise ValueError(f"a transformer with ZICA needs attention_kwargs={{{AUDIO_FEAT_KEY!r}: features}}")
        if audio.shape[0] not in (1, hidden.shape[0]):
            raise ValueError(f"audio batch {audio.shape[0]} does not fit latent batch {hidden.shape[0]}")
        weight = transformer.audio_projection.projection[0].weight
        device = hidden.device if weight.device.type == "meta" else weight.device
        tokens = transformer.audio_projection(audio.to(device=device, dtype=weight.dtype), hidden.shape[2])
        self._tokens = tokens.to(hidden.device).expand(hidden.shape[0], -1, -1)

    def _release(self, transformer: nn.Module, args: tuple, output: object) -> None:
        self._tokens = None

    def checkpointed(self, block: nn.Module, *args) -> object:
        """diffusers' gradient-checkpoint function (non-reentrant) for a transformer with ZICA: the block's
        recomputation in the backward pass sees the audio tokens of its own forward pass (the forward hook
        releases them when the transformer's forward ends). `transformer.enable_gradient_checkpointing(
        zica.checkpointed)`."""
        tokens = self._tokens

        def run(*inputs):
            held, self._tokens = self._tokens, tokens
            try:
                return block(*inputs)
            finally:
                self._tokens = held

        return checkpoint(run, *args, use_reentrant=False)

    def _block_hook(self, cross_attention: AudioCrossAttention):
        def hook(block: nn.Module, args: tuple, output: tuple[torch.Tensor, torch.Tensor]):
            hidden, context = output
            return cross_attention(hidden, self._tokens.to(hidden.dtype)), context

        return hook


def attach_zica(transformer: MochiTransformer3DModel, layers: Sequence[int] = OFFICIAL_AUDIO_LAYERS, *,
                feat_dim: int = 768, num_heads: int = AUDIO_CA_HEADS,
                device: torch.device | str | None = None) -> Zica:
    """Register the audio projector and cross-attentions on `transformer` and hook them in.

    New modules get genmo's initialisation (default Linear init, `to_out` zero) on `device` (default: the
    transformer's); pass `device="meta"` when an adapter will be loaded into them right away.
    """
    num_layers = transformer.config.num_layers
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    if hasattr(transformer, "audio_projection"):
        raise ConfigError("this transformer already has ZICA modules", "attach them once")
    if len(set(layers)) != len(layers) or not all(0 <= i < num_layers for i in layers):
        raise ConfigError(f"audio cross-attention layers {list(layers)} are not distinct blocks of 0..{num_layers - 1}",
                          "pass valid 0-based block indices")
    if dim % num_heads:
        raise ConfigError(f"model width {dim} is not divisible by {num_heads} audio heads", "change num_heads")
    with torch.device(device or transformer.device):
        transformer.audio_projection = AudioProjector(feat_dim, dim, dim)
        transformer.audio_cross_attn_blocks = nn.ModuleList(AudioCrossAttention(dim, num_heads) for _ in layers)
    if str(device) != "meta":
        transformer.audio_projection.to(transformer.dtype)
        transformer.audio_cross_attn_blocks.to(transformer.dtype)
    return Zica(transformer, layers)
