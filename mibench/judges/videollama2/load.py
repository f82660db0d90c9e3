"""Strict loading of VideoLLaMA 2.1-AV from the official layout (local folder or Hugging Face id).

`checkpoint/` (DAMO-NLP-SG/VideoLLaMA2.1-7B-AV): config.json, generation_config.json, tokenizer files,
model.safetensors or model-*.safetensors + model.safetensors.index.json. `siglip/`
(google/siglip-so400m-patch14-384, or config `mm_vision_tower`, relative to checkpoint/ when such a
folder exists): config.json, preprocessor_config.json, model.safetensors. `audio_tower.bin`,
`mm_projector_a.bin` and `training_args.bin` are stage-2 inputs and never read.

Every checkpoint tensor is consumed or in this documented ignore list, and every parameter is filled;
otherwise a WeightsError names the missing and unexpected keys. Ignored:
- `model.vision_tower.vision_tower.*`: the bf16 SigLIP copy (the reference loads siglip/ instead);
- `model.audio_tower.predictor.*`: the AudioSet classifier head, unused by the judge;
- `model.audio_tower.encoder.layers.{i>0}.self_attn.relative_attention_bias.weight`: copies of the
  shared layer-0 table (a copy that differs is an error);
- in siglip/: `text_model.*`, `logit_scale`, `logit_bias`, `vision_model.head.*` and the vision layers
  after the selected hidden state (`mm_vision_select_layer` -2 skips the last layer).
BEATs' legacy `encoder.pos_conv.0.weight_g/_v` are folded into the conv weight (see beats.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2Tokenizer, SiglipVisionConfig

from mibench import weights
from mibench.errors import WeightsError
from mibench.judges.videollama2.beats import BEATsConfig, convert_checkpoint
from mibench.judges.videollama2.model import ModelConfig, VideoLLaMA2AV

_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]
QWEN2_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
    "use_sliding_window", "sliding_window", "max_window_layers", "attention_dropout", "bos_token_id",
    "eos_token_id",
)


@dataclass(frozen=True)
class Settings:
    """Preprocessing and decoding settings read next to the weights."""

    num_frames: int
    image_size: tuple[int, int]
    image_mean: list[float]
    image_std: list[float]
    rescale: float
    eos_ids: frozenset[int]
    repetition_penalty: float


def resolve(name: str | Path, what: str) -> Path:
    """A local folder, or a Hugging Face repo id (json, safetensors and tokenizer files only)."""
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise WeightsError(f"{what} {name} is not a folder", "pass a checkpoint folder or a Hugging Face id")
    return weights.resolve(name, what=what, patterns=_DOWNLOAD_PATTERNS)


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise WeightsError(f"{path} is missing", "use the official checkpoint layout")
    return json.loads(path.read_text())


class TensorFiles:
    """Lazy access to the tensors of one folder's *.safetensors (single file or index), each read
    into the target device and dtype as a fresh copy: safetensors hands out tensors at the file's
    byte offsets (often not 64-byte aligned), and BLAS rounds differently on unaligned memory, so
    without the copy the same weights give outputs that depend on the file's header size."""

    def __init__(self, folder: Path, device: str | torch.device, dtype: torch.dtype, stem: str = "model"):
        index = folder / f"{stem}.safetensors.index.json"
        if index.is_file():
            files = sorted({folder / f for f in read_json(index)["weight_map"].values()})
        else:
            files = [folder / f"{stem}.safetensors"]
        if not all(f.is_file() for f in files):
            raise WeightsError(f"no complete {stem}.safetensors in {folder}", "download every shard")
        self.handles = [weights.safetensors_handle(f, "judge weights") for f in files]
        self.where = {key: h for h in self.handles for key in list(h.keys())}
        self.device, self.dtype = device, dtype

    def get(self, key: str) -> torch.Tensor:
        return self.where[key].get_tensor(key).to(self.device, self.dtype, copy=True)


def model_config(cfg: dict, siglip_dir: Path) -> ModelConfig:
    """ModelConfig from checkpoint/config.json and the SigLIP config; unsupported layouts raise."""
    if cfg.get("mm_projector_type") != "stc_connector_v35" or cfg.get("mm_vision_select_feature", "patch") != "patch":
        raise WeightsError(f"unsupported projector {cfg.get('mm_projector_type')!r}",
                           "this port implements VideoLLaMA 2.1-AV (stc_connector_v35)")
    if cfg.get("rope_scaling"):
        raise WeightsError("rope_scaling is not supported by this port", "use the official config.json")
    llm = Qwen2Config(**{k: cfg[k] for k in QWEN2_FIELDS if k in cfg},
                      rope_parameters={"rope_type": "default", "rope_theta": cfg.get("rope_theta", 1e6)})
    vision = SiglipVisionConfig.from_pretrained(siglip_dir)
    select = cfg.get("mm_vision_select_layer", -2)
    vision.num_hidden_layers = vision.num_hidden_layers + 1 + select if select < 0 else select
    vision.vision_use_head = False
    beats = BEATsConfig.from_dict(cfg.get("mm_audio_tower_cfg", {}))
    dims = {"mm_hidden_size": vision.hidden_size, "mm_hidden_size_a": beats.encoder_embed_dim,
            "hidden_size_a": llm.hidden_size}
    bad = [k for k, v in dims.items() if cfg.get(k, v) != v]
    if bad:
        raise WeightsError(f"config fields {bad} disagree with the towers", "check config.json and siglip/")
    return ModelConfig(llm, vision, beats, cfg.get("mm_projector_a_type", "linear"))


def settings(cfg: dict, checkpoint: Path, siglip_dir: Path) -> Settings:
    """Frames from config.json (official fallback 8), image processing from SigLIP's preprocessor,
    eos ids and repetition penalty from generation_config.json."""
    proc = read_json(siglip_dir / "preprocessor_config.json")
    gen = read_json(checkpoint / "generation_config.json") if (checkpoint / "generation_config.json").is_file() else {}
    eos = gen.get("eos_token_id", cfg.get("eos_token_id"))
    return Settings(
        num_frames=cfg.get("num_frames", 8),
        image_size=(proc["size"]["height"], proc["size"]["width"]),
        image_mean=list(proc["image_mean"]),
        image_std=list(proc["image_std"]),
        rescale=proc["rescale_factor"],
        eos_ids=frozenset(eos if isinstance(eos, list) else [eos]),
        repetition_penalty=gen.get("repetition_penalty", 1.0),
    )


def _checkpoint_state(files: TensorFiles, model: VideoLLaMA2AV) -> tuple[dict, list[str]]:
    """Checkpoint tensors under the model's names, plus the keys nothing consumed."""
    state, unexpected, audio = {}, [], {}
    for key in files.where:
        if key.startswith("model.vision_tower.vision_tower."):
            continue
        if key.startswith("model.audio_tower."):
            audio[key.removeprefix("model.audio_tower.")] = files.get(key)
        elif key.startswith(("model.mm_projector.", "model.mm_projector_a.")):
            state[key.removeprefix("model.")] = files.get(key)
        elif key.startswith(("model.embed_tokens.", "model.layers.", "model.norm.", "lm_head.")):
            state[f"llm.{key}"] = files.get(key)
        else:
            unexpected.append(key)
    state.update({f"audio_tower.{k}": v for k, v in convert_checkpoint(audio).items()})
    return state, unexpected


def _siglip_state(files: TensorFiles, model: VideoLLaMA2AV) -> tuple[dict, list[str]]:
    """SigLIP vision tensors under the model's names, plus the keys nothing consumed."""
    kept = model.cfg.vision.num_hidden_layers
    state, unexpected = {}, []
    for key in files.where:
        parts = key.split(".")
        if key.startswith(("text_model.", "vision_model.head.")) or key in ("logit_scale", "logit_bias"):
            continue
        if parts[1:3] == ["encoder", "layers"] and parts[3].isdigit() and int(parts[3]) >= kept:
            continue
        if key.startswith("vision_model."):
            state[f"vision.{key.removeprefix('vision_model.')}"] = files.get(key)
        else:
            unexpected.append(key)
    return state, unexpected


def load_weights(model: VideoLLaMA2AV, state: dict, unexpected: list[str], source: str,
                 device: str | torch.device, dtype: torch.dtype) -> None:
    """Assign `state` to the (meta) model strictly, then rebuild the non-persistent buffers."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(unexpected + [k for k in state if k not in expected])
    shapes = [k for k, v in state.items() if k in expected and tuple(v.shape) != expected[k]]
    if missing or unexpected or shapes:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
        raise WeightsError(
            f"{source} does not match VideoLLaMA 2.1-AV: missing [{show(missing)}], "
            f"unexpected [{show(unexpected)}], wrong shape [{show(sorted(shapes))}]",
            "use an unmodified official checkpoint")
    model.load_state_dict({k: v.to(device, dtype) for k, v in state.items()}, strict=True, assign=True)
    rotary = model.llm.model.rotary_emb
    model.llm.model.rotary_emb = type(rotary)(model.cfg.llm).to(device)
    embeddings = model.vision.embeddings
    embeddings.position_ids = torch.arange(embeddings.num_positions, device=device).expand((1, -1))
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert not leftover, f"tensors left unloaded: {leftover}"


def load_judge(checkpoint: str | Path, siglip: str | Path | None, device: str | torch.device,
               dtype: torch.dtype) -> tuple[VideoLLaMA2AV, PreTrainedTokenizerBase, Settings]:
    """The model (eval, no grad) on `device` in `dtype`, its tokenizer and settings."""
    ckpt_dir = resolve(checkpoint, "judge checkpoint")
    cfg = read_json(ckpt_dir / "config.json")
    if "mm_projector_type" not in cfg:
        raise WeightsError(f"{ckpt_dir / 'config.json'} is not a VideoLLaMA 2 config (no mm_projector_type; the "
                           f"folder holds: {weights.listing(ckpt_dir)})", "pass the VideoLLaMA2.1-7B-AV checkpoint")
    if siglip is None:
        tower = cfg.get("mm_vision_tower", "google/siglip-so400m-patch14-384")
        if tower.startswith((".", "/")) and not (ckpt_dir / tower).is_dir():
            raise WeightsError(f"judge checkpoint {ckpt_dir} names its vision tower {tower!r} (config.json "
                               f"mm_vision_tower), and {(ckpt_dir / tower).resolve()} does not exist",
                               "put the SigLIP folder there, as in the official layout")
        siglip = ckpt_dir / tower if (ckpt_dir / tower).is_dir() else tower
    siglip_dir = resolve(siglip, "SigLIP checkpoint")
    with torch.device("meta"):
        model = VideoLLaMA2AV(model_config(cfg, siglip_dir))
    state, unexpected = _checkpoint_state(TensorFiles(ckpt_dir, device, dtype), model)
    vision_state, vision_unexpected = _siglip_state(TensorFiles(siglip_dir, device, dtype), model)
    state.update(vision_state)
    load_weights(model, state, unexpected + vision_unexpected, f"{ckpt_dir} + {siglip_dir}", device, dtype)
    tokenizer = Qwen2Tokenizer.from_pretrained(ckpt_dir)
    return model, tokenizer, settings(cfg, ckpt_dir, siglip_dir)
