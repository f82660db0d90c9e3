"""MusicInfuser (Mochi + zero-initialised audio cross-attention + high-rank LoRA) and the Mochi baseline,
built on diffusers' Mochi, peft and transformers while loading the official weights.

Modules: `pipeline` (DancePipeline: load, generate, timings), `sampler` (the guided Euler loop),
`zica` (audio modules hooked into the diffusers transformer), `adapter` (official adapter <-> peft),
`convert` (genmo DiT -> diffusers), `features` (wav2vec2 music features), `components` (loading the
diffusers parts), `checkpoint` (strict safetensors reading), `tiny` (offline tiny presets).
"""

from .adapter import LoraSpec, adapter_state_dict, load_adapter, read_adapter, save_adapter
from .convert import genmo_to_diffusers, load_genmo_transformer
from .features import MusicEncoder
from .pipeline import DancePipeline, Timings
from .sampler import TextCondition, denoise, dit_to_vae_latents, initial_noise, make_scheduler
from .tiny import TINY_AUDIO_LAYERS, TINY_LORA
from .zica import OFFICIAL_AUDIO_LAYERS, attach_zica

__all__ = [
    "OFFICIAL_AUDIO_LAYERS",
    "TINY_AUDIO_LAYERS",
    "TINY_LORA",
    "DancePipeline",
    "LoraSpec",
    "MusicEncoder",
    "TextCondition",
    "Timings",
    "adapter_state_dict",
    "attach_zica",
    "denoise",
    "dit_to_vae_latents",
    "genmo_to_diffusers",
    "initial_noise",
    "load_adapter",
    "load_genmo_transformer",
    "make_scheduler",
    "read_adapter",
    "save_adapter",
]
