"""`mibench bench gpu`: the tiny preset runs every part on a CPU through the same code as the full-size
check; the full sizes are the real models' (counted on the meta device, no memory)."""

from __future__ import annotations

import json

import torch
from conftest import run_cli
from diffusers import MochiTransformer3DModel
from transformers import T5Config, T5EncoderModel

from mibench.generators.musicinfuser.random_weights import SIZES
from mibench.judges.videollama2.model import VideoLLaMA2AV
from mibench.speed.gpu import judge_config


def test_tiny_preset_runs_every_part_on_cpu(capsys, monkeypatch):
    # bf16 weights as on a GPU: the dtype path (bf16 transformer, float32 latents and towers) runs on a CPU too
    code, out, err = run_cli(["bench", "gpu", "--preset", "tiny", "--device", "cpu", "--steps", "2", "--repeats", "1",
                              "--dtype", "bf16", "--json"], capsys, monkeypatch)
    report = json.loads(out)
    assert code == 0 and report["device"] == "cpu" and report["preset"] == "tiny" and report["versions"]["torch"]
    assert report["parts"]["judge"]["weight_dtype"] == report["parts"]["mochi"]["weight_dtype"] == "bfloat16"
    assert set(report["parts"]) == {"musicinfuser", "mochi", "judge", "mmdiffusion"}
    for part in ("musicinfuser", "mochi"):
        variants = report["parts"][part]["variants"]
        assert set(variants) == {"as loaded", "vae tiling"}  # CPU offload needs a GPU: not measured on a CPU
        for values in variants.values():
            assert "error" not in values, values
            assert len(values["step_seconds"]) == 2 and values["seconds_per_step"] > 0 and values["decode_seconds"] > 0
    assert report["parts"]["musicinfuser"]["variants"]["as loaded"]["music_seconds"] > 0
    judge = report["parts"]["judge"]
    assert "error" not in judge and judge["questions"] == 11 and judge["naive_seconds_per_video"] > 0
    mmd = report["parts"]["mmdiffusion"]
    assert "error" not in mmd and mmd["seconds_per_base_step"] > 0 and mmd["seconds_per_upsample_step"] > 0
    code, _, err = run_cli(["bench", "gpu", "--preset", "tiny", "--part", "vae"], capsys, monkeypatch)
    assert code == 2 and "unknown part 'vae'" in err


def _count(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e9


def test_full_sizes_are_the_real_models():
    full = SIZES["full"]
    with torch.device("meta"):
        assert 9.5 < _count(MochiTransformer3DModel(**full.transformer)) < 10.5  # Mochi 1 preview: 10B
        assert 4.5 < _count(T5EncoderModel(T5Config(**full.t5))) < 5.0  # T5-XXL encoder: 4.76B
        judge = VideoLLaMA2AV(judge_config("full"))
    assert 7.0 < _count(judge.llm) < 8.0  # Qwen2-7B: 7.6B
    assert full.audio_layers == (6, 7, 8, 9, 10, 21, 34, 35, 36, 38, 39, 43, 44, 45, 46, 47)
    assert (full.lora.qkv_rank, full.lora.out_rank) == (64, 64)
