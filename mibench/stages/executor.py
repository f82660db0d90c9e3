"""Executors: where the work of a stage's jobs runs, behind one interface.

A stage (generate, score, metrics) plans its jobs and records every result itself, in the process that
runs the command: it alone writes the store. An executor only runs the jobs' work:

- `LocalExecutor` (default, `--executor local`): in this process, one job after the other, each pulled
  from the stage as the one before is recorded (the path mibench always had);
- `RayExecutor` (`--executor ray`, `mibench.stages.ray_executor`): long-lived Ray actors, one per GPU
  (or CPU), each building the model once and running the jobs the driver hands it.

The interface: `with executor.workers(work, jobs=n) as run:` makes the workers ready (none when `n` is
0; a model that cannot be loaded stops here, before any job); `run(tasks)` pulls the stage's tasks (dicts)
lazily and yields one `Outcome` per task as each finishes (in task order locally, as they come on Ray).
A worker is `work.make(model, root)`: a function of one task that writes its files under `root` (the
run folder, or a scratch folder whose files the driver receives) and returns a result dict, with an
`error` key when the job itself failed (a corrupt video): such a job is recorded as failed, never retried.
A task naming a `video` gets that file's bytes when its Ray worker cannot see the run folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mibench.errors import ConfigError

EXECUTORS = ("local", "ray")
Task = dict
Result = dict


@dataclass(frozen=True)
class Work:
    """What a stage hands an executor: `make(model, root)` -> the function of one task (top level, so Ray
    can ship it), the model built in this process (None: the stage has none), and `check(model)`: what a
    worker's own model must agree on with it (its settings fingerprint)."""

    label: str
    make: Callable[[Any, Path], Callable[[Task], Result]]
    run_dir: Path
    model: Any = None
    check: Callable[[Any], str] | None = None


@dataclass
class Outcome:
    """A task's result, and the errors of attempts lost with their worker (each retried)."""

    task: Task
    result: Result
    retries: list[str] = field(default_factory=list)


Runner = Callable[[Iterable[Task]], Iterator[Outcome]]


class Executor(Protocol):
    def workers(self, work: Work, *, jobs: int) -> AbstractContextManager[Runner]:
        """The workers of `work`, ready to run `jobs` tasks (none when 0)."""


class LocalExecutor:
    """Every task in this process, in order; the worker is made with the model built here."""

    @contextmanager
    def workers(self, work: Work, *, jobs: int) -> Iterator[Runner]:
        run = work.make(work.model, work.run_dir) if jobs else None
        yield lambda tasks: (Outcome(task, run(task)) for task in tasks)


def make_executor(kind: str, *, address: str | None = None, workers: int | None = None,
                  shared_fs: bool = True, max_retries: int | None = None, build: Callable[[], Any] | None = None,
                  log: Callable[[str], None] = lambda _: None, local_workers: bool = False) -> Executor:
    """The executor the command line asks for; `build` makes the stage's model again in a Ray worker.
    Ray's options with the local executor are refused (`--workers` too, unless `local_workers`)."""
    if kind not in EXECUTORS:
        raise ConfigError(f"unknown executor {kind!r}", f"choose one of: {', '.join(EXECUTORS)}")
    if kind == "local":
        given = [flag for flag, value in (("--ray-address", address), ("--no-shared-fs", not shared_fs),
                                          ("--max-retries", max_retries is not None),
                                          ("--workers", workers is not None and not local_workers)) if value]
        if given:
            raise ConfigError(f"{', '.join(given)}: options of the Ray executor, but the executor is local",
                              "add --executor ray or drop them")
        return LocalExecutor()
    try:
        from mibench.stages.ray_executor import RayExecutor
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray ({exc})", 'pip install "mibench[ray]"') from exc
    retries = {} if max_retries is None else {"max_retries": max_retries}
    return RayExecutor(address=address, workers=workers, shared_fs=shared_fs, build=build, log=log, **retries)
