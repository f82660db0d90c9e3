"""`mibench bench generate|judge|metrics`: the speed benchmarks' commands (medians, peak memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mibench.cli_common import DeviceOpt, JsonOpt, PresetOpt, check_preset, emit
from mibench.errors import ConfigError

bench_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Measure speed and peak memory of a stage.")


@bench_app.command("generate")
def bench_generate(
    model: Annotated[str, typer.Option("--model")] = "musicinfuser",
    preset: PresetOpt = "tiny",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs; the median is reported.")] = 3,
    frames: Annotated[int | None, typer.Option("--frames", min=1)] = None,
    weights: Annotated[Path | None, typer.Option("--weights")] = None,
    device: DeviceOpt = "cpu",
    as_json: JsonOpt = False,
) -> None:
    """Seconds per denoising step and peak memory of a generator."""
    from mibench.speed.generate import bench_generator

    check_preset(preset)
    _print_bench(bench_generator(model, preset, repeats=repeats, frames=frames, weights=weights, device=device),
                 as_json)


@bench_app.command("judge")
def bench_judge(
    judge: Annotated[str, typer.Option("--judge", help="videollama2, qwen2.5-omni or qwen3-omni.")] = "videollama2",
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Official-layout checkpoint.")] = None,
    siglip: Annotated[Path | None, typer.Option("--siglip", help="SigLIP folder (default: from config).")] = None,
    video: Annotated[Path | None, typer.Option("--video", help="An mp4 with audio (default: synthetic).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 8,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Seconds per scored video: naive per-question path vs cached path, same weights."""
    if judge != "videollama2":
        from mibench.cards import card
        from mibench.speed.omni import bench_omni

        card(judge, "judge")  # an unknown name is refused with the list
        if siglip is not None:
            raise ConfigError(f"judge {judge} does not use --siglip", "drop it")
        _print_bench(bench_omni(judge, checkpoint=checkpoint, video=video, max_new_tokens=max_new_tokens,
                                repeats=repeats), as_json)
        return
    from mibench.speed.judge import bench_judge as run

    _print_bench(run(checkpoint=checkpoint, siglip=siglip, video=video, max_new_tokens=max_new_tokens,
                     repeats=repeats), as_json)


@bench_app.command("metrics")
def bench_metrics(
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the synthetic test video.")] = 20.0,
    video: Annotated[Path | None, typer.Option("--video", help="An mp4 with audio (default: synthetic).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 3,
    pose: Annotated[bool, typer.Option("--pose", help="Also the 2-D pose path (needs mediapipe).")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Also the throughput of N worker "
                                         "processes (as `mibench metrics --workers N`).")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Seconds of computation per minute of video (default: a synthetic 480x848 dancer)."""
    from mibench.speed.metrics import bench_metrics as run

    _print_bench(run(seconds=seconds, repeats=repeats, video=video, pose=pose, workers=workers), as_json)


def _print_bench(result: dict, as_json: bool) -> None:
    if as_json:
        emit(True, result)
        return
    out = Console(soft_wrap=True, highlight=False)
    for key, value in result.items():
        if not isinstance(value, (dict, list)):
            out.print(escape(f"  {key:36s} {value}"))


@bench_app.command("gpu")
def bench_gpu(
    preset: PresetOpt = "full",
    part: Annotated[list[str] | None, typer.Option("--part", help="musicinfuser, mochi, judge or mmdiffusion "
                                                   "(repeatable; default all).")] = None,
    device: DeviceOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=2, help="Denoising steps timed per generation.")] = 2,
    dtype: Annotated[str | None, typer.Option("--dtype", help="Transformer and judge weights: bf16 or fp32 "
                                              "(default bf16 on a GPU, fp32 on a CPU).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed MM-Diffusion steps.")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Every full-size path with random weights built on the device: seconds per step or video, peak
    memory, placement variants, fits 40/24 GB (default: cuda when available; --preset tiny: tiny sizes)."""
    from mibench.speed.gpu import PARTS
    from mibench.speed.gpu import bench_gpu as run

    check_preset(preset)
    result = run(preset=preset, parts=tuple(part or PARTS), device=device, steps=steps, repeats=repeats, dtype=dtype)
    if as_json:
        emit(True, result)
        return
    out = Console(soft_wrap=True, highlight=False)
    out.print(escape(f"{result['command']} on {result['device']} ({result['accelerator']}), {result['seconds']} s"))
    for name, found in result["parts"].items():
        for variant, values in (found.get("variants") or {"": found}).items():
            shown = {k: v for k, v in values.items() if not isinstance(v, (dict, list))}
            out.print(escape(f"  {name} {variant}".rstrip() + ": " + ", ".join(f"{k}={v}" for k, v in shown.items())))
