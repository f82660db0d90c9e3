"""MusicInfuser port vs the official implementation on the golden fixture set (README layout only).

Reads `musicinfuser/` under MIBENCH_FIXTURES_DIR: config.json, dit_genmo.safetensors, transformer/,
musicinfuser.safetensors, inputs.safetensors, expected.safetensors. Every size comes from the files.
"""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace

import pytest
import torch
from conftest import fixture_set
from diffusers import AutoencoderKLMochi, MochiTransformer3DModel
from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule
from safetensors.torch import load_file

from mibench.generators.musicinfuser import (
    TextCondition,
    attach_zica,
    denoise,
    dit_to_vae_latents,
    genmo_to_diffusers,
    initial_noise,
    load_adapter,
    load_genmo_transformer,
    make_scheduler,
    read_adapter,
)
from mibench.generators.musicinfuser.convert import genmo_config


@pytest.fixture(scope="module")
def fx():
    root = fixture_set("musicinfuser")
    config = json.loads((root / "config.json").read_text())
    return SimpleNamespace(
        root=root,
        config=config,
        inputs=load_file(root / "inputs.safetensors"),
        expected=load_file(root / "expected.safetensors"),
        tol=dict(atol=config["tolerance"]["atol"], rtol=config["tolerance"]["rtol"]),
    )


def base_model(fx, source: str) -> MochiTransformer3DModel:
    if source == "genmo":
        return load_genmo_transformer(fx.root / "dit_genmo.safetensors")
    return MochiTransformer3DModel.from_pretrained(fx.root / "transformer", torch_dtype=torch.float32).eval()


def musicinfuser_model(fx, *, fuse: bool, source: str = "diffusers") -> MochiTransformer3DModel:
    model = base_model(fx, source)
    audio = fx.config["audio"]
    attach_zica(model, audio["audio_cross_attn_layers"], feat_dim=audio["audio_feat_dim"],
                num_heads=audio["audio_cross_attn_num_heads"], device="meta")
    tensors, spec = read_adapter(fx.root / "musicinfuser.safetensors")
    load_adapter(model, tensors, spec, fuse=fuse)
    return model


@torch.no_grad()
def forward(fx, model, negative: bool = False, audio: bool = True) -> torch.Tensor:
    suffix = "_neg" if negative else ""
    timestep = (1 - fx.inputs["sigma"]) * 1000
    return model(hidden_states=fx.inputs["x"], encoder_hidden_states=fx.inputs["t5_feat" + suffix],
                 timestep=timestep, encoder_attention_mask=fx.inputs["t5_mask" + suffix],
                 attention_kwargs={"audio_feat": fx.inputs["audio_feat"]} if audio else None,
                 return_dict=False)[0]


def test_genmo_converter_reproduces_diffusers_checkpoint(fx):
    genmo = load_file(fx.root / "dit_genmo.safetensors")
    diffusers = load_file(fx.root / "transformer" / "diffusion_pytorch_model.safetensors")
    converted = genmo_to_diffusers(genmo)
    assert converted.keys() == diffusers.keys()
    assert all(torch.equal(converted[k], diffusers[k]) for k in diffusers)
    expected_config = dict(fx.config["diffusers_transformer_config"])
    inferred = genmo_config(genmo)
    for key in ("max_sequence_length", "qk_norm", "activation_fn"):  # not stored in genmo weights
        expected_config.pop(key)
    assert inferred == expected_config


def test_timestep_and_schedule(fx):
    assert float((1 - fx.inputs["sigma"]) * 1000) == pytest.approx(fx.config["forward"]["diffusers_timestep"])
    sampler = fx.config["sampler"]
    schedule = linear_quadratic_schedule(sampler["num_inference_steps"], sampler["threshold_noise"])
    torch.testing.assert_close(torch.tensor(schedule + [0.0], dtype=torch.float64), fx.inputs["sigma_schedule"])
    assert torch.equal(initial_noise(sampler["seed"], fx.inputs["noise"].shape), fx.inputs["noise"])


@pytest.mark.parametrize("source", ["diffusers", "genmo"])
def test_forward_no_audio(fx, source):
    out = forward(fx, base_model(fx, source), audio=False)
    torch.testing.assert_close(out, fx.expected["forward_no_audio"], **fx.tol)


def test_audio_projected(fx):
    model = musicinfuser_model(fx, fuse=False)
    audio, projector = fx.config["audio"], model.audio_projection.projection
    assert (projector[0].in_features, projector[0].out_features, projector[2].out_features) == (
        audio["audio_feat_dim"], audio["audio_projector_hidden_dim"], audio["audio_projector_output_dim"])
    assert len(model.audio_cross_attn_blocks) == len(audio["audio_cross_attn_layers"])
    with torch.no_grad():
        out = model.audio_projection(fx.inputs["audio_feat"], fx.inputs["x"].shape[2])
    torch.testing.assert_close(out, fx.expected["audio_projected"], **fx.tol)


@pytest.mark.parametrize(("fuse", "source"), [(False, "diffusers"), (True, "diffusers"), (False, "genmo")])
def test_forward_cond_and_uncond(fx, fuse, source):
    model = musicinfuser_model(fx, fuse=fuse, source=source)
    torch.testing.assert_close(forward(fx, model), fx.expected["forward_cond"], **fx.tol)
    torch.testing.assert_close(forward(fx, model, negative=True), fx.expected["forward_uncond"], **fx.tol)


def test_empty_prompt_features_have_no_influence(fx):
    model = musicinfuser_model(fx, fuse=False)
    zeroed = TextCondition.empty_like(TextCondition(fx.inputs["t5_feat_neg"], fx.inputs["t5_mask_neg"]))
    assert not zeroed.mask.any()
    timestep = (1 - fx.inputs["sigma"]) * 1000
    with torch.no_grad():
        out = model(hidden_states=fx.inputs["x"], encoder_hidden_states=zeroed.embeds, timestep=timestep,
                    encoder_attention_mask=zeroed.mask, attention_kwargs={"audio_feat": fx.inputs["audio_feat"]},
                    return_dict=False)[0]
    torch.testing.assert_close(out, fx.expected["forward_uncond"], **fx.tol)


@pytest.mark.parametrize("batch_cfg", [False, True])
def test_sample_latents(fx, batch_cfg):
    model = musicinfuser_model(fx, fuse=False)
    sampler = fx.config["sampler"]
    cond = TextCondition(fx.inputs["t5_feat"], fx.inputs["t5_mask"])
    # the sampler's own negative branch: the zeroed empty prompt
    latents = denoise(model, make_scheduler(), fx.inputs["noise"], cond, TextCondition.empty_like(cond),
                      steps=sampler["num_inference_steps"], guidance_scale=sampler["cfg_scale"],
                      threshold_noise=sampler["threshold_noise"], audio_feat=fx.inputs["audio_feat"],
                      batch_cfg=batch_cfg)
    assert latents.dtype == torch.float32
    torch.testing.assert_close(latents, fx.expected["sample_latents"], **fx.tol)
    defaults = inspect.signature(AutoencoderKLMochi.__init__).parameters
    vae_config = SimpleNamespace(**{k: defaults[k].default for k in ("latents_mean", "latents_std", "scaling_factor")})
    torch.testing.assert_close(dit_to_vae_latents(latents, vae_config), fx.expected["sample_latents_vae"], **fx.tol)
