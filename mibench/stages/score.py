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
A video whose file changed after it was recorded is failed, not scored (`Store.changed_videos`).

A video's runs are answered by a `Scorer` worker (one task per video), in this process or on Ray workers
(`executor`, see `mibench.stages.executor`); this process alone records the answers, run by run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

from mibench.errors import MediaError
from mibench.fingerprint import digest
from mibench.judges.base import Judge, JudgeAnswer
from mibench.judges.parse import parse_score
from mibench.stages.executor import Executor, LocalExecutor, Outcome, Work
from mibench.stages.summary import StageSummary
from mibench.store import CHANGED_VIDEO, Store
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


def judge_fingerprint(judge: Judge) -> str:
    return digest(judge.identity())


def score_videos(store: Store, judge: Judge, questions: QuestionSet, *, models: list[str] | None = None,
                 mode: str = "greedy", runs: int = 1, seed: int = 0, limit: int | None = None,
                 executor: Executor | None = None, advance: Callable[[], None] = lambda: None,
                 log: Callable[[str], None] = lambda _: None) -> StageSummary:
    """Score every finished video (of `models`, the first `limit`) `runs` times, in this process or through
    `executor`; `summary.results` holds every stored answer of this evaluation for the chosen videos."""
    videos = [v for m in (models or store.models()) for v in store.videos(m)][:limit]
    changed = store.changed_videos(videos)
    videos = [v for v in videos if v["job_id"] not in changed]
    settings = evaluation_settings(judge, questions, mode=mode, seed=seed)
    evaluation = digest(settings)
    store.add_evaluation(evaluation, judge.name, mode, settings)
    options = {"modal": judge.modal, "max_new_tokens": judge.max_new_tokens, "runs": runs, "seed": seed,
               "preset": judge.preset, "question_set": questions.name}
    summary = StageSummary(failed=[(job_id, CHANGED_VIDEO) for job_id in sorted(changed)])
    plan = _Plan(store, questions, evaluation, runs, seed, summary)
    todo = sum(any(plan.unanswered(video, run_index) for run_index in range(runs)) for video in videos)
    work = Work(f"score with {judge.name}", Scorer, store.root, judge, judge_fingerprint)
    with (executor or LocalExecutor()).workers(work, jobs=todo) as run:
        try:
            for outcome in run(plan.tasks(videos, mode, advance)):
                plan.record(outcome, judge.name, mode, options)
                advance()
        finally:
            plan.release_all()
    chosen = {v["job_id"]: v["model"] for v in videos}
    summary.results = [
        {"job_id": a["job_id"], "model": chosen[a["job_id"]], "evaluation": evaluation, "judge": a["judge"],
         "mode": a["mode"], "question_id": a["question_id"], "run_index": a["run_index"], "score": a["score"],
         "valid_mass": a["valid_mass"], "raw": a["raw"]}
        for a in store.answers(evaluation) if a["job_id"] in chosen
    ]
    return summary


class _Plan:
    """The driver's side of the score stage: which runs of a video still need answers (each claimed as it
    is handed out, so several processes share the work) and the recording of the answers."""

    def __init__(self, store: Store, questions: QuestionSet, evaluation: str, runs: int, seed: int,
                 summary: StageSummary):
        self.store, self.questions, self.evaluation = store, questions, evaluation
        self.runs, self.seed, self.summary = runs, seed, summary
        self.held: dict[str, list[str]] = {}  # job id -> claim keys of its runs handed out, not yet recorded

    def unanswered(self, video: dict, run_index: int) -> list:
        answered = self.store.answered(video["job_id"], self.evaluation, run_index)
        return [q for q in self.questions.for_prompt(video["prompt"]) if q.id not in answered]

    def tasks(self, videos: list[dict], mode: str, advance: Callable[[], None]) -> Iterator[dict]:
        """One task per video with runs to answer: each run's jitter seed and unanswered questions."""
        for video in videos:
            todo = []
            for run_index in range(self.runs):
                key = f"score:{self.evaluation}:{video['job_id']}:{run_index}"
                if not self.unanswered(video, run_index):
                    self.summary.skipped += 1
                elif not self.store.claim(key):
                    self.summary.elsewhere += 1
                elif not (questions := self.unanswered(video, run_index)):  # another process finished it
                    self.store.release(key)
                    self.summary.skipped += 1
                else:
                    self.held.setdefault(video["job_id"], []).append(key)
                    jitter = jitter_seed(self.seed, video["item_id"], run_index)
                    todo.append({"run_index": run_index, "jitter_seed": jitter,
                                 "question_ids": [q.id for q in questions],
                                 "questions": [q.render(video["prompt"]) for q in questions]})
            if todo:
                yield {"job_id": video["job_id"], "video": video["path"], "mode": mode, "runs": todo}
            else:
                advance()

    def record(self, outcome: Outcome, judge: str, mode: str, options: dict) -> None:
        """Store the answers of each run the worker finished; a video that could not be read (or whose
        workers kept dying) is failed."""
        task, result = outcome.task, outcome.result
        self.summary.retried += [(task["job_id"], error) for error in outcome.retries]
        for run, answers in zip(task["runs"], result.get("answers", []), strict=False):
            self.store.record_answers(
                {"job_id": task["job_id"], "evaluation": self.evaluation, "judge": judge,
                 "question_set": options["question_set"], "question_id": question_id, "mode": mode,
                 "run_index": run["run_index"], "question": text, "raw": a.text,
                 "score": parse_score(a.text) if mode == "greedy" else a.expected_score,
                 "distribution": a.distribution, "valid_mass": a.valid_mass,
                 "options": {**options, "jitter_seed": run["jitter_seed"]}}
                for question_id, text, a in zip(run["question_ids"], run["questions"], answers, strict=True)
            )
            self.summary.done += 1
        if "error" in result:
            self.summary.failed.append((task["job_id"], result["error"]))
        for key in self.held.pop(task["job_id"], []):
            self.store.release(key)

    def release_all(self) -> None:
        for keys in self.held.values():
            for key in keys:
                self.store.release(key)


class Scorer:
    """A worker of the score stage: encodes each run of a video once (its jitter seed) and asks it every
    question of that run; stops at the first run whose video cannot be read (the job's `error`)."""

    def __init__(self, judge: Judge, root: Path):
        self.judge = judge

    def __call__(self, task: dict) -> dict:
        answers: list[list[JudgeAnswer]] = []
        for run in task["runs"]:
            try:
                encoded = self.judge.encode(Path(task["video"]), jitter_seed=run["jitter_seed"])
            except MediaError as exc:
                return {"answers": answers, "error": exc.line()}
            answers.append(self.judge.ask(encoded, run["questions"], mode=task["mode"]))
        return {"answers": answers}
