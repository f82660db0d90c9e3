"""The model a training run updates: a diffusers Mochi transformer with fresh ZICA and LoRA, ready to train.

`TrainParts.tiny(recipe)` (the tiny preset's base, no download) or `TrainParts.from_weights(folder,
recipe, device)` (the generator's `--weights DIR` layout, parts it lacks from the diffusers Mochi base).
Attaching (`make_trainable`), seeded by the recipe's seed whatever the global RNG:
- ZICA after the recipe's audio layers: default Linear init, `to_out` zero, so every audio block starts
  as the identity (the paper's zero initialisation); input width = the music features' width;
- LoRA (peft, adapter `musicinfuser`, the released adapter's targets) on the q/k/v and output projections
  of both streams: A kaiming-uniform, B zero; the q/k/v of a stream share one A (`to_k`/`to_v` use
  `to_q`'s parameter, `add_k_proj`/`add_v_proj` `add_q_proj`'s), as genmo's fused qkv LoRA, so the result
  exports to the official layout;
- only the LoRA and audio parameters require grad, all of them float32 (the frozen base keeps its dtype);
- gradient checkpointing (recipe) through a checkpoint function that hands each recomputed block the
  audio tokens of its forward pass (ZICA releases them when the forward ends, before the backward).
The VAE's per-channel latent mean and std (std divided by the scaling factor) give the DiT's normalisation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKLMochi, MochiTransformer3DModel

from mibench.errors import WeightsError
from mibench.fingerprint import weights_identity
from mibench.generators.musicinfuser.adapter import ADAPTER_NAME, AUDIO_MODULES, LoraSpec, lora_layout
from mibench.generators.musicinfuser.components import load_transformer
from mibench.generators.musicinfuser.tiny import TINY_WAV2VEC, tiny_parts
from mibench.generators.musicinfuser.zica import Zica, attach_zica

from .recipe import Recipe

WAV2VEC_DIM = 768


@dataclass
class TrainParts:
    """The transformer (LoRA + ZICA attached, trainables marked), its ZICA hooks, the LoRA kwargs and
    the per-channel latent normalisation (C,)."""

    transformer: MochiTransformer3DModel
    zica: Zica
    spec: LoraSpec
    latents_mean: torch.Tensor
    latents_std: torch.Tensor
    base_identity: dict = field(default_factory=dict)  # the frozen base: a resumed run must train the same

    @classmethod
    def tiny(cls, recipe: Recipe, seed: int = 0) -> TrainParts:
        """The tiny preset's base (`tiny_parts(with_adapter=False, seed=seed)`) with fresh trainables."""
        base = tiny_parts(with_adapter=False, seed=seed)
        parts = cls.attach(base.transformer, recipe, TINY_WAV2VEC["hidden_size"], base.vae.config)
        return dataclasses.replace(parts, base_identity={"tiny_preset_seed": seed})

    @classmethod
    def from_weights(cls, folder: Path | None, recipe: Recipe, device: str | torch.device, *,
                     base: str = "genmo/mochi-1-preview") -> TrainParts:
        """Real base weights: `folder/transformer/` (or `dit.safetensors`) and `folder/vae/config.json`,
        else `base`'s; the music width from `folder/wav2vec2/config.json`, else wav2vec2-base's 768.
        The base is bfloat16 when the recipe runs under bf16 autocast on `device`, else float32. Under
        `accelerate launch`, pass each process's device (`accelerate.PartialState().device`)."""
        device = torch.device(device)
        folder = Path(folder) if folder is not None else None
        dtype = recipe.autocast_dtype(device) or torch.float32
        transformer = load_transformer(folder, base, dtype)
        try:
            if folder is not None and (folder / "vae").is_dir():
                vae_config = AutoencoderKLMochi.load_config(str(folder / "vae"))
            else:
                vae_config = AutoencoderKLMochi.load_config(base, subfolder="vae")
        except (OSError, ValueError) as err:
            raise WeightsError(f"cannot read the Mochi VAE config from {folder or base} ({err.__class__.__name__})",
                               "pass a weights folder with vae/ or download genmo/mochi-1-preview") from err
        wav2vec = folder / "wav2vec2" / "config.json" if folder is not None else None
        feat_dim = json.loads(wav2vec.read_text())["hidden_size"] if wav2vec and wav2vec.is_file() else WAV2VEC_DIM
        parts = cls.attach(transformer, recipe, feat_dim, vae_config)
        parts.transformer.to(device)
        return dataclasses.replace(parts, base_identity={"folder": _content(weights_identity(folder)),
                                                         "hub": _content(weights_identity(base))})

    @classmethod
    def attach(cls, transformer: MochiTransformer3DModel, recipe: Recipe, feat_dim: int,
               vae_config: Mapping) -> TrainParts:
        """Attach fresh ZICA + LoRA to a base transformer and mark the trainables (see the module docstring)."""
        mean = torch.tensor(vae_config["latents_mean"], dtype=torch.float32)
        std = torch.tensor(vae_config["latents_std"], dtype=torch.float32) / vae_config["scaling_factor"]
        zica, spec = make_trainable(transformer, recipe, feat_dim)
        return cls(transformer.train(), zica, spec, mean, std)

    @property
    def base_dtype(self) -> torch.dtype:
        """The dtype of the frozen base weights (the DiT's inputs are cast to it)."""
        return self.transformer.proj_out.weight.dtype

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        """The trainable parameters by name (a shared q/k/v LoRA A once, under the first projection holding it)."""
        return {name: p for name, p in self.transformer.named_parameters() if p.requires_grad}


def _content(identity: dict | None) -> dict | None:
    """A weights identity without the local path: the same files moved elsewhere are the same base."""
    return {k: v for k, v in identity.items() if k != "path"} if identity else identity


def lora_spec(recipe: Recipe) -> LoraSpec:
    """The adapter metadata of the recipe's LoRA (same rank, alpha and dropout for both kinds)."""
    values = (recipe.lora_rank, recipe.lora_alpha, recipe.lora_dropout) * 2
    names = ("qkv_proj_lora_rank", "qkv_proj_lora_alpha", "qkv_proj_lora_dropout",
             "out_proj_lora_rank", "out_proj_lora_alpha", "out_proj_lora_dropout")
    return LoraSpec(dict(zip(names, values, strict=True)))


def is_trainable_name(name: str) -> bool:
    """LoRA and audio parameters (the official `lora_` / `audio_` rule)."""
    return "lora_" in name or name.startswith(AUDIO_MODULES)


def make_trainable(transformer: MochiTransformer3DModel, recipe: Recipe, feat_dim: int) -> tuple[Zica, LoraSpec]:
    """Attach ZICA and LoRA, tie the q/k/v LoRA A, mark the trainables (module docstring)."""
    spec = lora_spec(recipe)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        zica = attach_zica(transformer, recipe.audio_layers, feat_dim=feat_dim)
        config = spec.peft_config()
        config.lora_dropout = recipe.lora_dropout
        transformer.add_adapter(config, ADAPTER_NAME)
    for targets in lora_layout(transformer).values():
        shared = transformer.get_submodule(targets[0]).lora_A[ADAPTER_NAME].weight
        for target in targets[1:]:
            transformer.get_submodule(target).lora_A[ADAPTER_NAME].weight = shared
    for name, param in transformer.named_parameters():
        param.requires_grad_(is_trainable_name(name))
        if param.requires_grad:
            param.data = param.data.float()
    if recipe.grad_checkpointing:
        transformer.enable_gradient_checkpointing(zica.checkpointed)
    return zica, spec

