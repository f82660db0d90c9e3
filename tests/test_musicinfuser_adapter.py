"""Strict loading and export of the official MusicInfuser adapter (and of the base DiT), on the fixture set."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import fixture_set
from diffusers import MochiTransformer3DModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mibench.errors import ConfigError, WeightsError
from mibench.generators.musicinfuser import (
    attach_zica,
    load_adapter,
    load_genmo_transformer,
    read_adapter,
    save_adapter,
)
from mibench.generators.musicinfuser.components import load_transformer


@pytest.fixture(scope="module")
def fx():
    return fixture_set("musicinfuser")


@pytest.fixture(scope="module")
def config(fx):
    return json.loads((fx / "config.json").read_text())


def metadata_of(path):
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def model_with_zica(fx, config, layers=None):
    model = MochiTransformer3DModel.from_pretrained(fx / "transformer", torch_dtype=torch.float32).eval()
    audio = config["audio"]
    attach_zica(model, layers if layers is not None else audio["audio_cross_attn_layers"],
                feat_dim=audio["audio_feat_dim"], num_heads=audio["audio_cross_attn_num_heads"], device="meta")
    return model


def write_variant(fx, tmp_path, edit):
    tensors = load_file(fx / "musicinfuser.safetensors")
    metadata = metadata_of(fx / "musicinfuser.safetensors")
    edit(tensors, metadata)
    path = tmp_path / "musicinfuser.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_variant(fx, config, path):
    tensors, spec = read_adapter(path)
    load_adapter(model_with_zica(fx, config), tensors, spec)


def test_missing_tensor_is_named(fx, config, tmp_path):
    path = write_variant(fx, tmp_path, lambda t, m: t.pop("blocks.0.attn.qkv_y.lora_B"))
    with pytest.raises(WeightsError, match=r"missing 1 tensors: blocks\.0\.attn\.qkv_y\.lora_B"):
        load_variant(fx, config, path)


def test_extra_tensor_is_named(fx, config, tmp_path):
    path = write_variant(fx, tmp_path, lambda t, m: t.update({"blocks.0.mlp_x.w1.lora_A": torch.zeros(2, 2)}))
    with pytest.raises(WeightsError, match=r"unexpected 1 tensors: blocks\.0\.mlp_x\.w1\.lora_A"):
        load_variant(fx, config, path)


def test_wrong_shape_is_named(fx, config, tmp_path):
    def widen(tensors, metadata):
        lora_a = tensors["blocks.0.attn.proj_x.lora_A"]
        tensors["blocks.0.attn.proj_x.lora_A"] = torch.cat([lora_a, lora_a])

    path = write_variant(fx, tmp_path, widen)
    with pytest.raises(WeightsError, match=r"wrong shapes: blocks\.0\.attn\.proj_x\.lora_A"):
        load_variant(fx, config, path)


def test_rank_metadata_must_match_tensors(fx, config, tmp_path):
    def rank_up(tensors, metadata):
        kwargs = json.loads(metadata["kwargs"])
        kwargs["qkv_proj_lora_rank"] += 1
        metadata["kwargs"] = json.dumps(kwargs)

    path = write_variant(fx, tmp_path, rank_up)
    with pytest.raises(WeightsError, match=r"wrong shapes: .*qkv"):
        load_variant(fx, config, path)


def test_missing_kwargs_metadata(fx, config, tmp_path):
    path = write_variant(fx, tmp_path, lambda t, m: m.pop("kwargs"))
    with pytest.raises(WeightsError, match="kwargs"):
        read_adapter(path)


@pytest.mark.parametrize("keep", [0.5, 0.99, 20])
def test_truncated_file(fx, tmp_path, keep):
    data = (fx / "musicinfuser.safetensors").read_bytes()
    path = tmp_path / "musicinfuser.safetensors"
    path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        read_adapter(path)


def test_audio_layer_count_must_match(fx, config):
    """One block too few (always possible) and, unless every layer already has one, one too many."""
    tensors, spec = read_adapter(fx / "musicinfuser.safetensors")
    layers = config["audio"]["audio_cross_attn_layers"]
    with pytest.raises(WeightsError, match=rf"unexpected .*audio_cross_attn_blocks\.{len(layers) - 1}\."):
        load_adapter(model_with_zica(fx, config, layers[:-1]), tensors, spec)
    free = [i for i in range(config["genmo_asymm_dit_joint_kwargs"]["depth"]) if i not in layers]
    if not free:  # ZICA on every block: a further block cannot exist, and a repeated one is refused
        with pytest.raises(ConfigError, match="not distinct blocks"):
            model_with_zica(fx, config, [*layers, layers[0]])
        return
    with pytest.raises(WeightsError, match=rf"missing .*audio_cross_attn_blocks\.{len(layers)}\."):
        load_adapter(model_with_zica(fx, config, [*layers, free[0]]), tensors, spec)


def test_audio_tensors_need_zica(fx):
    tensors, spec = read_adapter(fx / "musicinfuser.safetensors")
    model = MochiTransformer3DModel.from_pretrained(fx / "transformer", torch_dtype=torch.float32)
    with pytest.raises(WeightsError, match=r"unexpected .*audio_"):
        load_adapter(model, tensors, spec)


def test_export_round_trips_to_official_layout(fx, config, tmp_path):
    tensors, spec = read_adapter(fx / "musicinfuser.safetensors")
    model = model_with_zica(fx, config)
    load_adapter(model, tensors, spec)
    out = tmp_path / "exported.safetensors"
    save_adapter(model, out, spec)
    exported = load_file(out)
    assert exported.keys() == tensors.keys()
    for key, tensor in tensors.items():
        assert exported[key].dtype == tensor.dtype and torch.equal(exported[key], tensor), key
    assert metadata_of(out) == metadata_of(fx / "musicinfuser.safetensors")
    reloaded, respec = read_adapter(out)  # and it loads again
    load_adapter(model_with_zica(fx, config), reloaded, respec)


def test_fused_and_unfused_agree(fx, config, tmp_path):
    tensors, spec = read_adapter(fx / "musicinfuser.safetensors")
    inputs = load_file(fx / "inputs.safetensors")
    tol = config["tolerance"]
    outputs = []
    for fuse in (False, True):
        model = model_with_zica(fx, config)
        load_adapter(model, tensors, spec, fuse=fuse)
        with torch.no_grad():
            outputs.append(model(hidden_states=inputs["x"], encoder_hidden_states=inputs["t5_feat"],
                                 timestep=(1 - inputs["sigma"]) * 1000, encoder_attention_mask=inputs["t5_mask"],
                                 attention_kwargs={"audio_feat": inputs["audio_feat"]}, return_dict=False)[0])
    torch.testing.assert_close(outputs[0], outputs[1], atol=tol["atol"], rtol=tol["rtol"])
    with pytest.raises(WeightsError, match="unfused"):
        save_adapter(model, tmp_path / "never-written.safetensors", spec)


def test_genmo_dit_with_unknown_tensor(fx, tmp_path):
    tensors = load_file(fx / "dit_genmo.safetensors")
    tensors["blocks.0.attn.qkv_x.lora_A"] = torch.zeros(3)  # an adapter tensor in a base checkpoint
    save_file(tensors, str(tmp_path / "dit.safetensors"))
    with pytest.raises(WeightsError, match=r"1 tensors of no Mochi module: blocks\.0\.attn\.qkv_x\.lora_A"):
        load_genmo_transformer(tmp_path / "dit.safetensors")


def test_genmo_dit_with_missing_tensor(fx, tmp_path):
    tensors = load_file(fx / "dit_genmo.safetensors")
    tensors.pop("final_layer.linear.bias")
    save_file(tensors, str(tmp_path / "dit.safetensors"))
    with pytest.raises(WeightsError, match=r"missing 1 tensors: proj_out\.bias"):
        load_genmo_transformer(tmp_path / "dit.safetensors")


def test_diffusers_transformer_folder_is_strict(fx, tmp_path):
    folder = tmp_path / "transformer"
    folder.mkdir()
    shutil.copy(fx / "transformer" / "config.json", folder)
    tensors = load_file(fx / "transformer" / "diffusion_pytorch_model.safetensors")
    tensors.pop("proj_out.bias")
    save_file(tensors, str(folder / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(WeightsError, match=r"missing 1 tensors: proj_out\.bias"):
        load_transformer(tmp_path, str(tmp_path / "no-base"), torch.float32)


def test_missing_base_part_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="cannot load the Mochi transformer"):
        load_transformer(tmp_path, str(tmp_path / "no-base"), torch.float32)
