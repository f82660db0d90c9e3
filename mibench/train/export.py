"""A trained adapter on disk, in two layouts.

Official (what `mibench generate --weights OUT` and `DancePipeline.from_weights(adapter=...)` load, like the
released file):
    musicinfuser.safetensors     genmo key names, metadata `kwargs` (LoRA rank/alpha/dropout), see
                                 generators/musicinfuser/adapter.py
    config.json                  {"audio": {"audio_cross_attn_layers", "audio_feat_dim",
                                 "audio_cross_attn_num_heads"}}: the blocks the audio modules follow
Base parts (`complete_layout`): `transformer/`, `vae/`, `text_encoder/`, `tokenizer/`, `wav2vec2/` linked from
the base weights the adapter was trained on (written, for the tiny preset), so OUT is a whole --weights folder.
peft (`load_peft` reads it back; the LoRA part is what `PeftModel.save_pretrained` writes):
    peft/adapter_config.json     the `LoraConfig`
    peft/adapter_model.safetensors   LoRA weights, peft names (`base_model.model.<module>.lora_A.weight`);
                                 q/k/v of a stream hold equal copies of their shared A
    peft/audio.safetensors       the ZICA modules (`audio_projection.*`, `audio_cross_attn_blocks.*`),
                                 metadata `audio_cross_attn_layers` and `audio_cross_attn_num_heads` (JSON)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import MochiTransformer3DModel
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import save_file

from mibench.errors import WeightsError
from mibench.generators.musicinfuser.adapter import ADAPTER_NAME, AUDIO_MODULES, LoraSpec, save_adapter
from mibench.generators.musicinfuser.checkpoint import read_safetensors
from mibench.generators.musicinfuser.zica import Zica, attach_zica
from mibench.media.audio import atomic_output

ADAPTER_FILE = "musicinfuser.safetensors"  # the name the generator's --weights layout expects
PEFT_PREFIX = "base_model.model."
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def audio_config(transformer: MochiTransformer3DModel, zica: Zica) -> dict:
    return {"audio_cross_attn_layers": list(zica.layers),
            "audio_feat_dim": transformer.audio_projection.projection[0].in_features,
            "audio_cross_attn_num_heads": transformer.audio_cross_attn_blocks[0].num_heads}


def save_official(transformer: MochiTransformer3DModel, zica: Zica, spec: LoraSpec, out: Path, dtype: str) -> Path:
    """`out/musicinfuser.safetensors` + `out/config.json`; returns the adapter's path."""
    path = Path(out) / ADAPTER_FILE
    save_adapter(transformer, path, spec, dtype=DTYPES[dtype])
    with atomic_output(Path(out) / "config.json") as tmp:
        tmp.write_text(json.dumps({"audio": audio_config(transformer, zica)}, indent=1) + "\n")
    return path


def save_peft(transformer: MochiTransformer3DModel, zica: Zica, folder: Path, dtype: str) -> Path:
    """`folder/` in the peft layout (module docstring); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    transformer.peft_config[ADAPTER_NAME].save_pretrained(str(folder))

    def plain(v: torch.Tensor) -> torch.Tensor:  # own storage: safetensors refuses shared (tied) tensors
        return v.detach().to("cpu", DTYPES[dtype]).clone().contiguous()

    lora = get_peft_model_state_dict(transformer, adapter_name=ADAPTER_NAME)
    with atomic_output(folder / "adapter_model.safetensors") as tmp:
        save_file({PEFT_PREFIX + k: plain(v) for k, v in lora.items()}, str(tmp))
    audio = {f"{name}.{k}": plain(v) for name in AUDIO_MODULES
             for k, v in getattr(transformer, name).state_dict().items()}
    metadata = {k: json.dumps(v) for k, v in audio_config(transformer, zica).items() if k != "audio_feat_dim"}
    with atomic_output(folder / "audio.safetensors") as tmp:
        save_file(audio, str(tmp), metadata=metadata)
    return folder


def load_peft(transformer: MochiTransformer3DModel, folder: Path) -> Zica:
    """Attach ZICA and add the LoRA (adapter `musicinfuser`) of a peft-layout folder to a base transformer."""
    folder = Path(folder)
    audio, metadata = read_safetensors(folder / "audio.safetensors", "peft-layout audio modules")
    lora, _ = read_safetensors(folder / "adapter_model.safetensors", "peft-layout LoRA")
    try:
        layers = json.loads(metadata["audio_cross_attn_layers"])
        heads = json.loads(metadata["audio_cross_attn_num_heads"])
    except (KeyError, json.JSONDecodeError) as err:
        raise WeightsError(f"{folder}/audio.safetensors lacks its audio layer metadata",
                           "export the adapter again with mibench") from err
    strays = [k for k in audio if not k.startswith(tuple(f"{name}." for name in AUDIO_MODULES))]
    if strays or "audio_projection.projection.0.weight" not in audio:
        raise WeightsError(f"{folder}/audio.safetensors holds no audio projector or other tensors ({strays[:3]})",
                           "export the adapter again with mibench")
    feat_dim = audio["audio_projection.projection.0.weight"].shape[1]
    zica = attach_zica(transformer, layers, feat_dim=feat_dim, num_heads=heads, device="meta")
    for name in AUDIO_MODULES:
        state = {k[len(name) + 1:]: v.to(transformer.device, transformer.dtype)
                 for k, v in audio.items() if k.startswith(name + ".")}
        getattr(transformer, name).load_state_dict(state, strict=True, assign=True)
    transformer.add_adapter(LoraConfig.from_pretrained(str(folder)), ADAPTER_NAME)
    result = set_peft_model_state_dict(transformer, {k.removeprefix(PEFT_PREFIX): v for k, v in lora.items()},
                                       adapter_name=ADAPTER_NAME)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing:
        raise WeightsError(f"{folder}/adapter_model.safetensors does not match its adapter_config.json "
                           f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected LoRA tensors)",
                           "export the adapter again with mibench")
    return zica


BASE_PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "wav2vec2")


def complete_layout(out: Path, base: Path | None) -> list[str]:
    """Make `out` a whole `--weights` folder beside its adapter: the base parts of the folder the model was
    trained on, linked (not copied); with `base=None` (the tiny preset), the tiny preset's base parts, written.
    Parts already in `out` are kept. Returns the parts added."""
    from mibench.generators.musicinfuser.tiny import write_tiny_weights

    out, added = Path(out), []
    if base is None:
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory(prefix="mibench-tiny-base-", dir=out) as tmp:
            write_tiny_weights(Path(tmp))
            for part in BASE_PARTS:
                if not (out / part).exists():
                    shutil.move(str(Path(tmp) / part), out / part)
                    added.append(part)
        return added
    for part in BASE_PARTS:
        if (Path(base) / part).exists() and not (out / part).exists():
            (out / part).symlink_to((Path(base) / part).resolve(), target_is_directory=True)
            added.append(part)
    return added
