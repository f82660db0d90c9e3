"""The generate stage: run a generator over jobs and record each video in the run's store.

Videos go to `<run>/videos/<model>/<job_id>.mp4` with a `<job_id>.json` sidecar (the job, the
generator's settings, weights identity, fingerprint and metadata, the music window included). A model
name stands for one set of settings (its fingerprint, `mibench.fingerprint`): generating under a name
the run already holds with other settings stops before any work and names the differences; a variant
gets its own name (`generate --as NAME`). A job whose video is recorded as done under the same
fingerprint and still on disk is skipped, so re-running resumes, unless it was made from music with
other bytes under the same name (the sidecar's `music_file` identity), which stops the command; a
recorded video replaced by one with other bytes loses its judge answers and metric values
(`Store.record_video`, logged). A failed job is recorded with its error and the others go on. Each
job is claimed in the store while it is made (`Store.claim`), so two processes generating into one run
share the jobs instead of both doing every one.

The videos are made by `VideoMaker` workers, in this process or on Ray workers (`executor`, see
`mibench.stages.executor`); this process alone records them in the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mibench.errors import ConfigError, MibenchError
from mibench.fingerprint import file_identity
from mibench.generators.base import Generator
from mibench.media.audio import atomic_output
from mibench.stages.executor import Executor, LocalExecutor, Outcome, Work
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


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key: old -> new' for every leaf that differs between two settings dicts."""
    found = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}")
    return found


def claim_model_name(store: Store, model: str, generator: Generator, *, check_only: bool = False) -> None:
    """Bind `model` to the generator's settings in this run, or stop when it stands for other settings;
    `check_only` refuses without binding (before the weights are loaded, so a failed load binds nothing)."""
    identity = generator.identity
    if check_only:
        held = store.model_settings(model)
        held = None if held is None or held["fingerprint"] == generator.fingerprint else held
    else:
        held = store.claim_model(model, generator.card.name, generator.fingerprint, identity)
    if held is not None:
        changed = differences(held["settings"], identity)
        shown = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise ConfigError(f"run {store.root} already has model {model!r} made with other settings ({shown})",
                          f"pass --as NAME to keep this variant beside it (e.g. --as {model}-variant), or use a "
                          "new --run")


def generate_jobs(run_dir: Path, store: Store, generator: Generator, jobs: list[Job], *,
                  executor: Executor | None = None, advance: Callable[[], None] = lambda: None,
                  log: Callable[[str], None] = lambda _: None) -> StageSummary:
    """Generate every job's video (all jobs share one model name) unless it is already done under the
    generator's fingerprint, in this process or through `executor`; see the module docstring."""
    models = {job.model for job in jobs}
    if len(models) > 1:
        raise ConfigError(f"jobs of several models in one generate call: {sorted(models)}")
    summary = StageSummary()
    if not jobs:
        return summary
    model = jobs[0].model
    claim_model_name(store, model, generator, check_only=True)
    fingerprint = generator.fingerprint
    todo = {job.job_id for job in jobs if not _done(store, job, fingerprint)}
    work = Work(f"generate {model}", VideoMaker, Path(run_dir), generator, generator_fingerprint)
    held: set[str] = set()  # claims of the jobs handed to the workers and not yet recorded
    with (executor or LocalExecutor()).workers(work, jobs=len(todo)) as run:
        if todo:
            claim_model_name(store, model, generator)
        store.add_jobs(jobs)
        try:
            for outcome in run(_tasks(store, jobs, todo, fingerprint, held, summary, advance)):
                job = outcome.task["job"]
                _record(run_dir, store, job, fingerprint, outcome, summary, log)
                store.release(f"generate:{job.job_id}")
                held.discard(f"generate:{job.job_id}")
                advance()
        finally:
            for key in held:
                store.release(key)
    return summary


def _done(store: Store, job: Job, fingerprint: str) -> bool:
    video = store.video(job.job_id)
    if video is None or video["status"] != "done" or video["fingerprint"] != fingerprint \
            or not Path(video["path"]).is_file():
        return False
    _check_same_music(job, json.loads(video["info"]).get("music_file"))
    return True


def _check_same_music(job: Job, made_from: str | None) -> None:
    """Stop when a job's video was made from music with other bytes than this command's file of that name
    (its job id names the music, not its bytes); videos recorded without the music's identity pass."""
    if made_from and job.music_path and Path(job.music_path).is_file() \
            and file_identity(Path(job.music_path)) != made_from:
        raise ConfigError(f"job {job.job_id} was made from other music named {job.music_id!r} ({job.music_path} "
                          "has other bytes)", "give the music the run was made with, or use a new --run")


def _tasks(store: Store, jobs: list[Job], todo: set[str], fingerprint: str, held: set[str], summary: StageSummary,
           advance: Callable[[], None]) -> Iterator[dict]:
    """The jobs to make, each claimed as it is handed out; those done (or another process's) are counted."""
    for job in jobs:
        key = f"generate:{job.job_id}"
        if job.job_id not in todo:
            summary.skipped += 1
        elif not store.claim(key):
            summary.elsewhere += 1
        elif _done(store, job, fingerprint):  # another process finished it meanwhile
            store.release(key)
            summary.skipped += 1
        else:
            held.add(key)
            yield {"job": job}
            continue
        advance()


def _record(run_dir: Path, store: Store, job: Job, fingerprint: str, outcome: Outcome, summary: StageSummary,
            log: Callable[[str], None]) -> None:
    summary.retried += [(job.job_id, error) for error in outcome.retries]
    result = outcome.result
    if "error" in result:
        store.record_video(job.job_id, None, fingerprint=fingerprint, status="failed", error=result["error"])
        summary.failed.append((job.job_id, result["error"]))
        return
    for warning in result["info"].get("warnings", []):
        log(f"warning {job.job_id}: {warning}")
    dropped = store.record_video(job.job_id, video_path(run_dir, job), fingerprint=fingerprint,
                                 seconds=result["seconds"], info=result["info"])
    if dropped:
        log(f"{job.job_id}: the new video has other bytes than the one it replaces: its {dropped} judge answers "
            "and metric values were deleted")
    summary.done += 1


def generator_fingerprint(generator: Generator) -> str:
    return generator.fingerprint


class VideoMaker:
    """A worker of the generate stage: prepares the generator (loads its weights) once, then writes each
    job's mp4 and sidecar under `root`; returns the sidecar's metadata and the seconds taken, or the
    job's error."""

    def __init__(self, generator: Generator, root: Path):
        generator.prepare()
        self.generator, self.root = generator, root

    def __call__(self, task: dict) -> dict:
        job, generator = task["job"], self.generator
        out = video_path(self.root, job)
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out)
        start = time.perf_counter()
        try:
            info = generator.generate(job, out)
        except MibenchError as exc:
            return {"error": exc.line()}
        seconds = time.perf_counter() - start
        info = {**info, "generator": generator.card.name, "preset": generator.preset,
                "settings": generator.settings, "device": generator.device,
                "music_file": file_identity(Path(job.music_path)) if job.music_path else None}
        write_sidecar(out.with_suffix(".json"), {"job": job.to_dict(), "seconds": seconds,
                                                 "fingerprint": generator.fingerprint,
                                                 "identity": generator.identity, **info})
        return {"info": info, "seconds": seconds}
