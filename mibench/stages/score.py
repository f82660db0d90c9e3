"""The score stage: ask a judge the question set about every video of a run and store the answers.

Modes: `greedy` (paper protocol: greedy text answers, parsed by `judges.parse.parse_score`; an
unparseable answer is stored with score NULL, i.e. missing) and `expected` (the probability-weighted
score over the answers 0..10, with its distribution). Runs: run 0 samples frames and audio clips as
the official judge does; runs 1..N-1 use seeded temporal jitter (`jitter_seed = seed + run index`),
so repeated runs are not identical copies. Each video is encoded once per run and every question of
that run reuses the encoding. Questions already answered for (job, judge, mode, run) are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.markup import escape

from mibench.errors import MediaError
from mibench.judges.base import Judge
from mibench.judges.parse import parse_score
from mibench.stages.summary import StageSummary
from mibench.store import Store
from mibench.suite.prompts import QuestionSet

MODES = ("greedy", "expected")


def score_videos(store: Store, judge: Judge, questions: QuestionSet, *, models: list[str] | None = None,
                 mode: str = "greedy", runs: int = 1, seed: int = 0, modal: str = "av",
                 max_new_tokens: int = 16, limit: int | None = None,
                 advance: Callable[[], None] = lambda: None,
                 log: Callable[[str], None] = lambda _: None) -> StageSummary:
    videos = [v for m in (models or store.models()) for v in store.videos(m)][:limit]
    options = {"modal": modal, "max_new_tokens": max_new_tokens, "runs": runs, "seed": seed,
               "preset": judge.preset, "question_set": questions.name}
    summary = StageSummary()
    for video in videos:
        applicable = questions.for_prompt(video["prompt"])
        for run_index in range(runs):
            answered = store.answered(video["job_id"], judge.name, mode, run_index)
            todo = [q for q in applicable if q.id not in answered]
            if not todo:
                summary.skipped += 1
                continue
            jitter = None if run_index == 0 else seed + run_index
            try:
                encoded = judge.encode(Path(video["path"]), modal=modal, jitter_seed=jitter)
            except MediaError as exc:
                summary.failed.append((video["job_id"], exc.line()))
                log(f"[red]skipped[/red] {video['job_id']}: {escape(exc.line())}")
                break
            texts = [q.render(video["prompt"]) for q in todo]
            answers = judge.ask(encoded, texts, mode=mode, max_new_tokens=max_new_tokens)
            store.record_answers(
                {"job_id": video["job_id"], "judge": judge.name, "question_set": questions.name,
                 "question_id": q.id, "mode": mode, "run_index": run_index, "question": text, "raw": a.text,
                 "score": parse_score(a.text) if mode == "greedy" else a.expected_score,
                 "distribution": a.distribution, "options": {**options, "jitter_seed": jitter}}
                for q, text, a in zip(todo, texts, answers, strict=True)
            )
            summary.done += 1
        advance()
    return summary
