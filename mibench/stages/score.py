"""The score stage: ask a judge the question set about every video of a run and store the answers.

Modes: `greedy` (paper protocol: greedy text answers, parsed by `judges.parse.parse_score`; an
unparseable answer is stored with score NULL, i.e. missing) and `expected` (the probability-weighted
score over the answers 0..10, with its distribution and the probability mass the judge put on those
eleven answers, `valid_mass`). Runs: run 0 samples frames and audio clips as
the official judge does; runs 1..N-1 use seeded temporal jitter with a seed drawn from (seed, item,
run index) (`jitter_seed`), so repeated runs are not identical copies and no two videos of a model share
one jitter draw (the videos of one item across models do: paired comparisons compare like with like).
Each video is encoded once per run and every question of that run reuses the encoding.

An evaluation is one set of judge settings (`evaluation_settings`: the judge's identity, i.e. card,
preset, modal, decoding and weights, plus the mode, the seed and the exact text of every question);
its fingerprint keys the answers. Questions already answered for (job, evaluation, run) are skipped;
a changed setting starts a new evaluation, and the answers of earlier ones stay beside it. Each run of a
video is claimed in the store while it is scored, so several processes scoring one run share the work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from mibench.errors import MediaError
from mibench.fingerprint import digest
from mibench.judges.base import Judge
from mibench.judges.parse import parse_score
from mibench.stages.summary import StageSummary
from mibench.store import Store
from mibench.suite.prompts import QuestionSet

MODES = ("greedy", "expected")
JITTER_SCHEME = "sha256(seed/item/run)"  # recorded in the evaluation: another scheme is another evaluation


def jitter_seed(seed: int, item_id: str, run_index: int) -> int | None:
    """The temporal-jitter seed of a judge run: None for run 0 (the official sampling), else 31 bits of
    SHA-256 of "seed/item/run" (`JITTER_SCHEME`)."""
    if run_index == 0:
        return None
    return int(hashlib.sha256(f"{seed}/{item_id}/{run_index}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def evaluation_settings(judge: Judge, questions: QuestionSet, *, mode: str, seed: int) -> dict:
    return {**judge.identity(), "mode": mode, "seed": seed, "jitter": JITTER_SCHEME, "question_set": questions.name,
            "questions": {q.id: q.text for q in questions.questions}}


def score_videos(store: Store, judge: Judge, questions: QuestionSet, *, models: list[str] | None = None,
                 mode: str = "greedy", runs: int = 1, seed: int = 0, limit: int | None = None,
                 advance: Callable[[], None] = lambda: None,
                 log: Callable[[str], None] = lambda _: None) -> StageSummary:
    """Score every finished video (of `models`, the first `limit`) `runs` times; `summary.results` holds
    every stored answer of this evaluation for the chosen videos."""
    videos = [v for m in (models or store.models()) for v in store.videos(m)][:limit]
    settings = evaluation_settings(judge, questions, mode=mode, seed=seed)
    evaluation = digest(settings)
    store.add_evaluation(evaluation, judge.name, mode, settings)
    options = {"modal": judge.modal, "max_new_tokens": judge.max_new_tokens, "runs": runs, "seed": seed,
               "preset": judge.preset, "question_set": questions.name}
    summary = StageSummary()
    for video in videos:
        applicable = questions.for_prompt(video["prompt"])
        for run_index in range(runs):
            key = f"score:{evaluation}:{video['job_id']}:{run_index}"
            if not [q for q in applicable if q.id not in store.answered(video["job_id"], evaluation, run_index)]:
                summary.skipped += 1
            elif not store.claim(key):
                summary.elsewhere += 1
            else:
                try:
                    error = _score_run(store, judge, video, applicable, evaluation, run_index, mode, seed,
                                       options, summary)
                finally:
                    store.release(key)
                if error:
                    break
        advance()
    chosen = {v["job_id"]: v["model"] for v in videos}
    summary.results = [
        {"job_id": a["job_id"], "model": chosen[a["job_id"]], "evaluation": evaluation, "judge": a["judge"],
         "mode": a["mode"], "question_id": a["question_id"], "run_index": a["run_index"], "score": a["score"],
         "valid_mass": a["valid_mass"], "raw": a["raw"]}
        for a in store.answers(evaluation) if a["job_id"] in chosen
    ]
    return summary


def _score_run(store: Store, judge: Judge, video: dict, applicable: list, evaluation: str, run_index: int,
               mode: str, seed: int, options: dict, summary: StageSummary) -> bool:
    """Answer a claimed run of one video (the questions still unanswered); True when the video failed."""
    answered = store.answered(video["job_id"], evaluation, run_index)
    todo = [q for q in applicable if q.id not in answered]
    if not todo:  # another process finished it meanwhile
        summary.skipped += 1
        return False
    jitter = jitter_seed(seed, video["item_id"], run_index)
    try:
        encoded = judge.encode(Path(video["path"]), jitter_seed=jitter)
    except MediaError as exc:
        summary.failed.append((video["job_id"], exc.line()))
        return True
    texts = [q.render(video["prompt"]) for q in todo]
    answers = judge.ask(encoded, texts, mode=mode)
    store.record_answers(
        {"job_id": video["job_id"], "evaluation": evaluation, "judge": judge.name,
         "question_set": options["question_set"], "question_id": q.id, "mode": mode, "run_index": run_index,
         "question": text, "raw": a.text, "score": parse_score(a.text) if mode == "greedy" else a.expected_score,
         "distribution": a.distribution, "valid_mass": a.valid_mass, "options": {**options, "jitter_seed": jitter}}
        for q, text, a in zip(todo, texts, answers, strict=True)
    )
    summary.done += 1
    return False
