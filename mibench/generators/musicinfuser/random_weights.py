"""MusicInfuser / Mochi pipelines with random weights at a named size, built directly on the device, for
`mibench bench gpu`: the real model's sizes ("full": diffusers' Mochi 1 preview transformer and VAE
configs, T5-XXL's encoder, wav2vec2-base, the released adapter's 16 audio layers and rank-64 LoRA) or the
tiny preset's ("tiny", the same code path on a CPU).

The transformer is created in its weight dtype on the device (a 10B model in bf16 needs 20 GB there, and
no host memory); T5, the VAE and wav2vec2 in float32, as `DancePipeline.from_weights` loads them. The
adapter's tensors are random (std 0.02). Speed and memory do not depend on the values; nothing here is
meant to generate a meaningful video.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from diffusers import AutoencoderKLMochi, MochiPipeline, MochiTransformer3DModel
from transformers import T5Config, T5EncoderModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from .adapter import LoraSpec, expected_shapes, load_adapter
from .features import MusicEncoder
from .pipeline import DancePipeline, check_placement, place
from .sampler import make_scheduler
from .tiny import TINY_AUDIO_LAYERS, TINY_LORA, TINY_T5, TINY_TRANSFORMER, TINY_VAE, TINY_WAV2VEC, tiny_tokenizer
from .zica import OFFICIAL_AUDIO_LAYERS, attach_zica

T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, relative_attention_num_buckets=32,
              feed_forward_proj="gated-gelu", vocab_size=32128)


@dataclass(frozen=True)
class Size:
    transformer: dict = field(default_factory=dict)  # MochiTransformer3DModel kwargs ({} = Mochi 1 preview)
    vae: dict = field(default_factory=dict)  # AutoencoderKLMochi kwargs ({} = Mochi 1 preview)
    t5: dict = field(default_factory=lambda: dict(T5_XXL))
    wav2vec: dict = field(default_factory=dict)  # Wav2Vec2Config kwargs ({} = wav2vec2-base)
    audio_layers: tuple[int, ...] = OFFICIAL_AUDIO_LAYERS
    lora: LoraSpec = field(default_factory=lambda: LoraSpec.of(qkv_rank=64, qkv_alpha=64, out_rank=64, out_alpha=64))


SIZES = {
    "full": Size(),
    "tiny": Size(TINY_TRANSFORMER, TINY_VAE, dict(TINY_T5, vocab_size=64), TINY_WAV2VEC, TINY_AUDIO_LAYERS, TINY_LORA),
}


@contextmanager
def built_on(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Modules created inside are allocated on `device` in `dtype` (no host copy, no float32 detour)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def random_pipeline(size: str, *, with_adapter: bool, device: str | torch.device, weight_dtype: torch.dtype,
                    offload: str | None = None, vae_tiling: bool = False) -> DancePipeline:
    """A DancePipeline of `SIZES[size]` with random weights, placed as `from_weights` places real ones."""
    device, spec = torch.device(device), SIZES[size]
    check_placement(device, offload)
    with built_on(device, weight_dtype):
        transformer = MochiTransformer3DModel(**spec.transformer)
    music = zica = None
    with built_on(device, torch.float32):
        vae = AutoencoderKLMochi(**spec.vae)
        text_encoder = T5EncoderModel(T5Config(**spec.t5))
        if with_adapter:
            extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
            music = MusicEncoder(Wav2Vec2Model(Wav2Vec2Config(**spec.wav2vec)), extractor, device)
    if with_adapter:
        zica = attach_zica(transformer, spec.audio_layers, feat_dim=music.feature_dim, device="meta")
        tensors = {key: 0.02 * torch.randn(shape) for key, shape in expected_shapes(transformer, spec.lora).items()}
        load_adapter(transformer, tensors, spec.lora, what="random adapter")
    mochi = MochiPipeline(scheduler=make_scheduler(), vae=vae.eval(), text_encoder=text_encoder.eval(),
                          tokenizer=tiny_tokenizer(), transformer=transformer.eval())
    place(mochi, device, offload, vae_tiling)
    return DancePipeline(mochi, music, zica)
