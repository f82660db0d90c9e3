"""`mibench bench gpu`: one prepared check of every full-size path on an accelerator, with random weights
built on the device (no download, no host copy of the weights).

    mibench bench gpu --json > gpu.json                  # on the GPU machine: every part, real sizes
    mibench bench gpu --preset tiny --device cpu         # the same code path at the tiny sizes (tests)

Parts (`--part`, repeatable; default all):
- "musicinfuser" / "mochi": `random_weights.random_pipeline` at 480x848, 73 frames (the training
  length), `--steps` denoising steps with the CFG batch, then VAE decode; one run per placement variant
  (bf16 weights; as loaded, with model CPU offload, with VAE tiling, with both; offload only on a GPU):
  seconds per step (median), text, music and decode seconds, peak GPU memory of the whole pipeline and
  whether it fits 40 and 24 GB. MusicInfuser's 145-frame paper setting doubles the latent frames.
- "judge": VideoLLaMA 2.1-AV at 7B (Qwen2-7B, SigLIP so400m, BEATs, 16 frames of 384 px) in bf16:
  seconds per scored video (the 11 paper questions) on the official per-question path and on mibench's
  cached path, and peak memory.
- "mmdiffusion": the AIST++ coupled U-Net (float32, as loaded): seconds per gradient-guided denoising
  step and per upsampler step, peak memory.
A part or variant that fails (out of memory, a CUDA-only error) is recorded with its one-line error and
the others go on, so one short GPU loan answers every question at once.
"""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import Qwen2Config, SiglipVisionConfig

from mibench.errors import ConfigError
from mibench.generators.musicinfuser.random_weights import built_on, random_pipeline
from mibench.provenance import versions
from mibench.speed.memory import peak_memory_kind, peak_memory_mib, reset_peak

PARTS = ("musicinfuser", "mochi", "judge", "mmdiffusion")
SIZES = {"full": {"num_frames": 73, "height": 480, "width": 848}, "tiny": {"num_frames": 13, "height": 32, "width": 48}}
PROMPT = "a professional dancer dancing hip-hop in a studio with a white backdrop"
JUDGE_INPUT = {"full": {"num_frames": 16, "image_size": 384}, "tiny": {"num_frames": 4, "image_size": 32}}
GIB = 1024.0
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _variants(device: torch.device) -> list[tuple[str, str | None, bool]]:
    """(name, offload, vae_tiling) of the placement variants measured on `device`."""
    variants = [("as loaded", None, False), ("vae tiling", None, True)]
    if device.type == "cuda":
        variants += [("model offload", "model", False), ("model offload + vae tiling", "model", True)]
    return variants


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _attempt(device: torch.device, measure: Callable[[], dict]) -> dict:
    """`measure()` with the peak memory it reached, or its one-line error (the check goes on)."""
    _free(device)
    reset_peak(str(device))
    try:
        result = measure()
    except (RuntimeError, ValueError, MemoryError, ConfigError) as exc:
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    finally:
        _free(device)
    peak = peak_memory_mib(str(device))
    result |= {"peak_memory_mib": round(peak, 1), "peak_memory_kind": peak_memory_kind(str(device))}
    if device.type == "cuda":
        result |= {"fits_40gb": peak <= 40 * GIB, "fits_24gb": peak <= 24 * GIB}
    return result


def bench_dance(preset: str, device: torch.device, *, with_adapter: bool, steps: int, dtype: torch.dtype) -> dict:
    """MusicInfuser (`with_adapter`) or Mochi: one generation per placement variant (module docstring)."""
    size = SIZES[preset]
    seconds = size["num_frames"] / 30 + 0.09
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * 16000)).astype(np.float32)

    def run(offload: str | None, tiling: bool) -> dict:
        pipe = random_pipeline(preset, with_adapter=with_adapter, device=device, weight_dtype=dtype,
                               offload=offload, vae_tiling=tiling)
        pipe.generate(PROMPT, wave if with_adapter else None, steps=steps, seed=0, **size)
        timings = pipe.last_timings
        del pipe
        return {"seconds_per_step": round(statistics.median(timings.steps_s), 4),
                "step_seconds": [round(s, 4) for s in timings.steps_s], "text_seconds": round(timings.text_s, 4),
                "music_seconds": round(timings.music_s, 4), "decode_seconds": round(timings.decode_s, 4)}

    return {"size": size, "steps": steps, "weight_dtype": str(dtype).removeprefix("torch."), "cfg_batch": True,
            "variants": {name: _attempt(device, lambda o=offload, t=tiling: run(o, t))
                         for name, offload, tiling in _variants(device)}}


def judge_config(preset: str):
    """VideoLLaMA 2.1-AV's towers and LLM at 7B ("full") or the judge's tiny preset ("tiny")."""
    from mibench.judges.videollama2.beats import BEATsConfig
    from mibench.judges.videollama2.model import ModelConfig
    from mibench.judges.videollama2.tiny import tiny_config

    if preset == "tiny":
        return tiny_config()
    llm = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                      num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                      tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
                      bos_token_id=560, eos_token_id=562)
    # so400m has 27 layers; mm_vision_select_layer -2 keeps the first 26
    vision = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16,
                                image_size=384, patch_size=14, vision_use_head=False)
    return ModelConfig(llm, vision, BEATsConfig(), "mlp2x_gelu")


def bench_judge_size(preset: str, device: torch.device, *, dtype: torch.dtype, max_new_tokens: int) -> dict:
    from mibench.judges.videollama2.judge import VideoLLaMA2Judge
    from mibench.judges.videollama2.tiny import build_random
    from mibench.speed.judge import cached_run, naive_run, paper_questions, synthetic_clip, time_runs

    def run() -> dict:
        with built_on(device, dtype):
            model, tokenizer, settings = build_random(judge_config(preset), **JUDGE_INPUT[preset])
        judge = VideoLLaMA2Judge(model.eval(), tokenizer, settings)
        with tempfile.TemporaryDirectory(prefix="mibench-bench-gpu-") as tmp:
            clip = synthetic_clip(Path(tmp) / "dance.mp4")
            questions = [text for _, text in paper_questions()]
            seconds, _, tokens = time_runs({"naive": naive_run(judge, clip, questions, max_new_tokens),
                                            "cached": cached_run(judge, clip, questions, max_new_tokens)}, 1, device)
        return {"naive_seconds_per_video": round(seconds["naive"][0], 3),
                "cached_seconds_per_video": round(seconds["cached"][0], 3), "multimodal_tokens": tokens,
                "questions": len(questions), "max_new_tokens": max_new_tokens}

    return {"weight_dtype": str(dtype).removeprefix("torch."), **_attempt(device, run)}


def bench_mmdiffusion(preset: str, device: torch.device, *, repeats: int) -> dict:
    from mibench.generators.mmdiffusion import AISTPP_MMD, AISTPP_SAMPLER, AISTPP_SR, MMDiffusionPipeline
    from mibench.generators.mmdiffusion.sr_unet import SuperResUNet
    from mibench.generators.mmdiffusion.timing import time_denoise_step, time_upsample_step
    from mibench.generators.mmdiffusion.tiny import TINY_MMD, TINY_SAMPLER, TINY_SR
    from mibench.generators.mmdiffusion.unet import MultimodalUNet

    configs = (AISTPP_MMD, AISTPP_SR, AISTPP_SAMPLER) if preset == "full" else (TINY_MMD, TINY_SR, TINY_SAMPLER)

    def run() -> dict:
        with built_on(device, torch.float32):
            pipe = MMDiffusionPipeline(MultimodalUNet(configs[0]).eval(), SuperResUNet(configs[1]).eval(),
                                       defaults=configs[2])
        base = time_denoise_step(pipe, repeats=repeats)
        upsample = time_upsample_step(pipe, repeats=repeats)
        return {"seconds_per_base_step": round(base["seconds"], 4), "seconds_per_upsample_step":
                round(upsample["seconds"], 4), "frames_per_window": pipe.frames_per_clip}

    return {"weight_dtype": "float32", **_attempt(device, run)}


def bench_gpu(*, preset: str = "full", parts: tuple[str, ...] = PARTS, device: str | None = None, steps: int = 2,
              repeats: int = 2, max_new_tokens: int = 8, dtype: str | None = None) -> dict:
    """Every chosen part (module docstring) on `device` (default: cuda when available, else cpu), with the
    transformer and judge weights in `dtype` ("bf16" or "fp32"; default bf16 on a GPU, fp32 on a CPU)."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or preset not in SIZES:
        raise ConfigError(f"unknown part {unknown[0]!r}" if unknown else f"unknown preset {preset!r}",
                          f"parts: {', '.join(PARTS)}; presets: {', '.join(SIZES)}")
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if preset == "full" and target.type != "cuda":
        raise ConfigError(f"the full-size GPU bench does not run on {target} (its models need tens of GB of GPU "
                          "memory)", "run it on a CUDA machine, or pass --preset tiny")
    if dtype not in (None, *DTYPES):
        raise ConfigError(f"unknown dtype {dtype!r}", f"choose one of: {', '.join(DTYPES)}")
    weights = DTYPES[dtype or ("bf16" if target.type == "cuda" else "fp32")]
    start = time.perf_counter()
    report = {"command": " ".join(["mibench", *sys.argv[1:]]), "preset": preset, "device": str(target),
              "accelerator": torch.cuda.get_device_name(target) if target.type == "cuda" else platform.machine(),
              "versions": versions(), "parts": {}}
    for part in parts:
        if part in ("musicinfuser", "mochi"):
            report["parts"][part] = bench_dance(preset, target, with_adapter=part == "musicinfuser", steps=steps,
                                                dtype=weights)
        elif part == "judge":
            report["parts"][part] = bench_judge_size(preset, target, dtype=weights, max_new_tokens=max_new_tokens)
        else:
            report["parts"][part] = bench_mmdiffusion(preset, target, repeats=repeats)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report
