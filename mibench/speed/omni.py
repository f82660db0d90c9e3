"""`mibench bench judge --judge qwen2.5-omni|qwen3-omni`: seconds per scored video of a Qwen-Omni judge, naive
vs cached, as `speed.judge` does for VideoLLaMA 2.

    mibench bench judge --judge qwen2.5-omni [--checkpoint DIR] [--video FILE] --max-new-tokens 8 --repeats 3

Both paths answer the 11 questions of the question set `paper` (the alignment ones rendered with the paper's
first prompt) with the same weights (the tiny preset without `--checkpoint`):
- naive, the model card's usage per question: read the media (qwen-omni-utils' sampling), run the processor on
  the whole prompt and `thinker.generate(do_sample=False)`;
- cached: read and encode once, the shared prefix once, then each question's own tokens (`OmniJudge.ask`).
Timing, medians, speed-up and peak memory as in `speed.judge` (`time_runs`).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import torch

from mibench.errors import ConfigError
from mibench.judges.base import build_judge
from mibench.judges.qwen_omni.judge import Answer, OmniJudge
from mibench.judges.qwen_omni.media import read_media
from mibench.speed.judge import Run, paper_questions, synthetic_clip, time_runs
from mibench.speed.memory import peak_memory_mib


def naive_run(judge: OmniJudge, video: Path, questions: list[str], max_new_tokens: int) -> Run:
    def run() -> tuple[int, list[Answer]]:
        answers, length = [], 0
        for question in questions:
            media = read_media(video)
            inputs = judge.processor_inputs(media, judge.prompt(question))
            inputs = {k: v.to(judge.thinker.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
            with torch.no_grad():
                out = judge.thinker.generate(**inputs, use_audio_in_video=media.audio is not None,
                                             max_new_tokens=max_new_tokens, do_sample=False)
            length = inputs["input_ids"].shape[1]
            answers.append(Answer(judge.tokenizer.decode(out[0, length:], skip_special_tokens=True).strip()))
        return length, answers
    return run


def cached_run(judge: OmniJudge, video: Path, questions: list[str], max_new_tokens: int) -> Run:
    def run() -> tuple[int, list[Answer]]:
        encoded = judge.encode(video)
        return len(encoded.prefix_ids), judge.ask(encoded, questions, max_new_tokens=max_new_tokens)
    return run


def bench_omni(name: str, checkpoint: Path | None = None, video: Path | None = None, max_new_tokens: int = 8,
               repeats: int = 3, device: str = "cpu") -> dict:
    """Seconds per scored video (11 questions) on the naive and the cached path; see the module docstring."""
    if repeats < 1 or max_new_tokens < 1:
        raise ConfigError(f"repeats and max_new_tokens must be at least 1, got {repeats} and {max_new_tokens}")
    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)
    entry = build_judge(name, "tiny" if checkpoint is None else "full", checkpoint=checkpoint, device=device)
    judge = entry.model
    questions = [text for _, text in paper_questions()]
    with tempfile.TemporaryDirectory(prefix="mibench-bench-omni-") as tmp:
        clip = synthetic_clip(Path(tmp) / "dance.mp4") if video is None else Path(video)
        runs = {"naive": naive_run(judge, clip, questions, max_new_tokens),
                "cached": cached_run(judge, clip, questions, max_new_tokens)}
        seconds, answers, prefix = time_runs(runs, repeats, target)
    texts = {tuple(a.text for a in result) for results in answers.values() for result in results}
    return {
        "judge": name, "checkpoint": "tiny preset (seed 0)" if checkpoint is None else str(checkpoint),
        "video": "synthetic 5 s dancer on a 120 bpm drum track" if video is None else str(video),
        "device": str(target), "torch_threads": torch.get_num_threads(), "repeats": repeats,
        "max_new_tokens": max_new_tokens, "questions": len(questions), "shared_prefix_positions": prefix,
        "naive_seconds_per_video": round(statistics.median(seconds["naive"]), 3),
        "cached_seconds_per_video": round(statistics.median(seconds["cached"]), 3),
        "speedup": round(statistics.median(n / c for n, c in zip(seconds["naive"], seconds["cached"], strict=True)), 2),
        "naive_seconds_runs": [round(s, 3) for s in seconds["naive"]],
        "cached_seconds_runs": [round(s, 3) for s in seconds["cached"]],
        "peak_memory_mib": round(peak_memory_mib(str(target)), 1),
        "peak_memory_kind": "cuda max allocated" if target.type == "cuda" else "process peak RSS",
        "answers_identical": len(texts) == 1,
    }
