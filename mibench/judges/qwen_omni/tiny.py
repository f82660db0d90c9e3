"""Tiny Qwen2.5-Omni / Qwen3-Omni thinker presets and processors built from local parts only (no download).

`tiny_thinker(family)` is the real transformers thinker class (`Qwen2_5OmniThinkerForConditionalGeneration`,
`Qwen3OmniMoeThinkerForConditionalGeneration`) with a small config and seeded random weights; `tiny_processor(family)`
is the real processor class (`Qwen2_5OmniProcessor`, `Qwen3OmniMoeProcessor`) assembled from a tiny tokenizer and the
released checkpoints' preprocessing settings. Only sizes shrink; every constant the preprocessing and the 3D (TMRoPE)
positions depend on is the released one.

Facts used (sources):
- Preprocessing, `preprocessor_config.json` of Qwen/Qwen2.5-Omni-7B: Qwen2VLImageProcessor, patch_size 14,
  merge_size 2, temporal_patch_size 2, min_pixels 3136, max_pixels 12845056, CLIP image_mean/std;
  WhisperFeatureExtractor feature_size 128, sampling_rate 16000, n_fft 400, hop_length 160, chunk_length 300,
  dither 0.0, padding_value 0.0, return_attention_mask true. Qwen/Qwen3-Omni-30B-A3B-Instruct: the same except
  patch_size 16 and image_mean/std 0.5. No video_preprocessor_config.json in the Qwen3-Omni repos, so the video side
  is Qwen2VLVideoProcessor's defaults with the image settings. Per-call video pixel budget: the processor classes'
  own `videos_kwargs` (128..768 merged patches per frame), the same as qwen-omni-utils' VIDEO_MIN/MAX_PIXELS.
- Thinker configs (`thinker_config` in the checkpoints' config.json): Qwen2.5-Omni-7B: vision patch 14, merge 2,
  temporal 2, window_size 112, full attention every 8th block; audio 128 mel bins, n_window 100;
  position_id_per_seconds 25, seconds_per_chunk 2, mrope_section [16, 24, 24] for head_dim 128.
  Qwen3-Omni-30B-A3B: vision patch 16, merge 2, temporal 2, 2304 position embeddings, deepstack layers; audio
  128 mel bins, n_window 50, n_window_infer 800, conv_chunksize 500; MoE text (128 experts, top-8, head_dim 128),
  interleaved mrope_section [24, 20, 20]; position_id_per_seconds 13.
- Special tokens and ids: the tokenizer_config.json of each checkpoint (Qwen2.5-Omni: <|AUDIO|> 151646,
  <|audio_bos|> 151647, <|audio_eos|> 151648, <|vision_bos|> 151652, <|vision_eos|> 151653, <|IMAGE|> 151655,
  <|VIDEO|> 151656; Qwen3-Omni: <|vision_start|> 151652, <|vision_end|> 151653, <|image_pad|> 151655,
  <|video_pad|> 151656, <|audio_start|> 151669, <|audio_end|> 151670, <|audio_pad|> 151675). The tiny tokenizers
  (`tiny_tokenizer/`, `tiny_tokenizer_qwen3/`) are mibench's 560-entry Qwen2 byte-level BPE
  (videollama2/tiny_tokenizer) plus the added tokens 151643.. of each family at 560 + (real id - 151643).
- Chat templates: `tiny_tokenizer/chat_template.jinja` is Qwen2.5-Omni's template (default system turn
  "You are a helpful assistant."); `tiny_tokenizer_qwen3/chat_template.jinja` is the inference subset of
  Qwen3-Omni's (no default system turn, <|vision_start|>/<|audio_start|> placeholders; tools and <think>
  handling left out).
- Processor classes and their defaults: transformers' processing_qwen2_5_omni.py / processing_qwen3_omni_moe.py
  (fps default 2.0 / 1.0, position_id_per_seconds 25 / 13, seconds_per_chunk 2, n_window 50).
- The model cards (QwenLM/Qwen2.5-Omni, QwenLM/Qwen3-Omni README.md): the system prompts, use_audio_in_video, and
  Qwen3-Omni's evaluation setting (no system prompt, media before the question, video at fps=2).

The processors are assembled by `processor.build_processor` (transformers' video processor needs torchvision).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    PreTrainedTokenizerBase,
    Qwen2_5OmniProcessor,
    Qwen2_5OmniThinkerConfig,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLImageProcessorPil,
    Qwen3OmniMoeProcessor,
    Qwen3OmniMoeThinkerConfig,
    Qwen3OmniMoeThinkerForConditionalGeneration,
    WhisperFeatureExtractor,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from mibench.judges.qwen_omni.processor import build_processor

FAMILIES = ("qwen2.5-omni", "qwen3-omni")

_HERE = Path(__file__).resolve().parent
TOKENIZER_DIRS = {"qwen2.5-omni": _HERE / "tiny_tokenizer", "qwen3-omni": _HERE / "tiny_tokenizer_qwen3"}
THINKER_CLASSES = {"qwen2.5-omni": Qwen2_5OmniThinkerForConditionalGeneration,
                   "qwen3-omni": Qwen3OmniMoeThinkerForConditionalGeneration}

# preprocessor_config.json of the released checkpoints (see the module docstring)
PATCH_SIZE = {"qwen2.5-omni": 14, "qwen3-omni": 16}
IMAGE_MEAN_STD = {"qwen2.5-omni": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD), "qwen3-omni": ((0.5,) * 3, (0.5,) * 3)}
MERGE_SIZE, TEMPORAL_PATCH_SIZE, MIN_PIXELS, MAX_PIXELS = 2, 2, 3136, 12845056
AUDIO = dict(feature_size=128, sampling_rate=16000, n_fft=400, hop_length=160, chunk_length=300, dither=0.0,
             padding_value=0.0, padding_side="right", return_attention_mask=True)
ENDOFTEXT_ID = 560  # <|endoftext|> (the pad token) in both tiny tokenizers; real id 151643


def _check(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


def tiny_tokenizer(family: str) -> PreTrainedTokenizerBase:
    """The family's tiny tokenizer (byte-level BPE + the family's added tokens; chat template in the folder)."""
    _check(family)
    return Qwen2Tokenizer.from_pretrained(TOKENIZER_DIRS[family])


def tiny_processor(family: str) -> Qwen2_5OmniProcessor | Qwen3OmniMoeProcessor:
    """The family's processor: tiny tokenizer + the released checkpoint's image/video/audio preprocessing."""
    tokenizer = tiny_tokenizer(family)
    patch_size, (mean, std) = PATCH_SIZE[family], IMAGE_MEAN_STD[family]
    image = Qwen2VLImageProcessorPil(patch_size=patch_size, merge_size=MERGE_SIZE,
                                     temporal_patch_size=TEMPORAL_PATCH_SIZE, min_pixels=MIN_PIXELS,
                                     max_pixels=MAX_PIXELS, image_mean=list(mean), image_std=list(std))
    return build_processor(family, image, WhisperFeatureExtractor(**AUDIO), tokenizer, tokenizer.chat_template)


def tiny_config(family: str) -> Qwen2_5OmniThinkerConfig | Qwen3OmniMoeThinkerConfig:
    """2-layer LLM of width 64 (Qwen3: MoE, 4 experts, top-2), 2-layer vision and audio encoders of width 32.

    Token ids are the tiny tokenizer's; vocab_size is its length (the real ones pad: 152064 rows for 151665 tokens).
    """
    tokenizer = tiny_tokenizer(family)
    ids = {name: tokenizer.convert_tokens_to_ids(getattr(tokenizer, token)) for name, token in (
        ("image_token_id", "image_token"), ("video_token_id", "video_token"), ("audio_token_id", "audio_token"),
        ("vision_start_token_id", "vision_bos_token"), ("vision_end_token_id", "vision_eos_token"),
        ("audio_start_token_id", "audio_bos_token"), ("audio_end_token_id", "audio_eos_token"))}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=False,
                eos_token_id=tokenizer.eos_token_id)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3,
                  patch_size=PATCH_SIZE[family], spatial_merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE,
                  out_hidden_size=64)
    audio = dict(num_mel_bins=AUDIO["feature_size"], encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                 d_model=32, max_source_positions=1500, output_dim=64)
    if family == "qwen2.5-omni":
        # head_dim 16: the real mrope_section [16, 24, 24] (head_dim 128) scaled by 1/8
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}
        vision |= dict(window_size=112, fullatt_block_indexes=[1])
        audio |= dict(n_window=100)
        return Qwen2_5OmniThinkerConfig(
            text_config=text, vision_config=vision, audio_config=audio, position_id_per_seconds=25,
            seconds_per_chunk=2, image_token_index=ids.pop("image_token_id"),
            video_token_index=ids.pop("video_token_id"), audio_token_index=ids.pop("audio_token_id"), **ids)
    # head_dim 32 > hidden/heads like the real 128 > 2048/32; the real mrope_section [24, 20, 20] scaled by 1/4
    text |= dict(head_dim=32, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, norm_topk_prob=True,
                 decoder_sparse_step=1, mlp_only_layers=[],
                 rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [6, 5, 5],
                                  "interleaved": True, "mrope_interleaved": True})
    vision |= dict(hidden_act="gelu_pytorch_tanh", num_position_embeddings=2304, deepstack_visual_indexes=[0])
    audio |= dict(n_window=50, n_window_infer=800, conv_chunksize=500, downsample_hidden_size=16)
    return Qwen3OmniMoeThinkerConfig(text_config=text, vision_config=vision, audio_config=audio,
                                     position_id_per_seconds=13, seconds_per_chunk=2, **ids)


def tiny_thinker(family: str, seed: int = 0) -> torch.nn.Module:
    """The family's real thinker class with `tiny_config(family)`, seeded random weights, eval mode, float32, CPU.

    The same seed gives the same weights; the global RNG state is left as it was.
    """
    config = tiny_config(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = THINKER_CLASSES[family](config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = ENDOFTEXT_ID
    return model.to(torch.float32).eval()
