"""Tiny Qwen-Omni checkpoint folders in the released layout, written from `tiny_thinker` + `tiny_processor`
(test helper for tests/test_qwen_omni_load.py).

The layout of the released repos (Qwen/Qwen2.5-Omni-7B, Qwen/Qwen3-Omni-30B-A3B-Instruct):
- `config.json`: the whole Omni model (`model_type` qwen2_5_omni / qwen3_omni_moe, `architectures`
  Qwen2_5OmniModel / Qwen3OmniMoeForConditionalGeneration) with `thinker_config`, `talker_config` and
  `token2wav_config` (Qwen2.5) / `code2wav_config` (Qwen3) inside. Here the thinker config is the tiny one and the
  other parts are their config classes' defaults (only their JSON is written, none of their weights).
- `model-0000k-of-0000n.safetensors` + `model.safetensors.index.json` ({"metadata": {"total_size"}, "weight_map"}):
  every tensor of the whole model under its original module path: `thinker.model.*` (the LLM),
  `thinker.visual.*`, `thinker.audio_tower.*`, `thinker.lm_head.weight`, `talker.*`, `token2wav.*` / `code2wav.*`.
  transformers maps these onto the thinker class's own names (`model.language_model.*`, `model.visual.*`,
  `model.audio_tower.*`, `lm_head.*`): transformers/conversion_mapping.py, entry
  "Qwen2_5OmniThinkerForConditionalGeneration" (PrefixChange(prefix_to_remove="thinker"), ^visual / ^audio_tower ->
  model.*, ^model -> model.language_model), which Qwen3OmniMoeThinkerForConditionalGeneration reuses. The Qwen3-Omni
  MoE experts are stored one module per expert (`mlp.experts.{i}.gate_proj/up_proj/down_proj.weight`, as the
  per-expert keys `thinker.model.layers.0.mlp.experts.0.gate_proj.weight` that public loaders of the checkpoint
  match); transformers fuses them ("qwen2_moe" converter: gate/up stacked and concatenated into
  `experts.gate_up_proj` (E, 2I, H), down stacked into `experts.down_proj` (E, H, I)). The talker and
  code2wav/token2wav tensors are skipped by the thinker (`_keys_to_ignore_on_load_unexpected` ^talker, ^token2wav /
  ^code2wav).
- `preprocessor_config.json`: one file holding the Qwen2-VL image settings and the Whisper feature extractor's, as
  transformers 4.x wrote them (`RELEASED_PREPROCESSOR_KEYS`: image_processor_type "Qwen2VLImageProcessor",
  flat min_pixels/max_pixels, no `size`), and processor_class Qwen2_5OmniProcessor / Qwen3OmniMoeProcessor; no
  video_preprocessor_config.json, no processor_config.json.
- `chat_template.json` ({"chat_template": ...}: the processor's template; both families ship this form, not
  chat_template.jinja), the tokenizer files (`vocab.json`, `merges.txt`, `tokenizer.json`, `tokenizer_config.json`
  here the tiny tokenizer's, without a chat template of its own) and `generation_config.json` (Qwen2.5-Omni-7B's
  holds only {"_from_model_config": true, "transformers_version"}; the same minimal file is written for Qwen3).
The weights are written in the thinker's dtype (float32 by default: the load must be bit-identical); the released
ones are bfloat16 with `torch_dtype` "bfloat16" in config.json (`dtype=torch.bfloat16` writes that form).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen2_5OmniConfig, Qwen3OmniMoeConfig

from mibench.judges.qwen_omni.tiny import TOKENIZER_DIRS, tiny_processor, tiny_thinker

FULL_CONFIG = {"qwen2.5-omni": (Qwen2_5OmniConfig, "Qwen2_5OmniModel"),
               "qwen3-omni": (Qwen3OmniMoeConfig, "Qwen3OmniMoeForConditionalGeneration")}
PROCESSOR_CLASS = {"qwen2.5-omni": "Qwen2_5OmniProcessor", "qwen3-omni": "Qwen3OmniMoeProcessor"}
# the keys of Qwen/Qwen2.5-Omni-7B's preprocessor_config.json (Qwen3-Omni's: the same keys)
RELEASED_PREPROCESSOR_KEYS = {
    "chunk_length", "dither", "feature_extractor_type", "feature_size", "hop_length", "image_mean",
    "image_processor_type", "image_std", "max_pixels", "merge_size", "min_pixels", "n_fft", "n_samples",
    "nb_max_frames", "padding_side", "padding_value", "patch_size", "processor_class", "return_attention_mask",
    "sampling_rate", "temporal_patch_size"}
_IMAGE_KEYS = ("image_mean", "image_std", "image_processor_type", "merge_size", "patch_size", "temporal_patch_size")
# a few tensors of the parts the thinker does not load (names as in the released index)
_OTHER_PARTS = {
    "qwen2.5-omni": ("talker.model.layers.0.self_attn.q_proj.weight", "talker.codec_head.weight",
                     "token2wav.code2wav_dit_model.input_embed.proj.weight"),
    "qwen3-omni": ("talker.model.layers.0.self_attn.q_proj.weight", "talker.codec_head.weight",
                   "code2wav.pre_transformer.layers.0.self_attn.q_proj.weight"),
}


def released_tensors(thinker: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The thinker's state dict under the released key names (the inverse of transformers' conversion mapping)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in thinker.state_dict().items():
        name = re.sub(r"^model\.language_model\.", "model.", key)
        name = "thinker." + re.sub(r"^model\.(visual|audio_tower)\.", r"\1.", name)
        if name.endswith(".mlp.experts.gate_up_proj"):  # (E, 2I, H) -> per expert gate (I, H) and up (I, H)
            half = value.shape[1] // 2
            for i, expert in enumerate(value):
                out[f"{name[:-len('gate_up_proj')]}{i}.gate_proj.weight"] = expert[:half].clone()
                out[f"{name[:-len('gate_up_proj')]}{i}.up_proj.weight"] = expert[half:].clone()
        elif name.endswith(".mlp.experts.down_proj"):  # (E, H, I) -> per expert down (H, I)
            for i, expert in enumerate(value):
                out[f"{name[:-len('down_proj')]}{i}.down_proj.weight"] = expert.clone()
        else:
            out[name] = value.detach().clone().contiguous()
    return out


def released_preprocessor_config(family: str) -> dict:
    """preprocessor_config.json as released: the image processor's and the feature extractor's saved fields in one
    file (the image side as 4.x saved it: flat min_pixels/max_pixels instead of `size`) plus processor_class."""
    processor = tiny_processor(family)
    image = processor.image_processor.to_dict()
    merged = {**processor.feature_extractor.to_dict(), **{k: image[k] for k in _IMAGE_KEYS},
              "min_pixels": image["size"]["shortest_edge"], "max_pixels": image["size"]["longest_edge"],
              "processor_class": PROCESSOR_CLASS[family]}
    assert set(merged) == RELEASED_PREPROCESSOR_KEYS, set(merged) ^ RELEASED_PREPROCESSOR_KEYS
    return dict(sorted(merged.items()))


def write_checkpoint(folder: str | Path, family: str, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                     drop: str | None = None) -> Path:
    """A released-layout checkpoint folder of `tiny_thinker(family, seed)` (weights cast to `dtype`); `drop`
    leaves that released tensor name out (shard and index). Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    thinker = tiny_thinker(family, seed=seed)
    config_class, architecture = FULL_CONFIG[family]
    config = config_class(thinker_config=thinker.config.to_dict())
    config.architectures = [architecture]
    config.dtype = dtype
    config.to_json_file(folder / "config.json")
    (folder / "generation_config.json").write_text(
        json.dumps({"_from_model_config": True, "transformers_version": "4.52.4"}, indent=2) + "\n")

    tensors = {k: v.to(dtype) for k, v in released_tensors(thinker).items() if k != drop}
    generator = torch.Generator().manual_seed(seed)
    others = {k: torch.randn(8, 4, generator=generator).to(dtype) for k in _OTHER_PARTS[family]}
    keys = sorted(tensors)
    shards = [{k: tensors[k] for k in keys[:len(keys) // 2]},
              {**{k: tensors[k] for k in keys[len(keys) // 2:]}, **others}]
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map |= {k: name for k in shard}
        total += sum(t.numel() * t.element_size() for t in shard.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))

    (folder / "preprocessor_config.json").write_text(json.dumps(released_preprocessor_config(family), indent=2))
    tokenizer_dir = TOKENIZER_DIRS[family]
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tokenizer_dir / name).read_bytes())
    tiny_processor(family).tokenizer.backend_tokenizer.model.save(str(folder))  # vocab.json, merges.txt
    template = (tokenizer_dir / "chat_template.jinja").read_text(encoding="utf-8")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}, indent=2))
    return folder


def shard_names(folder: Path) -> list[Path]:
    """The checkpoint's safetensors shards, as its index lists them."""
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return [folder / name for name in sorted(set(index["weight_map"].values()))]
