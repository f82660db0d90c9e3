"""The Ray executor (`--executor ray`): a stage's jobs on long-lived Ray actors (`ray_actors.WorkerHost`);
the driver, the process running the command, is the only store writer.

Cluster: `ray.init(address)` with `--ray-address`, else `RAY_ADDRESS`, else a new local cluster. Every
node needs the same mibench, and the music and weights at the same paths.

Actors reserve what the model's card asks one worker for (`resources`, see `mibench.cards`): its
`num_gpus` (default 1) when the model runs on CUDA, else its `num_cpus` (default 1), plus `memory_gb` of
host memory when given; metrics workers (no model) one CPU. `--workers N` of them, by default as many as
the cluster holds (its GPUs or CPUs over one worker's share; at most 2 for a model on the CPU), never
more than the jobs. Each builds the model once (`build`: `build_generator` / `build_judge` with the command's
settings); a model that cannot load, or a worker whose settings fingerprint differs from the driver's
(other weights on its node), stops the command. The driver keeps `IN_FLIGHT` calls per ready actor and
sends the next job as each result comes (`ray.wait`), so fast and slow actors stay busy.

Files: an actor that sees the run folder (a probe file the driver leaves there during the stage) works
in it; one that does not, or any with `--no-shared-fs`, gets each task's video as bytes and returns the
files it wrote, which the driver writes (atomically) into the run folder.

Faults: an actor whose process dies (RayActorError, e.g. ActorDiedError; WorkerCrashedError) is replaced
by a new one, which loads the model again. The job it was running goes back to the queue, for any actor,
at most `max_retries` times (default 2: three attempts), then is recorded as failed with the last error;
each lost attempt is in the summary (`retried`). Calls queued behind it had not started: their jobs go
back uncounted. An actor that dies before it is ready is not replaced; with none left the command stops.
A job that fails by itself (a corrupt video) is a result with an error: failed, never retried; any other
exception in a worker stops the command, as it would locally. A killed driver takes its actors with it;
running the command again resumes from the store, as a local run does."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

from mibench.errors import ConfigError, MibenchError
from mibench.media.audio import atomic_output
from mibench.progress import ClusterProgress
from mibench.stages.executor import Outcome, Runner, Task, Work
from mibench.stages.ray_actors import WorkerHost, with_video_bytes

IN_FLIGHT = 2  # calls queued per actor: the next job is there when one finishes
LOST = (RayActorError, WorkerCrashedError)  # the worker process died
NO_WORKER = "see the Ray logs (`ray logs`, or the files under /tmp/ray/session_latest/logs)"


@dataclass
class _Slot:
    """A place for one actor: the actor in it, its readiness call (None once ready), whether it sees the
    run folder and its calls in flight."""

    name: str
    actor: Any
    ready_ref: Any
    shared: bool = False
    busy: int = 0


@dataclass
class _Attempt:
    task: Task
    errors: list[str] = field(default_factory=list)  # one per attempt lost with its actor


@dataclass
class _Flight:
    """A call in flight: the slot and actor it went to, the job, and its order among the calls sent."""

    slot: _Slot
    actor: Any
    attempt: _Attempt
    order: int
    started: bool = True  # False: lost with its actor before it started


def _on_gpu(model: Any) -> bool:
    return str(getattr(model, "device", "cpu")).startswith("cuda")


def actor_options(model: Any) -> dict:
    """The Ray resources one worker of `model` reserves (its card's `resources`; one CPU without a model)."""
    wants = getattr(getattr(model, "card", None), "resources", {})
    options = {"num_gpus": wants.get("num_gpus", 1)} if _on_gpu(model) else {"num_cpus": wants.get("num_cpus", 1)}
    if "memory_gb" in wants:
        options["memory"] = int(wants["memory_gb"] * 2**30)
    return options


class RayExecutor:
    """The stages' jobs on Ray actors (see the module docstring); `build` makes the model in an actor."""

    def __init__(self, *, address: str | None = None, workers: int | None = None, shared_fs: bool = True,
                 build: Callable[[], Any] | None = None, max_retries: int = 2,
                 log: Callable[[str], None] = lambda _: None):
        self.address, self.count, self.shared_fs, self.build = address, workers, shared_fs, build
        self.max_retries, self.log = max_retries, log

    @contextmanager
    def workers(self, work: Work, *, jobs: int) -> Iterator[Runner]:
        if not jobs:
            yield lambda tasks: iter(())
            return
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False)
        probe = Path(work.run_dir) / f".mibench-probe-{uuid.uuid4().hex}"
        if self.shared_fs:
            probe.touch()
        pool = _Pool(self, work, min(self._size(work), jobs), probe.name if self.shared_fs else None, jobs)
        try:
            pool.start()
            yield pool.map
        finally:
            pool.stop()
            probe.unlink(missing_ok=True)

    def _size(self, work: Work) -> int:
        if self.count:
            return self.count
        resources, options = ray.cluster_resources(), actor_options(work.model)
        if not _on_gpu(work.model):
            fits = max(1, int(resources.get("CPU", 1) // options["num_cpus"]))
            return min(2, fits) if work.model is not None else fits
        fits = int(resources.get("GPU", 0) // options["num_gpus"])
        if not fits:
            raise ConfigError(f"the Ray cluster has {resources.get('GPU', 0):g} GPUs; one worker of this model needs "
                              f"{options['num_gpus']:g}", "pass --device cpu or add GPU nodes")
        return fits


class _Pool:
    """The actors of one stage and the scheduling of its tasks over them."""

    def __init__(self, executor: RayExecutor, work: Work, size: int, probe: str | None, total: int):
        self.executor, self.work, self.size, self.probe = executor, work, size, probe
        self.expected = work.check(work.model) if work.check else None
        self.shipped = dataclasses.replace(work, model=None)  # the driver's own model stays here
        self.actor_class = ray.remote(WorkerHost).options(**actor_options(work.model))
        self.slots: list[_Slot] = []
        self.running: dict[Any, _Flight] = {}  # object ref of a call -> where it went
        self.retry: deque[_Attempt] = deque()  # jobs to send again, before new ones
        self.sent = itertools.count()
        self.progress = ClusterProgress(executor.log, f"{work.label} on Ray", total)

    def _new_actor(self) -> Any:
        return self.actor_class.remote(self.shipped, self.executor.build, self.probe)

    def start(self) -> None:
        """Start the actors and wait for the first to be ready (a model that cannot load stops here)."""
        for index in range(self.size):
            actor = self._new_actor()
            self.slots.append(_Slot(f"w{index}", actor, actor.ready.remote()))
        self.executor.log(f"{self.work.label}: starting {self.size} Ray workers")
        while all(slot.ready_ref is not None for slot in self.slots):
            if not self.slots:
                raise MibenchError("no Ray worker could start", NO_WORKER)
            starting = {slot.ready_ref: slot for slot in self.slots}
            [ref], _ = ray.wait(list(starting), num_returns=1)
            self._ready(starting[ref])

    def stop(self) -> None:
        for slot in self.slots:
            ray.kill(slot.actor)
        self.progress.tick(0, force=True)

    def _ready(self, slot: _Slot) -> None:
        """A starting actor answered (or died) after building its model."""
        try:
            info = ray.get(slot.ready_ref)
        except LOST as exc:
            self.executor.log(f"{self.work.label}: Ray worker {slot.name} could not start: {_short(exc)}")
            self.slots.remove(slot)
            return
        if "error" in info:
            raise info["error"]
        if info["check"] != self.expected:
            raise ConfigError(f"Ray worker {slot.name} on {info['host']} has other settings or weights than this "
                              f"process (fingerprint {info['check']}, here {self.expected})",
                              "give every node the same weights and mibench")
        slot.ready_ref, slot.shared = None, info["shared"]
        self.progress.joined(slot.name)

    def map(self, tasks: Iterable[Task]) -> Iterator[Outcome]:
        """Each task's outcome as it comes; tasks are pulled as the actors have room for them."""
        source, more = iter(tasks), True
        while True:
            for slot in self.slots:
                while slot.ready_ref is None and slot.busy < IN_FLIGHT and (self.retry or more):
                    attempt = self.retry.popleft() if self.retry else _Attempt(next(source, None))
                    if attempt.task is None:
                        more = False
                        break
                    self._send(slot, attempt)
            starting = {slot.ready_ref: slot for slot in self.slots if slot.ready_ref is not None}
            if not self.running and not (self.retry or more):
                return
            if not self.running and not starting:
                raise MibenchError("no Ray worker is left to run the remaining jobs", NO_WORKER)
            done, _ = ray.wait([*self.running, *starting], num_returns=1, timeout=self.progress.interval)
            self.progress.tick(len(self.running))
            if done and done[0] in starting:
                self._ready(starting[done[0]])
            elif done and (outcome := self._outcome(done[0])) is not None:
                yield outcome

    def _send(self, slot: _Slot, attempt: _Attempt) -> None:
        task = attempt.task if slot.shared or "video" not in attempt.task else with_video_bytes(attempt.task)
        self.running[slot.actor.run_task.remote(task)] = _Flight(slot, slot.actor, attempt, next(self.sent))
        slot.busy += 1

    def _outcome(self, ref: Any) -> Outcome | None:
        """The outcome of a finished call, its files written into the run folder; None when the job went
        back to the queue (its actor died)."""
        flight = self.running.pop(ref)
        flight.slot.busy -= 1
        attempt = flight.attempt
        try:
            result, files = ray.get(ref)
        except RayTaskError as exc:  # the worker's code raised: stop, as it would locally
            if isinstance(exc.cause, MibenchError):
                raise exc.cause from None
            raise
        except LOST as exc:
            self._lost(flight, exc)
            if not flight.started:  # it waited behind the job that died with the actor
                self.retry.appendleft(attempt)
                return None
            attempt.errors.append(f"Ray worker {flight.slot.name} died: {_short(exc)}")
            self.progress.retried()
            if len(attempt.errors) <= self.executor.max_retries:
                self.retry.append(attempt)
                return None
            result, files = {"error": f"gave up after {len(attempt.errors)} attempts: {attempt.errors[-1]}"}, {}
        for relative, data in files.items():
            target = Path(self.work.run_dir) / relative
            for stale in target.parent.glob(f".{target.name}.*.tmp"):  # a killed driver's (atomic_output)
                stale.unlink(missing_ok=True)
            with atomic_output(target) as tmp:
                tmp.write_bytes(data)
        self.progress.finished(flight.slot.name, failed="error" in result)
        return Outcome(attempt.task, result, attempt.errors)

    def _lost(self, flight: _Flight, exc: Exception) -> None:
        """A call failed with its actor. The first time for an actor: mark which of its calls was running
        (an actor runs its calls one at a time in the order sent: the earliest lost one) and put a new actor
        in its slot."""
        slot = flight.slot
        if slot.actor is not flight.actor:
            return
        self.executor.log(f"{self.work.label}: Ray worker {slot.name} died ({_short(exc)}); starting a new one")
        ray.kill(slot.actor, no_restart=True)  # (were it only unreachable)
        others = [ref for ref, other in self.running.items() if other.actor is flight.actor]
        if others:
            ray.wait(others, num_returns=len(others))  # the actor is gone: each call is over
        lost = [flight] + [self.running[ref] for ref in others if _was_lost(ref)]
        for each in lost:
            each.started = each.order == min(other.order for other in lost)
        slot.actor = self._new_actor()
        slot.ready_ref = slot.actor.ready.remote()


def _was_lost(ref: Any) -> bool:
    try:
        ray.get(ref)
    except LOST:
        return True
    except Exception:  # noqa: BLE001 - any other error is raised when the call's turn comes
        return False
    return False


def _short(exc: Exception) -> str:
    """The first line of a Ray error (they carry whole tracebacks)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
