"""`mibench bench judge`: seconds per scored video of the VideoLLaMA 2.1-AV judge, naive vs cached.

    mibench bench judge [--checkpoint DIR [--siglip DIR]] [--video FILE] --max-new-tokens 8 --repeats 3 [--json]

Both paths run on the same weights, always loaded the official way (`from_pretrained` on a folder in
the official layout; without `--checkpoint`, the bench preset written by `save_official` to a
temporary folder) and answer the 11 questions of the question set `paper`, the alignment questions
rendered with the paper's first prompt:
- naive, the official `mm_infer` loop: the media are read once (the official processor runs once
  per video), then for every question the towers run again (SigLIP, STC, BEATs, audio MLP), the
  whole prompt is prefilled and the answer decoded;
- cached: read and encode once, prefill the shared prefix once, then per question only its own
  tokens and the decode steps (`ask(cached=True)`).
Runs alternate between the paths; the first of each is a warm-up and not timed; medians of
`repeats` runs are reported, and the speed-up is the median of naive / cached over the repeats
(each pair runs back to back, so load drift on a shared machine largely cancels). Peak memory is
the process peak RSS (`ru_maxrss`, which never decreases, so it covers both paths and the loading)
or `torch.cuda.max_memory_allocated`.

The bench preset (`bench_config`) has the real model's sequence: 16 frames of 384 px, patch 14 ->
27 x 27 patches -> 8 x 13 x 13 = 1352 video tokens after STC, 1496 BEATs tokens and 64-174 text
tokens (the tiny preset's small tokenizer), 2.9k-3.0k LLM positions, with a narrow Qwen2 (hidden
384, 6 layers) and light towers, so that, as for the real model, a naive question costs mostly its
prefill and a cached one mostly its decode steps.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, SiglipVisionConfig

from mibench.errors import ConfigError
from mibench.judges.videollama2.beats import BEATsConfig
from mibench.judges.videollama2.chat import prompt_chunks
from mibench.judges.videollama2.export import save_official
from mibench.judges.videollama2.judge import Answer, VideoLLaMA2Judge
from mibench.judges.videollama2.load import Settings
from mibench.judges.videollama2.model import ModelConfig, VideoLLaMA2AV
from mibench.judges.videollama2.tiny import build_random
from mibench.media.synth import dancer_video, drum_track
from mibench.media.video import write_mp4
from mibench.speed.memory import peak_memory_mib
from mibench.suite.prompts import load_prompt_set, load_question_set

SAMPLE_RATE = 16000
BPM = 120.0
CLIP_SECONDS = 5.0
CLIP_FPS = 24

Run = Callable[[], tuple[int, list[Answer]]]


def bench_config() -> ModelConfig:
    """16 frames of 384 px (patch 14) -> 1352 video + 1496 audio tokens; Qwen2 384 wide, 6 layers."""
    llm = Qwen2Config(
        vocab_size=576, hidden_size=384, intermediate_size=2048, num_hidden_layers=6, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}, bos_token_id=560, eos_token_id=562,
    )
    # 2 SigLIP layers with mm_vision_select_layer -2 -> the first is kept
    vision = SiglipVisionConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4,
                                image_size=384, patch_size=14, vision_use_head=False)
    beats = BEATsConfig(embed_dim=64, encoder_embed_dim=64, encoder_ffn_embed_dim=256, encoder_layers=2,
                        encoder_attention_heads=4)
    return ModelConfig(llm, vision, beats, "mlp2x_gelu")


def build_bench(seed: int = 0) -> tuple[VideoLLaMA2AV, PreTrainedTokenizerBase, Settings]:
    """The bench preset with seeded random weights and the tiny preset's tokenizer (float32, CPU)."""
    return build_random(bench_config(), num_frames=16, image_size=384, seed=seed)


def paper_questions() -> list[tuple[str, str]]:
    """(id, text) of the 11 paper questions, alignment ones rendered with the paper's first prompt."""
    prompt = load_prompt_set("paper").prompts[0].text
    return [(q.id, q.render(prompt)) for q in load_question_set("paper").questions]


def synthetic_clip(path: Path) -> Path:
    """A 5 s stick-figure dancer on a 120 bpm drum track (H.264 + AAC)."""
    frames = dancer_video(BPM, CLIP_SECONDS, fps=CLIP_FPS, size=(256, 256))
    return write_mp4(path, frames, CLIP_FPS, audio=drum_track(BPM, CLIP_SECONDS, sr=SAMPLE_RATE),
                     audio_sr=SAMPLE_RATE)


def naive_run(judge: VideoLLaMA2Judge, video: Path, questions: list[str], max_new_tokens: int) -> Run:
    """The official per-question path: towers, full prefill and decode for every question."""
    def run() -> tuple[int, list[Answer]]:
        inputs = judge.preprocess(video)
        answers = []
        for question in questions:
            encoded = judge.encode_media(video, inputs)
            answers += judge.ask(encoded, [question], max_new_tokens=max_new_tokens, cached=False)
        return len(encoded.tokens), answers
    return run


def cached_run(judge: VideoLLaMA2Judge, video: Path, questions: list[str], max_new_tokens: int) -> Run:
    """Encode once, prefill the shared prefix once, then each question's own tokens."""
    def run() -> tuple[int, list[Answer]]:
        encoded = judge.encode(video)
        return len(encoded.tokens), judge.ask(encoded, questions, max_new_tokens=max_new_tokens)
    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(runs: dict[str, Run], repeats: int, device: torch.device) -> tuple[dict, dict, int]:
    """Alternate the runs `repeats` + 1 times; (seconds of the timed runs, answers of every run,
    multimodal token count), each per run name."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    answers: dict[str, list[list[Answer]]] = {name: [] for name in runs}
    tokens = 0
    for i in range(repeats + 1):
        for name, run in runs.items():
            _sync(device)
            start = time.perf_counter()
            tokens, result = run()
            _sync(device)
            if i:
                seconds[name].append(time.perf_counter() - start)
            answers[name].append(result)
    return seconds, answers, tokens


def bench_judge(checkpoint: Path | None = None, siglip: Path | None = None, video: Path | None = None,
                max_new_tokens: int = 8, repeats: int = 3, device: str = "cpu") -> dict:
    """Seconds per scored video (11 questions) on the naive and the cached path; see the module docstring."""
    if checkpoint is None and siglip is not None:
        raise ConfigError("--siglip needs --checkpoint", "pass the checkpoint folder too, or neither")
    if repeats < 1 or max_new_tokens < 1:
        raise ConfigError(f"repeats and max_new_tokens must be at least 1, got {repeats} and {max_new_tokens}")
    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    with tempfile.TemporaryDirectory(prefix="mibench-bench-judge-") as tmp:
        if checkpoint is None:
            checkpoint = save_official(*build_bench(), Path(tmp) / "bench")
            source = "bench preset (seed 0), written by save_official"
        else:
            source = str(checkpoint)
        judge = VideoLLaMA2Judge.from_pretrained(checkpoint, siglip, device=target)
        clip = synthetic_clip(Path(tmp) / "dance.mp4") if video is None else Path(video)
        ids, questions = zip(*paper_questions(), strict=True)
        runs = {"naive": naive_run(judge, clip, list(questions), max_new_tokens),
                "cached": cached_run(judge, clip, list(questions), max_new_tokens)}
        seconds, answers, tokens = time_runs(runs, repeats, target)
    positions = [tokens + sum(map(len, prompt_chunks(judge.tokenizer, q))) for q in questions]
    prefix = tokens + len(prompt_chunks(judge.tokenizer, questions[0])[0])
    token_ids = {tuple(tuple(a.token_ids) for a in result) for results in answers.values() for result in results}
    naive_s, cached_s = (statistics.median(seconds[name]) for name in runs)
    return {
        "checkpoint": source,
        "video": "synthetic 5 s dancer on a 120 bpm drum track" if video is None else str(video),
        "device": str(target), "torch_threads": torch.get_num_threads(),
        "repeats": repeats, "max_new_tokens": max_new_tokens, "questions": len(questions),
        "multimodal_tokens": tokens, "shared_prefix_positions": prefix,
        "llm_input_positions_min": min(positions), "llm_input_positions_max": max(positions),
        "naive_seconds_per_video": round(naive_s, 3),
        "cached_seconds_per_video": round(cached_s, 3),
        "speedup": round(statistics.median(n / c for n, c in zip(seconds["naive"], seconds["cached"], strict=True)), 2),
        "naive_seconds_runs": [round(s, 3) for s in seconds["naive"]],
        "cached_seconds_runs": [round(s, 3) for s in seconds["cached"]],
        "peak_memory_mib": round(peak_memory_mib(str(target)), 1),
        "peak_memory_kind": "cuda max allocated" if target.type == "cuda" else "process peak RSS",
        "answers_identical": len(token_ids) == 1,
        "answers": [{"question_id": qid, "naive": naive.text, "cached": cached.text}
                    for qid, naive, cached in zip(ids, answers["naive"][0], answers["cached"][0], strict=True)],
    }
