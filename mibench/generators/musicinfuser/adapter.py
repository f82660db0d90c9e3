"""The official MusicInfuser adapter on a diffusers Mochi transformer: read, load (peft + ZICA), export.

File (`musicinfuser.safetensors`, written by `music_infuser/train.py`, genmo names):
- `blocks.{i}.attn.{qkv_x,qkv_y,proj_x}.lora_{A,B}` for every block, `...proj_y.lora_{A,B}` for all but
  the last; `audio_projection.projection.{0,2}.*`; `audio_cross_attn_blocks.{j}.{to_q,to_k,to_v,to_out}.*`;
- metadata `kwargs`: JSON of `qkv_proj_lora_{rank,alpha,dropout}` and `out_proj_lora_{rank,alpha,dropout}`.
genmo computes `W x + b + (alpha/r) B (A x)`; q, k and v share one A and stack their B rows [q; k; v].
On peft, each of the three diffusers projections gets a copy of A and its third of B, with the rank and
alpha of its kind (q/k/v or output projection). Dropout (0 in the release) is not applied: inference only.
Loading is strict: every file tensor is used and every LoRA/audio parameter is filled, or `WeightsError`.
Export writes the same layout and metadata back (it needs unfused LoRA with tied q/k/v A).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import MochiTransformer3DModel
from peft import LoraConfig
from safetensors.torch import save_file

from mibench.errors import WeightsError

from .checkpoint import check_tensors, read_safetensors
from .convert import FUSED_QKV, OUT_PROJ

ADAPTER_NAME = "musicinfuser"
AUDIO_MODULES = ("audio_projection", "audio_cross_attn_blocks")
LORA_TARGETS = (r".*transformer_blocks\.\d+\.attn1\."
                r"(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)")
_OUT_TARGETS = r"transformer_blocks\.\d+\.attn1\.(to_out\.0|to_add_out)"
_KWARGS = ("qkv_proj_lora_rank", "qkv_proj_lora_alpha", "qkv_proj_lora_dropout",
           "out_proj_lora_rank", "out_proj_lora_alpha", "out_proj_lora_dropout")


@dataclass(frozen=True)
class LoraSpec:
    """The adapter's LoRA kwargs (the `kwargs` metadata), kept as written so export round-trips."""

    kwargs: Mapping[str, float]

    @classmethod
    def of(cls, qkv_rank: int, qkv_alpha: float, out_rank: int, out_alpha: float) -> LoraSpec:
        values = (qkv_rank, qkv_alpha, 0.0, out_rank, out_alpha, 0.0)
        return cls(dict(zip(_KWARGS, values, strict=True)))

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], what: str) -> LoraSpec:
        try:
            kwargs = json.loads(metadata["kwargs"])
            ranks_ok = all(isinstance(kwargs[k], int) and kwargs[k] > 0 for k in _KWARGS if k.endswith("rank"))
            numbers_ok = all(isinstance(kwargs[k], (int, float)) for k in _KWARGS)
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise WeightsError(f"{what} has no valid LoRA `kwargs` metadata ({err!r})",
                               "use an adapter saved by MusicInfuser's train.py or by mibench") from err
        if not (ranks_ok and numbers_ok):
            raise WeightsError(f"{what} has malformed LoRA kwargs {kwargs}", "use an official adapter file")
        return cls(kwargs)

    @property
    def qkv_rank(self) -> int:
        return int(self.kwargs["qkv_proj_lora_rank"])

    @property
    def out_rank(self) -> int:
        return int(self.kwargs["out_proj_lora_rank"])

    def peft_config(self) -> LoraConfig:
        return LoraConfig(
            r=self.qkv_rank,
            lora_alpha=self.kwargs["qkv_proj_lora_alpha"],
            rank_pattern={_OUT_TARGETS: self.out_rank},
            alpha_pattern={_OUT_TARGETS: self.kwargs["out_proj_lora_alpha"]},
            target_modules=LORA_TARGETS,
            lora_dropout=0.0,
        )

    def metadata(self) -> dict[str, str]:
        return {"kwargs": json.dumps(dict(self.kwargs))}


def read_adapter(path: Path) -> tuple[dict[str, torch.Tensor], LoraSpec]:
    """The tensors and LoRA kwargs of an adapter file."""
    tensors, metadata = read_safetensors(path, "MusicInfuser adapter")
    return tensors, LoraSpec.from_metadata(metadata, f"MusicInfuser adapter {path}")


def audio_block_count(tensors: Mapping[str, torch.Tensor]) -> int:
    """How many audio cross-attention blocks an adapter holds."""
    prefix = "audio_cross_attn_blocks."
    return len({key[len(prefix):].split(".")[0] for key in tensors if key.startswith(prefix)})


def lora_layout(transformer: MochiTransformer3DModel) -> dict[str, tuple[str, ...]]:
    """genmo LoRA module (`blocks.{i}.attn.qkv_x`, ...) -> the diffusers module names it covers."""
    layout = {}
    for i, block in enumerate(transformer.transformer_blocks):
        for genmo, names in FUSED_QKV.items():
            layout[f"blocks.{i}.{genmo}"] = tuple(f"transformer_blocks.{i}.{name}" for name in names)
        for genmo, name in OUT_PROJ.items():
            if getattr(block.attn1, name.split(".")[1], None) is not None:
                layout[f"blocks.{i}.{genmo}"] = (f"transformer_blocks.{i}.{name}",)
    return layout


def expected_shapes(transformer: MochiTransformer3DModel, spec: LoraSpec) -> dict[str, tuple[int, ...]]:
    """Every tensor an adapter for this transformer (with its ZICA modules, if attached) must hold."""
    shapes = {}
    for genmo, targets in lora_layout(transformer).items():
        first = transformer.get_submodule(targets[0])
        rank = spec.qkv_rank if genmo.endswith(tuple(FUSED_QKV)) else spec.out_rank
        shapes[f"{genmo}.lora_A"] = (rank, first.in_features)
        shapes[f"{genmo}.lora_B"] = (len(targets) * first.out_features, rank)
    for name in AUDIO_MODULES:
        if hasattr(transformer, name):
            shapes.update({f"{name}.{k}": tuple(v.shape) for k, v in getattr(transformer, name).state_dict().items()})
    return shapes


def load_adapter(transformer: MochiTransformer3DModel, tensors: Mapping[str, torch.Tensor], spec: LoraSpec, *,
                 fuse: bool = False, what: str = "MusicInfuser adapter") -> None:
    """Add the adapter's LoRA (peft, named `musicinfuser`) and fill the ZICA modules, strictly.

    Attach ZICA first (`zica.attach_zica`) for an adapter with audio modules. `fuse=True` merges the
    LoRA into the base weights and removes the peft layers (genmo's eval-mode merge).
    """
    check_tensors(expected_shapes(transformer, spec), tensors, what)
    layout = lora_layout(transformer)
    transformer.add_adapter(spec.peft_config(), ADAPTER_NAME)
    with torch.no_grad():
        for genmo, targets in layout.items():
            parts = tensors[f"{genmo}.lora_B"].chunk(len(targets), dim=0)
            for target, lora_b in zip(targets, parts, strict=True):
                layer = transformer.get_submodule(target)
                layer.lora_A[ADAPTER_NAME].weight.copy_(tensors[f"{genmo}.lora_A"])
                layer.lora_B[ADAPTER_NAME].weight.copy_(lora_b)
    for name in AUDIO_MODULES:
        if hasattr(transformer, name):
            prefix = f"{name}."
            state = {k[len(prefix):]: v.to(transformer.device, transformer.dtype)
                     for k, v in tensors.items() if k.startswith(prefix)}
            getattr(transformer, name).load_state_dict(state, strict=True, assign=True)
    if fuse:
        transformer.fuse_lora(adapter_names=[ADAPTER_NAME])
        transformer.unload_lora()


def adapter_state_dict(transformer: MochiTransformer3DModel) -> dict[str, torch.Tensor]:
    """The loaded adapter in the official genmo layout (the inverse of `load_adapter`)."""
    state = {}
    for genmo, targets in lora_layout(transformer).items():
        layers = [transformer.get_submodule(target) for target in targets]
        if not all(ADAPTER_NAME in getattr(layer, "lora_A", {}) for layer in layers):
            raise WeightsError(f"{targets[0]} holds no unfused `{ADAPTER_NAME}` LoRA",
                               "export from a model loaded with fuse_lora=False")
        lora_a = layers[0].lora_A[ADAPTER_NAME].weight
        if any(not torch.equal(layer.lora_A[ADAPTER_NAME].weight, lora_a) for layer in layers[1:]):
            raise WeightsError(f"the q/k/v LoRA A of {genmo} differ", "tie them to write the official layout")
        state[f"{genmo}.lora_A"] = lora_a
        state[f"{genmo}.lora_B"] = torch.cat([layer.lora_B[ADAPTER_NAME].weight for layer in layers])
    for name in AUDIO_MODULES:
        if hasattr(transformer, name):
            state.update({f"{name}.{k}": v for k, v in getattr(transformer, name).state_dict().items()})
    return state


def save_adapter(transformer: MochiTransformer3DModel, path: Path, spec: LoraSpec, *,
                 dtype: torch.dtype = torch.bfloat16) -> None:
    """Write the adapter as `musicinfuser.safetensors` (official layout, metadata `kwargs`; bf16 like train.py)."""
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in adapter_state_dict(transformer).items()}
    check_tensors(expected_shapes(transformer, spec), state, "adapter export (LoRA kwargs vs model)")
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(state, str(partial), metadata=spec.metadata())
    os.replace(partial, path)
