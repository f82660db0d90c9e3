"""The generate stage: run a generator over jobs and record each video in the run's store.

Videos go to `<run>/videos/<model>/<job_id>.mp4` with a `<job_id>.json` sidecar (the job, the
generator's settings and metadata). A job whose video is recorded as done and still on disk is
skipped, so re-running resumes; a failed job is recorded with its error and the others go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape

from mibench.errors import MibenchError
from mibench.generators.base import Generator
from mibench.media.audio import atomic_output
from mibench.stages.summary import StageSummary
from mibench.store import Store
from mibench.suite.jobs import Job


def video_path(run_dir: Path, job: Job) -> Path:
    return Path(run_dir) / "videos" / job.model / f"{job.job_id}.mp4"


def write_sidecar(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def remove_stale_temps(out: Path) -> None:
    """Temp files a killed run left for this job's outputs (see media.audio.atomic_output)."""
    for name in (out.name, out.with_suffix(".json").name):
        for stale in out.parent.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def generate_jobs(run_dir: Path, store: Store, generator: Generator, jobs: list[Job], *,
                  advance: Callable[[], None] = lambda: None,
                  log: Callable[[str], None] = lambda _: None) -> StageSummary:
    store.add_jobs(jobs)
    done = {v["job_id"]: v["path"] for v in store.videos(generator.name)}
    summary = StageSummary()
    todo = {job.job_id for job in jobs if not (job.job_id in done and Path(done[job.job_id]).is_file())}
    if todo:
        generator.prepare()
    for job in jobs:
        if job.job_id not in todo:
            summary.skipped += 1
            advance()
            continue
        out = video_path(run_dir, job)
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        start = time.perf_counter()
        try:
            info = generator.generate(job, out)
        except MibenchError as exc:
            store.record_video(job.job_id, None, status="failed", error=exc.line())
            summary.failed.append((job.job_id, exc.line()))
            log(f"[red]failed[/red] {job.job_id}: {escape(exc.line())}")
            advance()
            continue
        seconds = time.perf_counter() - start
        info = {**info, "preset": generator.preset, "settings": generator.settings}
        write_sidecar(out.with_suffix(".json"), {"job": job.to_dict(), "seconds": seconds, **info})
        store.record_video(job.job_id, out, seconds=seconds, info=info)
        summary.done += 1
        advance()
    return summary
