"""genmo Mochi DiT checkpoint (`dit.safetensors`, genmo key names) -> diffusers `MochiTransformer3DModel`.

The key map of diffusers' `scripts/convert_mochi_to_diffusers.py`, written for any depth (diffusers'
built-in single-file converter hard-codes 48 blocks):
- fused `attn.qkv_x` / `attn.qkv_y` rows are split in three: q, k, v;
- the halves of `mlp_*.w1` are swapped ([proj, gate] -> [gate, proj]) and so are those of
  `final_layer.mod` ([shift, scale] -> [scale, shift]);
- the last block has no text-stream output (`proj_y`, `mlp_y`), and its `mod_y` becomes
  `norm1_context.linear_1`.
The module-name tables below are shared with the adapter converter (`adapter.py`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from diffusers import MochiTransformer3DModel

from mibench.errors import WeightsError

from .checkpoint import check_tensors, read_safetensors

# genmo fused q/k/v projections -> the three diffusers projections (rows ordered [q; k; v]).
FUSED_QKV = {
    "attn.qkv_x": ("attn1.to_q", "attn1.to_k", "attn1.to_v"),
    "attn.qkv_y": ("attn1.add_q_proj", "attn1.add_k_proj", "attn1.add_v_proj"),
}
# genmo attention output projections -> diffusers (`proj_y` is absent from the last block).
OUT_PROJ = {"attn.proj_x": "attn1.to_out.0", "attn.proj_y": "attn1.to_add_out"}

_TOP = {
    "x_embedder.proj": "patch_embed.proj",
    "t_embedder.mlp.0": "time_embed.timestep_embedder.linear_1",
    "t_embedder.mlp.2": "time_embed.timestep_embedder.linear_2",
    "t5_y_embedder.to_kv": "time_embed.pooler.to_kv",
    "t5_y_embedder.to_q": "time_embed.pooler.to_q",
    "t5_y_embedder.to_out": "time_embed.pooler.to_out",
    "t5_yproj": "time_embed.caption_proj",
    "final_layer.linear": "proj_out",
    "final_layer.mod": "norm_out.linear",
}
_BLOCK = {
    "mod_x": "norm1.linear",
    "attn.q_norm_x": "attn1.norm_q",
    "attn.k_norm_x": "attn1.norm_k",
    "attn.q_norm_y": "attn1.norm_added_q",
    "attn.k_norm_y": "attn1.norm_added_k",
    "mlp_x.w1": "ff.net.0.proj",
    "mlp_x.w2": "ff.net.2",
    "mlp_y.w1": "ff_context.net.0.proj",
    "mlp_y.w2": "ff_context.net.2",
    **OUT_PROJ,
}
_SWAP_HALVES = {"final_layer.mod", "mlp_x.w1", "mlp_y.w1"}
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)\.(weight|bias)")


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    first, second = t.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def _convert_key(key: str, tensor: torch.Tensor, last_block: int) -> dict[str, torch.Tensor] | None:
    """The diffusers tensors of one genmo tensor, or None for a key this map does not know."""
    if key == "pos_frequencies":
        return {key: tensor}
    module, _, param = key.rpartition(".")
    if module in _TOP:
        return {f"{_TOP[module]}.{param}": _swap_halves(tensor) if module in _SWAP_HALVES else tensor}
    match = _BLOCK_KEY.fullmatch(key)
    if match is None:
        return None
    index, module, param = int(match[1]), match[2], match[3]
    prefix = f"transformer_blocks.{index}."
    if module in FUSED_QKV:
        parts = zip(FUSED_QKV[module], tensor.chunk(3, dim=0), strict=True)
        return {f"{prefix}{name}.{param}": part for name, part in parts}
    if module == "mod_y":
        name = "norm1_context.linear_1" if index == last_block else "norm1_context.linear"
        return {f"{prefix}{name}.{param}": tensor}
    if module in _BLOCK:
        return {f"{prefix}{_BLOCK[module]}.{param}": _swap_halves(tensor) if module in _SWAP_HALVES else tensor}
    return None


def genmo_to_diffusers(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename and reshape a genmo DiT state dict for `MochiTransformer3DModel`; unknown keys raise."""
    last_block = max((int(m[1]) for k in state_dict if (m := _BLOCK_KEY.fullmatch(k))), default=-1)
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state_dict.items():
        parts = _convert_key(key, tensor, last_block)
        if parts is None:
            unknown.append(key)
        else:
            converted.update(parts)
    if unknown:
        raise WeightsError(
            f"genmo DiT checkpoint has {len(unknown)} tensors of no Mochi module: {', '.join(sorted(unknown)[:6])}",
            "pass the base Mochi `dit.safetensors` (adapters are loaded separately)",
        )
    return converted


def genmo_config(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """The `MochiTransformer3DModel` config of a genmo DiT state dict, read from its shapes."""
    try:
        embed = state_dict["x_embedder.proj.weight"]
        head_dim = state_dict["blocks.0.attn.q_norm_x.weight"].shape[0]
        caption = state_dict["t5_yproj.weight"]
        final = state_dict["final_layer.linear.weight"]
        time_embed_dim = state_dict["t_embedder.mlp.0.weight"].shape[1]
    except KeyError as err:
        raise WeightsError(f"genmo DiT checkpoint lacks {err.args[0]}", "pass a Mochi `dit.safetensors`") from err
    inner_dim, in_channels, patch_size = embed.shape[0], embed.shape[1], embed.shape[2]
    out_channels = final.shape[0] // patch_size**2
    return {
        "patch_size": patch_size,
        "num_attention_heads": inner_dim // head_dim,
        "attention_head_dim": head_dim,
        "num_layers": 1 + max(int(m[1]) for k in state_dict if (m := _BLOCK_KEY.fullmatch(k))),
        "pooled_projection_dim": caption.shape[0],
        "in_channels": in_channels,
        "out_channels": None if out_channels == in_channels else out_channels,
        "text_embed_dim": caption.shape[1],
        "time_embed_dim": time_embed_dim,
    }


def keep_rope_in_float32(model: MochiTransformer3DModel) -> None:
    """Hold `pos_frequencies` in float32 whatever the weight dtype, as genmo does (bf16 would shift RoPE
    angles by up to ~0.4 rad at Mochi's positions); `model.dtype` then still reports the weight dtype."""
    model.pos_frequencies.data = model.pos_frequencies.data.float()
    model._keep_in_fp32_modules = ["pos_frequencies"]


def load_genmo_transformer(path: Path, *, dtype: torch.dtype = torch.float32,
                           config: Mapping | None = None) -> MochiTransformer3DModel:
    """A `MochiTransformer3DModel` holding a genmo `dit.safetensors`, loaded strictly.

    `config` defaults to the one read from the tensor shapes (`max_sequence_length` then keeps its
    default of 256, genmo's T5 length; the model does not use it). `pos_frequencies` stay float32.
    """
    genmo, _ = read_safetensors(path, "genmo DiT checkpoint")
    config = dict(config) if config is not None else genmo_config(genmo)
    converted = genmo_to_diffusers(genmo)
    with torch.device("meta"):
        model = MochiTransformer3DModel(**config)
    check_tensors({k: tuple(v.shape) for k, v in model.state_dict().items()}, converted,
                  f"genmo DiT checkpoint {path}")
    model.load_state_dict({k: v.to(dtype) for k, v in converted.items()}, strict=True, assign=True)
    keep_rope_in_float32(model)
    return model.eval()
