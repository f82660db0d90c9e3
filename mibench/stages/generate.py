"""The generate stage: run a generator over jobs and record each video in the run's store.

Videos go to `<run>/videos/<model>/<job_id>.mp4` with a `<job_id>.json` sidecar (the job, the
generator's settings, weights identity, fingerprint and metadata, the music window included). A model
name stands for one set of settings (its fingerprint, `mibench.fingerprint`): generating under a name
the run already holds with other settings stops before any work and names the differences; a variant
gets its own name (`generate --as NAME`). A job whose video is recorded as done under the same
fingerprint and still on disk is skipped, so re-running resumes; a failed job is recorded with its
error and the others go on. Each job is claimed in the store while it is made (`Store.claim`), so two
processes generating into one run share the jobs instead of both doing every one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from mibench.errors import ConfigError, MibenchError
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
                  advance: Callable[[], None] = lambda: None,
                  log: Callable[[str], None] = lambda _: None) -> StageSummary:
    """Generate every job's video (all jobs share one model name) unless it is already done under the
    generator's fingerprint; see the module docstring."""
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
    if todo:
        generator.prepare()
        claim_model_name(store, model, generator)
    store.add_jobs(jobs)
    for job in jobs:
        if job.job_id not in todo:
            summary.skipped += 1
        elif not store.claim(f"generate:{job.job_id}"):
            summary.elsewhere += 1
        else:
            try:
                _generate_one(run_dir, store, generator, job, fingerprint, summary, log)
            finally:
                store.release(f"generate:{job.job_id}")
        advance()
    return summary


def _done(store: Store, job: Job, fingerprint: str) -> bool:
    video = store.video(job.job_id)
    return video is not None and video["status"] == "done" and video["fingerprint"] == fingerprint \
        and Path(video["path"]).is_file()


def _generate_one(run_dir: Path, store: Store, generator: Generator, job: Job, fingerprint: str,
                  summary: StageSummary, log: Callable[[str], None]) -> None:
    """Generate one claimed job (unless another process finished it meanwhile) and record it."""
    if _done(store, job, fingerprint):
        summary.skipped += 1
        return
    out = video_path(run_dir, job)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    start = time.perf_counter()
    try:
        info = generator.generate(job, out)
    except MibenchError as exc:
        store.record_video(job.job_id, None, fingerprint=fingerprint, status="failed", error=exc.line())
        summary.failed.append((job.job_id, exc.line()))
        return
    seconds = time.perf_counter() - start
    info = {**info, "generator": generator.card.name, "preset": generator.preset, "settings": generator.settings,
            "device": generator.device}
    for warning in info.get("warnings", []):
        log(f"warning {job.job_id}: {warning}")
    write_sidecar(out.with_suffix(".json"), {"job": job.to_dict(), "seconds": seconds, "fingerprint": fingerprint,
                                             "identity": generator.identity, **info})
    store.record_video(job.job_id, out, fingerprint=fingerprint, seconds=seconds, info=info)
    summary.done += 1
