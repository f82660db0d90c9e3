"""Tiny presets: the Mochi / MusicInfuser parts at toy size with seeded random weights, built locally.

No download: a word-level T5 tokenizer over a small vocabulary is built in code. The parts go through the
same code as the real model (ZICA attachment, strict adapter loading from an official-layout state dict,
sampler, VAE decode). The tiny adapter's tensors are random and non-zero (`lora_B` and the audio `to_out`
included, unlike training's initialisation) so that music changes the video, and rounded to bfloat16 so
that an exported tiny adapter reloads exactly. Sizes: 2 DiT blocks of width 32, ZICA on both, LoRA ranks
4 (q/k/v, alpha 8) and 2 (output, alpha 3), a 0.6M-parameter VAE, a 2-layer T5 and a 2-layer wav2vec2 of
width 32. Frames must be at least 16x16 pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKLMochi, MochiTransformer3DModel
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
)

from .adapter import LoraSpec, expected_shapes, load_adapter, save_adapter
from .features import MusicEncoder
from .zica import Zica, attach_zica

TINY_TRANSFORMER = dict(patch_size=2, num_attention_heads=2, attention_head_dim=16, num_layers=2,
                        pooled_projection_dim=32, in_channels=12, qk_norm="rms_norm", text_embed_dim=32,
                        time_embed_dim=32, activation_fn="swiglu", max_sequence_length=16)
TINY_AUDIO_LAYERS = (0, 1)
TINY_LORA = LoraSpec.of(qkv_rank=4, qkv_alpha=8, out_rank=2, out_alpha=3)
TINY_VAE = dict(latent_channels=12, out_channels=3, encoder_block_out_channels=(32,) * 4,
                decoder_block_out_channels=(32,) * 4, layers_per_block=(1,) * 5)
TINY_T5 = dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
               feed_forward_proj="gated-gelu")
TINY_WAV2VEC = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                    conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
TINY_WORDS = tuple(("a professional male female dancer dancers dancing dance video in the of with studio white "
              "backdrop background setting captured from front moving view break pop lock hip-hop house "
              "waack krump street jazz ballet basic advanced k-pop").split())
_SPECIALS = ("<pad>", "</s>", "<unk>")


@dataclass
class TinyParts:
    transformer: MochiTransformer3DModel
    vae: AutoencoderKLMochi
    text_encoder: T5EncoderModel
    tokenizer: PreTrainedTokenizerFast
    music: MusicEncoder | None
    zica: Zica | None


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Lower-cased word-level tokenizer with T5's conventions: pad 0, `</s>` appended, unknown words -> <unk>."""
    vocab = {token: i for i, token in enumerate(_SPECIALS + TINY_WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=TINY_TRANSFORMER["max_sequence_length"])


def tiny_adapter_tensors(transformer: MochiTransformer3DModel, spec: LoraSpec) -> dict[str, torch.Tensor]:
    """Random official-layout adapter tensors (std 0.1, bf16-representable) for this tiny transformer."""
    shapes = expected_shapes(transformer, spec)
    return {key: (0.1 * torch.randn(shape)).bfloat16().float() for key, shape in sorted(shapes.items())}


def tiny_parts(*, with_adapter: bool = True, seed: int = 0, fuse_lora: bool = False) -> TinyParts:
    """All tiny parts; the base parts are the same with and without the adapter for one seed.
    `fuse_lora` merges the LoRA into the weights, as `DancePipeline.from_weights` can."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = MochiTransformer3DModel(**TINY_TRANSFORMER)
        torch.nn.init.normal_(transformer.pos_frequencies, std=0.3)
        vae = AutoencoderKLMochi(**TINY_VAE)
        text_encoder = T5EncoderModel(T5Config(vocab_size=len(_SPECIALS) + len(TINY_WORDS), **TINY_T5))
        music = zica = None
        if with_adapter:
            extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
            music = MusicEncoder(Wav2Vec2Model(Wav2Vec2Config(**TINY_WAV2VEC)), extractor)
            zica = attach_zica(transformer, TINY_AUDIO_LAYERS, feat_dim=music.feature_dim, device="meta")
            load_adapter(transformer, tiny_adapter_tensors(transformer, TINY_LORA), TINY_LORA, fuse=fuse_lora,
                         what="tiny adapter")
    return TinyParts(transformer.eval(), vae.eval(), text_encoder.eval(), tiny_tokenizer(), music, zica)


def write_tiny_weights(root: Path, seed: int = 0) -> Path:
    """The tiny preset in the `--weights DIR` layout: diffusers `transformer/`, `vae/`, `text_encoder/`,
    `tokenizer/`, the official-layout `musicinfuser.safetensors`, `wav2vec2/` and a `config.json` naming
    the audio layers. `DancePipeline.from_weights` loads it back to the tiny preset exactly."""
    root = Path(root)
    base = tiny_parts(with_adapter=False, seed=seed)
    for name in ("transformer", "vae", "text_encoder", "tokenizer"):
        getattr(base, name).save_pretrained(root / name)
    infuser = tiny_parts(with_adapter=True, seed=seed)
    save_adapter(infuser.transformer, root / "musicinfuser.safetensors", TINY_LORA)
    infuser.music.model.save_pretrained(root / "wav2vec2")
    infuser.music.extractor.save_pretrained(root / "wav2vec2")
    (root / "config.json").write_text(json.dumps({"audio": {"audio_cross_attn_layers": list(TINY_AUDIO_LAYERS)}}))
    return root
