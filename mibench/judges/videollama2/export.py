"""Write a VideoLLaMA 2.1-AV model in the official checkpoint layout, the one `load.py` reads.

    save_official(judge.model, judge.tokenizer, judge.settings, Path("out"))
    VideoLLaMA2Judge.from_pretrained("out/checkpoint")       # siglip/ is found through config.json

Layout (DAMO-NLP-SG/VideoLLaMA2.1-7B-AV next to google/siglip-so400m-patch14-384, one shard):
- `out/checkpoint/config.json`: `model_type` videollama2_qwen2, the Qwen2 fields, the `mm_*` fields,
  `num_frames`, `mm_vision_tower` "../siglip" and, only when BEATs is not the official
  `BEATsConfig()`, `mm_audio_tower_cfg` with its dims;
- `out/checkpoint/generation_config.json`: Qwen2-Instruct sampling fields, eos ids, repetition penalty;
- `out/checkpoint/model.safetensors` with the official key names: the LLM as Qwen2ForCausalLM,
  `model.mm_projector.*`, `model.mm_projector_a.*`, `model.audio_tower.*` (BEATs, with the
  pos_conv weight split back into the legacy `encoder.pos_conv.0.weight_g` / `weight_v` and the
  shared relative-bias table copied into every layer) and the SigLIP copy under
  `model.vision_tower.vision_tower.vision_model.*`, all in `dtype`;
- `out/checkpoint/` tokenizer files, copied from the folder the tokenizer was loaded from;
- `out/siglip/`: a full `SiglipModel` config (vision + text), `preprocessor_config.json`
  (SiglipImageProcessor, bicubic) and float32 `model.safetensors` (`vision_model.*`, `text_model.*`,
  `logit_scale`, `logit_bias`).

Parts the judge never runs are not in the port's model; they are written with weights drawn from
`seed`: SigLIP's last layer (`mm_vision_select_layer` -2 skips it), its pooling head and a tiny text
model, and BEATs' AudioSet `predictor`. The weight-norm split is `v` = the weight, `g` = its
per-tap norm with the loader's eps, so the loader's fold gives the weight back to float32 rounding.
The folder is written under a `.partial` name and renamed when complete; an existing non-empty
`out_dir` is an error.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerBase, SiglipConfig, SiglipModel, SiglipVisionConfig

from mibench.errors import ConfigError
from mibench.judges.videollama2.beats import BEATsConfig
from mibench.judges.videollama2.load import QWEN2_FIELDS, Settings
from mibench.judges.videollama2.model import VideoLLaMA2AV

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json",
                   "special_tokens_map.json", "chat_template.jinja")
AUDIOSET_CLASSES = 527
VISION_SELECT_LAYER = -2
# config.json fields of the official checkpoint that the port does not read.
_OFFICIAL_FIELDS = {
    "architectures": ["Videollama2Qwen2ForCausalLM"], "model_type": "videollama2_qwen2",
    "mm_projector_type": "stc_connector_v35", "mm_vision_select_feature": "patch",
    "mm_vision_select_layer": VISION_SELECT_LAYER, "mm_audio_tower": "audio_tower.bin",
    "image_aspect_ratio": "pad", "mm_use_im_patch_token": False, "mm_use_im_start_end": False,
    "mm_projector_lr": None, "freeze_mm_mlp_adapter": False, "tune_mm_mlp_adapter": False,
    "tune_mm_mlp_adapter_a": False, "use_mm_proj": True, "use_cache": True, "initializer_range": 0.02,
    "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right",
}
_SIGLIP_TEXT = {"model_type": "siglip_text_model", "vocab_size": 256, "hidden_size": 16, "intermediate_size": 32,
                "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16,
                "pad_token_id": 1, "bos_token_id": 254, "eos_token_id": 255}
_VISION_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
                  "image_size", "patch_size", "hidden_act", "layer_norm_eps")


def save_official(model: VideoLLaMA2AV, tokenizer: PreTrainedTokenizerBase, settings: Settings, out_dir: Path, *,
                  dtype: torch.dtype = torch.float32, seed: int = 0) -> Path:
    """Write `out_dir/checkpoint` and `out_dir/siglip` (see the module docstring); returns the checkpoint."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} already exists and is not empty", "choose a new folder")
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    checkpoint, siglip = partial / "checkpoint", partial / "siglip"
    checkpoint.mkdir(parents=True)
    siglip.mkdir()
    vision = _full_siglip(model, seed)
    _write_json(checkpoint / "config.json", checkpoint_config(model, settings, dtype))
    _write_json(checkpoint / "generation_config.json", generation_config(model, tokenizer, settings))
    _save(checkpoint_tensors(model, vision, seed), checkpoint / "model.safetensors", dtype)
    _copy_tokenizer(tokenizer, checkpoint)
    _write_json(siglip / "config.json", siglip_config(model))
    _write_json(siglip / "preprocessor_config.json", preprocessor_config(settings))
    _save(vision, siglip / "model.safetensors", torch.float32)
    if out_dir.exists():
        out_dir.rmdir()
    partial.rename(out_dir)
    return out_dir / "checkpoint"


def checkpoint_config(model: VideoLLaMA2AV, settings: Settings, dtype: torch.dtype) -> dict:
    """checkpoint/config.json."""
    cfg = model.cfg
    config = {k: getattr(cfg.llm, k) for k in QWEN2_FIELDS}
    config |= _OFFICIAL_FIELDS | {
        "rope_theta": cfg.llm.rope_parameters["rope_theta"],
        "mm_vision_tower": "../siglip",
        "mm_hidden_size": cfg.vision.hidden_size,
        "mm_hidden_size_a": cfg.beats.encoder_embed_dim,
        "hidden_size_a": cfg.llm.hidden_size,
        "mm_projector_a_type": cfg.audio_projector,
        "num_frames": settings.num_frames,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    if cfg.beats != BEATsConfig():
        beats = asdict(cfg.beats) | {"finetuned_model": True, "predictor_class": AUDIOSET_CLASSES}
        config["mm_audio_tower_cfg"] = beats
    return dict(sorted(config.items()))


def generation_config(model: VideoLLaMA2AV, tokenizer: PreTrainedTokenizerBase, settings: Settings) -> dict:
    """checkpoint/generation_config.json, Qwen2-Instruct style (mm_infer overrides the sampling fields)."""
    eos = [tokenizer.eos_token_id, *sorted(settings.eos_ids - {tokenizer.eos_token_id})]
    return {"bos_token_id": model.cfg.llm.bos_token_id, "do_sample": True, "eos_token_id": eos,
            "pad_token_id": tokenizer.pad_token_id, "repetition_penalty": settings.repetition_penalty,
            "temperature": 0.7, "top_k": 20, "top_p": 0.8}


def siglip_config(model: VideoLLaMA2AV) -> dict:
    """siglip/config.json: a SiglipModel config whose vision part has the selected layer's successor."""
    vision = {k: getattr(_full_vision_config(model), k) for k in _VISION_FIELDS}
    return {"architectures": ["SiglipModel"], "initializer_factor": 1.0, "model_type": "siglip",
            "text_config": _SIGLIP_TEXT, "torch_dtype": "float32",
            "vision_config": vision | {"model_type": "siglip_vision_model"}}


def preprocessor_config(settings: Settings) -> dict:
    """siglip/preprocessor_config.json (SiglipImageProcessor, PIL bicubic = resample 3)."""
    height, width = settings.image_size
    return {"do_convert_rgb": None, "do_normalize": True, "do_rescale": True, "do_resize": True,
            "image_mean": list(settings.image_mean), "image_processor_type": "SiglipImageProcessor",
            "image_std": list(settings.image_std), "processor_class": "SiglipProcessor", "resample": 3,
            "rescale_factor": settings.rescale, "size": {"height": height, "width": width}}


def checkpoint_tensors(model: VideoLLaMA2AV, vision: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """model.safetensors under the official names (`vision` = siglip/'s tensors, for the bf16-era copy)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("llm."):
            out[key.removeprefix("llm.")] = value
        elif key.startswith(("mm_projector.", "mm_projector_a.")):
            out[f"model.{key}"] = value
    out |= {f"model.audio_tower.{k}": v for k, v in beats_tensors(model, seed).items()}
    out |= {f"model.vision_tower.vision_tower.{k}": v for k, v in vision.items() if k.startswith("vision_model.")}
    return out


def beats_tensors(model: VideoLLaMA2AV, seed: int) -> dict[str, torch.Tensor]:
    """The audio tower as the official BEATs module names it (the inverse of `beats.convert_checkpoint`)."""
    state = model.audio_tower.state_dict()
    weight = state.pop("encoder.pos_conv.weight").float()
    norm = (weight.double().pow(2).sum(dim=(0, 1), keepdim=True) + 1e-6).sqrt().float()
    out = {"encoder.pos_conv.0.weight_g": norm, "encoder.pos_conv.0.weight_v": weight,
           "encoder.pos_conv.0.bias": state.pop("encoder.pos_conv.bias")}
    table = state.pop("encoder.relative_attention_bias.weight")
    for i in range(model.cfg.beats.encoder_layers):
        out[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = table
    generator = torch.Generator().manual_seed(seed)
    dim = model.cfg.beats.encoder_embed_dim
    out["predictor.weight"] = torch.randn(AUDIOSET_CLASSES, dim, generator=generator) * dim**-0.5
    out["predictor.bias"] = torch.zeros(AUDIOSET_CLASSES)
    return out | state


def _full_vision_config(model: VideoLLaMA2AV) -> SiglipVisionConfig:
    """The SigLIP vision config before truncation to the selected hidden state."""
    config = copy.deepcopy(model.cfg.vision)
    config.num_hidden_layers = model.cfg.vision.num_hidden_layers - VISION_SELECT_LAYER - 1
    config.vision_use_head = True
    return config


def _full_siglip(model: VideoLLaMA2AV, seed: int) -> dict[str, torch.Tensor]:
    """siglip/'s tensors: a seeded SiglipModel with the port's vision weights put in."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        full = SiglipModel(SiglipConfig(text_config=_SIGLIP_TEXT, vision_config=_full_vision_config(model).to_dict()))
    state = full.state_dict()
    for key, value in model.vision.state_dict().items():
        target = f"vision_model.{key}"
        assert state[target].shape == value.shape, f"SigLIP layout mismatch at {target}"
        state[target] = value
    return state


def _save(tensors: dict[str, torch.Tensor], path: Path, dtype: torch.dtype) -> None:
    """safetensors in `dtype`; every tensor its own contiguous copy (shared tables are duplicated)."""
    save_file({k: v.detach().to("cpu", dtype).contiguous().clone() for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def _copy_tokenizer(tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    source = Path(tokenizer.name_or_path)
    if not (source / "tokenizer.json").is_file():
        raise ConfigError(f"the tokenizer was not loaded from a folder ({tokenizer.name_or_path!r})",
                          "load it with from_pretrained(<folder>) so its files can be copied")
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, folder / name)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
