"""The training commands: `mibench prepare`, `mibench train`, `mibench select-layers` (thin Typer wrappers over
`prepare.prepare`, `loop.train` and `select_layers.select_layers`).

    mibench prepare ~/data/aist/videos ~/data/wild --out data/prepared [--weights DIR | --preset tiny]
    mibench select-layers --weights DIR --out layers/ --k 16 [--measure judge:videollama2:imaging_quality]
    mibench train data/prepared --out adapters/mine --config paper [--layers layers/layers.json]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mibench.cli_common import DeviceOpt, JsonOpt, PresetOpt, check_preset, emit, err, say
from mibench.errors import ConfigError
from mibench.progress import progress_bar

WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="Base weights folder in the generator's "
                                                 "--weights layout.")]


def prepare_command(
    sources: Annotated[list[Path], typer.Argument(help="Dance videos or folders of them (AIST names understood).")],
    out: Annotated[Path, typer.Option("--out", help="The prepared data folder (manifest.jsonl, clips/).")],
    weights: WeightsOpt = None,
    preset: PresetOpt = "full",
    frames: Annotated[int, typer.Option("--frames", help="Frames per clip (6k+1).")] = 73,
    height: Annotated[int, typer.Option("--height")] = 480,
    width: Annotated[int, typer.Option("--width")] = 848,
    crops_per_minute: Annotated[float, typer.Option("--crops-per-minute", min=0.01)] = 5.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cut training clips from dance videos and cache their VAE latents, caption and music features."""
    from mibench.train.prepare import Encoders, find_videos, prepare

    check_preset(preset)
    videos = find_videos(sources)
    if not videos:
        raise ConfigError("no videos found in " + ", ".join(map(str, sources)), "pass mp4 files or their folders")
    device = device or "cpu"
    if preset == "tiny" and weights is None:
        encoders = Encoders.tiny(device=device)
    elif weights is None:
        raise ConfigError("prepare needs the encoders' weights", "pass --weights DIR (the generator's --weights "
                          "layout: vae/, text_encoder/, tokenizer/, wav2vec2/) or --preset tiny")
    else:
        encoders = Encoders.from_weights(weights, device)
    with progress_bar(err, "prepare", len(videos)) as bar:
        summary = prepare(videos, out, encoders=encoders, crops_per_minute=crops_per_minute, frames=frames,
                          height=height, width=width, seed=seed, progress=bar.advance, log=say)
    say(f"prepare: {summary.clips} clips ({summary.computed} new, {summary.reused} kept), "
        f"{len(summary.excluded)} videos excluded, {len(summary.skipped)} skipped; manifest: {out / 'manifest.jsonl'}")
    emit(as_json, summary.as_dict())


def _measure(spec: str, device: str | None):
    """`metric:NAME` or `judge:NAME:QUESTION[:PRESET]` as a quality measure."""
    from mibench.train.select_layers import judge_measure, metric_measure

    kind, _, rest = spec.partition(":")
    if kind == "metric" and rest:
        return metric_measure(rest)
    parts = rest.split(":")
    if kind == "judge" and len(parts) in (2, 3):
        return judge_measure(parts[0], parts[2] if len(parts) == 3 else "full", parts[1], device=device)
    raise ConfigError(f"unknown measure {spec!r}",
                      "use metric:NAME (e.g. metric:frame_consistency) or judge:NAME:QUESTION[:PRESET]")


def select_layers_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for videos/, adaptability.json and layers.json.")],
    weights: WeightsOpt = None,
    preset: PresetOpt = "full",
    measure: Annotated[str, typer.Option("--measure", help="metric:NAME or judge:NAME:QUESTION[:PRESET] (default: "
                                         "the judge's imaging-quality question, standing in for VBench's).")]
    = "judge:videollama2:imaging_quality",
    k: Annotated[int, typer.Option("--k", min=1, help="How many blocks to keep (the paper: 16 of 48).")] = 16,
    prompts: Annotated[int, typer.Option("--prompts", min=1, help="The first N prompts of the paper's 10.")] = 2,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per prompt: 0..N-1.")] = 1,
    steps: Annotated[int, typer.Option("--steps", min=2)] = 64,
    frames: Annotated[int, typer.Option("--frames")] = 73,
    height: Annotated[int, typer.Option("--height")] = 480,
    width: Annotated[int, typer.Option("--width")] = 848,
    skip_scale: Annotated[float, typer.Option("--skip-scale", help="Layer-skip guidance scale.")] = 1.0,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rank the DiT blocks by layer adaptability (guided sampling with each block skipped) and keep the top k."""
    from mibench.generators.musicinfuser.pipeline import DancePipeline
    from mibench.suite.prompts import load_prompt_set
    from mibench.train.select_layers import select_layers

    check_preset(preset)
    scorer = _measure(measure, device)
    if preset == "tiny" and weights is None:
        pipeline = DancePipeline.tiny(with_adapter=False, device=device or "cpu")
    else:
        pipeline = DancePipeline.from_weights(weights, adapter=None, device=device or "cpu")
    texts = [p.text for p in load_prompt_set("paper").prompts[:prompts]]
    blocks = len(pipeline.mochi.transformer.transformer_blocks)
    total = len(texts) * seeds * (blocks + 1)
    with progress_bar(err, "select-layers", total) as bar:
        selection = select_layers(pipeline, prompts=texts, seeds=list(range(seeds)), out_dir=out, measure=scorer,
                                  k=min(k, blocks), skip_scale=skip_scale, steps=steps, frames=frames,
                                  height=height, width=width, progress=lambda *_: bar.advance(), log=say)
    say(f"select-layers: top {len(selection.layers)} of {blocks} blocks by {scorer.name}: {selection.layers} "
        f"-> {out / 'layers.json'}")
    emit(as_json, {"layers": selection.layers, "measure": scorer.name, "baseline": selection.baseline,
                   "improvements": selection.improvements})


def _config_help() -> str:
    from mibench.train.recipe import recipe_names

    return "A recipe name (" + ", ".join(recipe_names()) + ") or a YAML file; `paper` is the paper's recipe."


def train_command(
    prepared: Annotated[Path, typer.Argument(help="A folder made by `mibench prepare`.")],
    out: Annotated[Path, typer.Option("--out", help="Training folder: checkpoints/, log.csv, the adapter.")],
    config: Annotated[str, typer.Option("--config", help=_config_help())] = "paper",
    layers: Annotated[Path | None, typer.Option("--layers", help="A layers.json from `select-layers` (default: "
                                                "the recipe's audio layers).")] = None,
    weights: WeightsOpt = None,
    preset: PresetOpt = "full",
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps in "
                                                  "total (resume later).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Refuse to resume (the folder must hold no "
                                        "checkpoint).")] = False,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a MusicInfuser adapter (LoRA + audio cross-attention) on prepared clips; resumes from the last
    checkpoint exactly. Data parallel: `accelerate launch -m mibench.cli train ...`."""
    from dataclasses import replace

    from mibench.train.loop import train
    from mibench.train.parts import TrainParts
    from mibench.train.recipe import load_recipe

    check_preset(preset)
    recipe = load_recipe(config)
    if layers is not None:
        recipe = replace(recipe, audio_layers=str(layers))
    if preset == "tiny" and weights is None:
        parts = TrainParts.tiny(recipe)
    elif weights is None:
        raise ConfigError("train needs the base weights", "pass --weights DIR (the generator's --weights layout) "
                          "or --preset tiny")
    else:
        from accelerate import PartialState

        parts = TrainParts.from_weights(weights, recipe, device or PartialState().device)
    summary = train(prepared, out, recipe, model_parts=parts, resume=not fresh, max_steps=max_steps, log=say)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # data parallel: the main process reports and writes
        return
    if summary.adapter is not None:
        from mibench.train.export import complete_layout

        added = complete_layout(out, weights)
        if added:
            say(f"train: {out} is a whole --weights folder ({', '.join(added)} {'linked' if weights else 'written'})")
    say(f"train: steps {summary.start_step} -> {summary.end_step}"
        f"{' (finished)' if summary.finished else ''}; adapter: {summary.adapter or 'not yet (unfinished)'}")
    emit(as_json, {"start_step": summary.start_step, "end_step": summary.end_step, "finished": summary.finished,
                   "losses": summary.losses, "checkpoint": str(summary.checkpoint) if summary.checkpoint else None,
                   "adapter": str(summary.adapter) if summary.adapter else None,
                   "peft": str(summary.peft) if summary.peft else None})
