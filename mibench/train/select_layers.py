"""Layer selection by adaptability (MusicInfuser v3 §4.1, Eq. 4, supplement §H): which DiT blocks get ZICA.

- `skip_block`: block l returns its inputs unchanged on both streams (visual and text), by a forward hook.
- `layer_skip_guidance`: layer-skip guidance (Eq. 4, `D^L - D^{L\\{l}}`) inside the unchanged sampler. The
  step is STG's, as diffusers' community `examples/community/pipeline_stg_mochi.py`:
  `v = v_u + g * (v_c - v_u) + s * (v_c - v_skip)`, with v_u / v_c the unconditional / conditional
  predictions, v_skip the conditional one with block l skipped, g the CFG scale and s the skip scale. The
  sampler combines `v_u + g * (v_c' - v_u)` itself, so a hook on the transformer returns
  `v_c' = v_c + (s / g) * (v_c - v_skip)` for the conditional rows (those with text tokens): the same sum.
  With genmo's velocity `v = x0 - eps` and `D = x_sigma + sigma * v`, `v_c - v_skip` is exactly Eq. 4's
  `(D^L - D^{L\\{l}}) / sigma`.
- `QualityMeasure`: what "improvement" means; a mibench metric (`metric_measure`), a judge question in
  expected-score mode (`judge_measure`) or any function (`CallableMeasure`).
- `select_layers`: samples the baseline and each block's guided videos (same prompts, seeds, music),
  scores them and keeps the k blocks whose guidance improves the measure most.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from diffusers import MochiPipeline, MochiTransformer3DModel

from mibench.errors import ConfigError
from mibench.fingerprint import digest
from mibench.generators.musicinfuser.pipeline import DancePipeline
from mibench.generators.musicinfuser.sampler import make_scheduler
from mibench.generators.musicinfuser.tiny import TinyParts
from mibench.media.audio import atomic_output
from mibench.media.video import write_mp4

FPS = 30
MUSIC_RATE = 16_000
PAPER_K = 16


@contextmanager
def skip_block(transformer: MochiTransformer3DModel, index: int) -> Iterator[None]:
    """While inside, block `index` returns its (hidden_states, encoder_hidden_states) inputs unchanged.

    The hook runs after any other hook of the block (a ZICA audio update included), so the block and its
    audio cross-attention are skipped together, as if the block were removed."""

    def identity(block: torch.nn.Module, args: tuple, kwargs: dict, output: tuple) -> tuple:
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        context = kwargs["encoder_hidden_states"] if "encoder_hidden_states" in kwargs else args[1]
        return hidden, context

    handle = transformer.transformer_blocks[index].register_forward_hook(identity, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def layer_skip_guidance(transformer: MochiTransformer3DModel, index: int, scale: float,
                        cfg_scale: float) -> Iterator[None]:
    """While inside, the sampler (`sampler.denoise`, CFG scale `cfg_scale`) is guided by skipping block `index`
    with skip scale `scale` (module docstring). Each conditional call runs the transformer once more with the
    block skipped; the correction is computed in float32 and cast back to the transformer's output dtype."""
    if cfg_scale == 0:
        raise ConfigError("layer-skip guidance rides on the conditional branch, which CFG scale 0 drops",
                          "use a CFG scale other than 0 (the paper's 6.0)")
    ratio, busy = scale / cfg_scale, False

    def guide(module: MochiTransformer3DModel, args: tuple, kwargs: dict, output):
        nonlocal busy
        mask = kwargs["encoder_attention_mask"] if "encoder_attention_mask" in kwargs else args[3]
        rows = mask.flatten(1).any(1)
        if busy or not rows.any():
            return None
        busy = True
        try:
            with skip_block(module, index):
                skipped = module(*args, **kwargs)[0]
        finally:
            busy = False
        sample = output[0]
        rows = rows.view(-1, *(1,) * (sample.ndim - 1))
        guided = (sample.float() + ratio * rows * (sample.float() - skipped.float())).to(sample.dtype)
        return (guided, *output[1:]) if isinstance(output, tuple) else type(output)(sample=guided)

    handle = transformer.register_forward_hook(guide, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


class QualityMeasure(Protocol):
    """A score of one video file; `better` is "higher" or "lower"."""

    name: str
    better: str

    def __call__(self, video: Path) -> float: ...


@dataclass
class CallableMeasure:
    """Any function of the video file as a measure."""

    name: str
    fn: Callable[[Path], float]
    better: str = "higher"

    def __call__(self, video: Path) -> float:
        return float(self.fn(video))


def metric_measure(name: str) -> CallableMeasure:
    """A per-video mibench metric (`metrics.registry.METRICS`) of the video and its own music track."""
    from mibench.metrics.bas import PUBLISHED, RECIPES
    from mibench.metrics.compute import compute_video_metrics
    from mibench.metrics.registry import METRICS, names

    metric = METRICS.get(name)
    if name not in names(tuple(RECIPES), pose=True) or metric.better is None:
        raise ConfigError(f"{name!r} is not a per-video metric with a better direction", "see `mibench metrics`")
    recipes = (metric.recipe,) if metric.recipe else PUBLISHED

    def score(video: Path) -> float:
        value, _, note = compute_video_metrics(video, recipes=recipes, pose="poses" in metric.needs)[name]
        if value is None:
            raise ConfigError(f"metric {name} is undefined for {video}: {note}", "choose another measure")
        return value

    return CallableMeasure(f"metric:{name}", score, metric.better)


def judge_measure(judge: str = "videollama2", preset: str = "full", question: str = "imaging_quality", *,
                  question_set: str = "paper", modal: str | None = "video", device: str | None = None,
                  max_new_tokens: int | None = None) -> CallableMeasure:
    """The judge's expected 0..10 score for one question (no prompt-alignment questions: a measure sees the
    video only). The default, the paper question set's `imaging_quality` asked of VideoLLaMA 2.1-AV on the
    frames only (`modal="video"`), stands in for VBench's Imaging Quality (MUSIQ on every frame), which the
    paper ranks blocks by: a Video-LLM's rating, not a no-reference image-quality network."""
    from mibench.judges.base import build_judge
    from mibench.suite.prompts import load_question_set

    found = {q.id: q for q in load_question_set(question_set).questions}.get(question)
    if found is None or found.needs_prompt:
        raise ConfigError(f"{question!r} is not a prompt-free question of set {question_set!r}",
                          "use e.g. imaging_quality or aesthetic_quality")
    scorer = build_judge(judge, preset, device=device, options={"modal": modal, "max_new_tokens": max_new_tokens})

    def score(video: Path) -> float:
        [answer] = scorer.ask(scorer.encode(video), [found.text], mode="expected")
        return answer.expected_score

    return CallableMeasure(f"judge:{judge}/{preset}/{modal or 'default'}:{question}", score)


@dataclass
class Selection:
    """The chosen blocks (ascending) and every block's improvement of the measure over the baseline."""

    layers: list[int]
    improvements: dict[int, float]
    baseline: float
    measure: str


def as_pipeline(source: DancePipeline | TinyParts) -> DancePipeline:
    """A DancePipeline over the given parts (a DancePipeline is returned as it is)."""
    if isinstance(source, DancePipeline):
        return source
    mochi = MochiPipeline(scheduler=make_scheduler(), vae=source.vae, text_encoder=source.text_encoder,
                          tokenizer=source.tokenizer, transformer=source.transformer)
    return DancePipeline(mochi, source.music, source.zica)


def _weights_checksum(transformer: MochiTransformer3DModel) -> float:
    """float64 sum of the transformer's weights (LoRA and ZICA included) for the videos' fingerprints; weights
    parked on the meta device (sequential CPU offload) are not covered."""
    with torch.no_grad():
        return round(sum(p.double().sum().item() for p in transformer.parameters() if p.device.type != "meta"), 6)


def select_layers(source: DancePipeline | TinyParts, *, prompts: Sequence[str], seeds: Sequence[int],
                  out_dir: Path, measure: QualityMeasure | None = None, blocks: Sequence[int] | None = None,
                  k: int = PAPER_K, music: np.ndarray | None = None, skip_scale: float = 1.0,
                  guidance_scale: float = 6.0, steps: int = 64, frames: int = 73, height: int = 480,
                  width: int = 848, progress: Callable[[int, int], None] | None = None,
                  log: Callable[[str], None] | None = None) -> Selection:
    """Rank `blocks` (default all) by layer adaptability and keep the top `k`.

    Every (prompt, seed) is sampled without and with each block's layer-skip guidance (`skip_scale`, on top
    of CFG `guidance_scale`), giving the same `music` (a 16 kHz wave; muxed into the video too). Videos go to
    `out_dir/videos/`, an existing one is reused when its fingerprint (`videos/fingerprints.json`: settings,
    prompt, seed, music, transformer weights checksum) matches. A block's improvement is its mean score
    minus the baseline's (negated for lower-is-better measures); ties rank the lower block first. Writes
    `out_dir/adaptability.json` and `out_dir/layers.json` (the top-k blocks, ascending). `measure` defaults
    to `judge_measure()`. `progress(done, total)` runs after each video, `log(line)` on each one.
    """
    pipe, out_dir = as_pipeline(source), Path(out_dir)
    transformer = pipe.mochi.transformer
    blocks = list(range(transformer.config.num_layers) if blocks is None else blocks)
    if not blocks or len(set(blocks)) != len(blocks) or not all(0 <= b < transformer.config.num_layers for b in blocks):
        raise ConfigError(f"blocks {blocks} are not distinct blocks of 0..{transformer.config.num_layers - 1}")
    if not 1 <= k <= len(blocks):
        raise ConfigError(f"cannot keep {k} of {len(blocks)} blocks", f"choose k in 1..{len(blocks)}")
    if not prompts or not all(prompts) or not seeds:
        raise ConfigError("layer selection needs non-empty prompts and at least one seed",
                          "layer-skip guidance acts on the text-conditional branch")
    measure = judge_measure() if measure is None else measure
    if measure.better not in ("higher", "lower"):
        raise ConfigError(f"measure {measure.name} is better {measure.better!r}", 'use "higher" or "lower"')
    say = log or (lambda line: None)
    common = {"steps": steps, "frames": frames, "height": height, "width": width, "fps": FPS,
              "guidance_scale": guidance_scale, "dtype": str(transformer.dtype),
              "weights_checksum": _weights_checksum(transformer),
              "music_sha256": None if music is None else hashlib.sha256(np.ascontiguousarray(music)).hexdigest()}
    settings = {**common, "skip_scale": skip_scale, "prompts": list(prompts), "seeds": list(seeds), "blocks": blocks}
    manifest_path = out_dir / "videos" / "fingerprints.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    runs = [(block, i, seed) for block in [None, *blocks] for i in range(len(prompts)) for seed in seeds]

    def sample(block: int | None, i: int, seed: int) -> Path:
        name = f"{'baseline' if block is None else f'block{block:02d}'}/p{i}_seed{seed}.mp4"
        video = out_dir / "videos" / name
        fingerprint = digest({**common, "prompt": prompts[i], "seed": seed, "block": block,
                              "skip_scale": None if block is None else skip_scale})
        if video.is_file() and manifest.get(name) == fingerprint:
            say(f"reusing {name}")
            return video
        say(f"sampling {name}")
        guidance = nullcontext() if block is None else layer_skip_guidance(transformer, block, skip_scale,
                                                                           guidance_scale)
        with guidance:
            pixels = pipe.generate(prompts[i], music, num_frames=frames, height=height, width=width, steps=steps,
                                   guidance_scale=guidance_scale, seed=seed)
        write_mp4(video, pixels, FPS, audio=music, audio_sr=None if music is None else MUSIC_RATE)
        manifest[name] = fingerprint
        _write_json(manifest_path, manifest)
        return video

    videos = []
    for done, run in enumerate(runs, 1):
        videos.append(sample(*run))
        if progress is not None:
            progress(done, len(runs))
    scores = np.array([measure(video) for video in videos]).reshape(len(blocks) + 1, -1)
    sign = 1.0 if measure.better == "higher" else -1.0
    improvements = {b: float(sign * (scores[j + 1].mean() - scores[0].mean())) for j, b in enumerate(blocks)}
    ranked = sorted(blocks, key=lambda b: (-improvements[b], b))
    layers = sorted(ranked[:k])
    _write_json(out_dir / "adaptability.json", {
        "measure": {"name": measure.name, "better": measure.better}, "settings": settings, "k": k,
        "baseline": {"mean": float(scores[0].mean()), "scores": scores[0].tolist()},
        "blocks": [{"block": b, "mean": float(scores[j + 1].mean()), "improvement": improvements[b],
                    "rank": ranked.index(b) + 1, "scores": scores[j + 1].tolist()} for j, b in enumerate(blocks)],
        "layers": layers})
    _write_json(out_dir / "layers.json", layers)
    return Selection(layers, improvements, float(scores[0].mean()), measure.name)


def _write_json(path: Path, data: object) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
