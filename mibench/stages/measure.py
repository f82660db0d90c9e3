"""The metrics stage over a run's store (`compute_run_metrics`): which videos still need metrics, their
computation in this process or in worker processes, and the recording of the results.

Each video's metrics come from the video and its own audio track; the job's BPM times its tempo
factor is the known tempo. With `workers` > 1, spawned processes compute whole videos
(`compute_video_metrics`) and the parent alone writes the store (one SQLite writer), as each result
arrives, so an interrupted stage keeps what it finished. Each process keeps its own cache of tracked
music; videos are handed out in item order, as many at a time as there are models, so the videos of
an item (which carry the same music) mostly meet in one process and their music is tracked once.
With a Ray `executor` (`mibench.stages.executor`), `Measurer` actors on CPUs measure the videos instead
and the parent records them as they come.

Metrics are stored under the fingerprint of the stage options and of the metrics' code version
(`metrics_fingerprint`, `METRICS_VERSION`): a video is
measured again when its metrics under these options are incomplete, and values made under other
options stay beside them (the report reads, per metric, the options recorded last). Each video to
measure is claimed in the store (`metrics:<fingerprint>:<job>`) until its values are recorded, so a second
process on the same run leaves it alone (counted as measured elsewhere). A video whose file changed
after it was recorded is failed, not measured (`Store.changed_videos`).
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mibench.errors import ConfigError, MediaError
from mibench.fingerprint import digest
from mibench.metrics.bas import PUBLISHED
from mibench.metrics.compute import compute_video_metrics, metric_names
from mibench.metrics.family import MetricValue
from mibench.metrics.motion import WORK_HEIGHT
from mibench.metrics.pose import require_estimator
from mibench.stages.executor import Executor, Work
from mibench.stages.summary import StageSummary
from mibench.store import CHANGED_VIDEO, Store

Result = tuple[dict[str, MetricValue] | None, str | None]
_PROCESS_MUSIC: dict = {}  # a worker process's tracked music, kept across the videos it is given


def _measure(path: str, options: dict, music_cache: dict) -> Result:
    """(metrics, None) of one video, or (None, the error line) when it cannot be read."""
    try:
        return compute_video_metrics(Path(path), music_cache=music_cache, **options), None
    except MediaError as exc:
        return None, exc.line()


def _measure_in_worker(path: str, options: dict) -> Result:
    return _measure(path, options, _PROCESS_MUSIC)


def measure_afresh(path: str, options: dict) -> Result:
    return _measure(path, options, {})


def _results(tasks: list[tuple[str, dict]], workers: int, chunk: int) -> Iterator[Result]:
    """Each task's result, in task order."""
    if workers <= 1 or len(tasks) < 2:
        cache: dict = {}
        yield from (_measure(path, options, cache) for path, options in tasks)
        return
    context = multiprocessing.get_context("spawn")  # no inherited threads or half-initialised libraries
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        paths, options = zip(*tasks, strict=True)
        yield from pool.map(_measure_in_worker, paths, options, chunksize=chunk)


METRICS_VERSION = 2  # raised whenever a metric's computation changes: values made before are not reused
# 2: the pose path uses the body joints only, and its kinetic features are made at 60 fps


def metrics_fingerprint(options: dict) -> str:
    """The fingerprint of the stage options that shape the pixel and pose metrics (`pose` and `recipes`
    only add metrics, each named after its recipe, so they are not part of it) and of `METRICS_VERSION`."""
    return digest({"stage": "metrics", "version": METRICS_VERSION,
                   **{k: v for k, v in options.items() if k not in ("pose", "recipes")}})


def compute_run_metrics(store: Store, *, models: list[str] | None = None, limit: int | None = None,
                        method: str = "diff", height: int = WORK_HEIGHT,
                        recipes: Sequence[str] = PUBLISHED,
                        pose: bool = False, workers: int = 1, executor: Executor | None = None,
                        advance: Callable[[], None] = lambda: None,
                        log: Callable[[str], None] = lambda _: None) -> StageSummary:
    """Metrics of every finished video of the run (optionally of some models, the first `limit`) that
    does not have them all under these options yet (see the module docstring), in this process and
    `workers` processes, or through `executor`; unreadable videos are reported as failed.
    `summary.results` holds every chosen video's values under these options."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}", "pass --workers 1 or more")
    if pose:
        require_estimator()
    names = set(metric_names(recipes, pose=pose))
    chosen = models or store.models()
    rows = [row for model in chosen for row in store.videos(model)][:limit]
    changed = store.changed_videos(rows)
    rows = [row for row in rows if row["job_id"] not in changed]
    common = {"method": method, "height": height, "recipes": tuple(recipes), "pose": pose}
    fingerprint = metrics_fingerprint(common)
    summary = StageSummary(failed=[(job_id, CHANGED_VIDEO) for job_id in sorted(changed)])
    pending, held = [], {}  # held: job id -> the key of its claim
    try:
        for row in rows:
            key = f"metrics:{fingerprint}:{row['job_id']}"
            if names <= store.metric_names(row["job_id"], fingerprint):
                summary.skipped += 1
            elif not store.claim(key):
                summary.elsewhere += 1
            elif names <= store.metric_names(row["job_id"], fingerprint):  # another process finished it meanwhile
                store.release(key)
                summary.skipped += 1
            else:
                held[row["job_id"]] = key
                pending.append(row)
                continue
            advance()
        pending.sort(key=lambda row: row["item_id"])  # stable: models stay in order within an item
        tasks = [(row["path"], common | {"bpm": row["bpm"] * row["tempo"] if row["bpm"] else None})
                 for row in pending]
        if executor is None:
            in_order = _results(tasks, workers, max(1, len(chosen)))
            results = ((row["job_id"], result, []) for row, result in zip(pending, in_order, strict=True))
        else:
            results = _through(executor, store.root, pending, tasks)
        for job_id, (values, error), retries in results:
            summary.retried += [(job_id, lost) for lost in retries]
            if values is None:
                summary.failed.append((job_id, error))
            else:
                store.record_metrics(job_id, fingerprint, values)
                summary.done += 1
            store.release(held.pop(job_id))
            advance()
    finally:
        for key in held.values():
            store.release(key)
    summary.results = _stored(store, rows, names, fingerprint)
    return summary


def _through(executor: Executor, run_dir: Path, rows: list[dict],
             tasks: list[tuple[str, dict]]) -> Iterator[tuple[str, Result, list[str]]]:
    """(job id, result, errors of the attempts lost with their worker) of each video, as they come."""
    work = Work("metrics", Measurer, run_dir)
    with executor.workers(work, jobs=len(tasks)) as run:
        for outcome in run({"job_id": row["job_id"], "video": path, "options": options}
                           for row, (path, options) in zip(rows, tasks, strict=True)):
            result = outcome.result
            yield outcome.task["job_id"], (result.get("values"), result.get("error")), outcome.retries


class Measurer:
    """A worker of the metrics stage (on Ray): measures whole videos, keeping the music it tracked."""

    def __init__(self, model: None, root: Path):
        self.music_cache: dict = {}

    def __call__(self, task: dict) -> dict:
        values, error = _measure(task["video"], task["options"], self.music_cache)
        return {"values": values} if error is None else {"error": error}


def _stored(store: Store, rows: list[dict], names: set[str], fingerprint: str) -> list[dict]:
    """Each video's stored values under `fingerprint`: job, model, and name -> value, parameters, note."""
    chosen = {row["job_id"]: row for row in rows}
    found: dict[str, dict] = {}
    for m in store.metrics(latest=False):
        if m["job_id"] in chosen and m["fingerprint"] == fingerprint and m["name"] in names:
            found.setdefault(m["job_id"], {})[m["name"]] = {"value": m["value"], "params": json.loads(m["params"]),
                                                            "note": m["note"]}
    return [{"job_id": job_id, "model": chosen[job_id]["model"], "fingerprint": fingerprint, "metrics": values}
            for job_id, values in found.items()]
