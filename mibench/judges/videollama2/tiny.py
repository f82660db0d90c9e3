"""The tiny VideoLLaMA 2.1-AV preset: the real architecture with a small config and seeded random
weights, built locally without any download (tests, CI, `mibench demo`).

Tokenizer: `tiny_tokenizer/`, a 563-token byte-level BPE with Qwen2's pre-tokenizer and ChatML
template (the project's golden-fixture tokenizer). The LLM vocabulary is padded to 576 like Qwen2's,
and the padding rows of lm_head are zero so they never win the argmax.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2Tokenizer, SiglipVisionConfig

from mibench.judges.videollama2.beats import BEATsConfig
from mibench.judges.videollama2.load import Settings
from mibench.judges.videollama2.model import ModelConfig, VideoLLaMA2AV

TOKENIZER_DIR = Path(__file__).resolve().parent / "tiny_tokenizer"


def tiny_config() -> ModelConfig:
    """4 frames of 32 px (16 patches each -> 8 video tokens), 2-layer BEATs, 2-layer Qwen2 of width 64."""
    llm = Qwen2Config(
        vocab_size=576, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}, bos_token_id=560, eos_token_id=562,
    )
    # 3 SigLIP layers with mm_vision_select_layer -2 -> the first 2 are kept
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                image_size=32, patch_size=8, vision_use_head=False)
    beats = BEATsConfig(embed_dim=24, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_layers=2,
                        encoder_attention_heads=4)
    return ModelConfig(llm, vision, beats, "mlp2x_gelu")


def build_random(config: ModelConfig, *, num_frames: int, image_size: int, seed: int = 0,
                 ) -> tuple[VideoLLaMA2AV, PreTrainedTokenizerBase, Settings]:
    """A model of `config` with seeded random weights (float32, CPU), the tiny tokenizer and settings for
    `num_frames` frames of `image_size` px; the same seed gives the same weights."""
    tokenizer = Qwen2Tokenizer.from_pretrained(TOKENIZER_DIR)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VideoLLaMA2AV(config)
    model.llm.lm_head.weight[len(tokenizer):] = 0.0
    settings = Settings(
        num_frames=num_frames, image_size=(image_size, image_size), image_mean=[0.5] * 3, image_std=[0.5] * 3,
        rescale=1 / 255, repetition_penalty=1.05,
        eos_ids=frozenset({tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id}),
    )
    return model, tokenizer, settings


def build_tiny(seed: int = 0) -> tuple[VideoLLaMA2AV, PreTrainedTokenizerBase, Settings]:
    """Model (float32, CPU), tokenizer and settings; the same seed gives the same weights."""
    return build_random(tiny_config(), num_frames=4, image_size=32, seed=seed)
