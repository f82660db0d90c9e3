"""The Ray actor behind `--executor ray` (`WorkerHost`): one long-lived worker process of a stage.

It builds the stage's model once (`build()`, then `work.make(model, root)`) and runs the tasks the
driver sends it, returning each task's result and the files it wrote; it never opens the store. Whether
it writes into the run folder: it does when it sees the probe file the driver left there (a shared file
system); otherwise it works in a scratch folder of its own, emptied after each task: a task's video
arrives as bytes (`with_video_bytes`) and is written under `scratch/in`, and what the worker writes under
`scratch/out` goes back to the driver as {path relative to the run folder: bytes}.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mibench.errors import MibenchError
from mibench.stages.executor import Result, Task, Work


def with_video_bytes(task: Task) -> Task:
    """The task with its video's bytes, for a worker that cannot read the run folder."""
    return {**task, "video_bytes": Path(task["video"]).read_bytes()}


class WorkerHost:
    """One actor: the stage's worker (built once) and where its files go; see the module docstring."""

    def __init__(self, work: Work, build: Callable[[], Any] | None, probe: str | None):
        self.shared = probe is not None and (Path(work.run_dir) / probe).is_file()
        self.scratch = None if self.shared else Path(tempfile.gettempdir()) / f"mibench-ray-{uuid.uuid4().hex}"
        self.error: MibenchError | None = None
        self.check: str | None = None
        try:
            model = build() if build is not None else None
            self.run = work.make(model, Path(work.run_dir) if self.scratch is None else self.scratch / "out")
            self.check = work.check(model) if work.check else None
        except MibenchError as exc:  # a user error (missing weights): the driver stops with it
            self.error = exc

    def ready(self) -> dict:
        """Called once the model is built: its error, or its fingerprint and whether it sees the run folder."""
        if self.error is not None:
            return {"error": self.error}
        return {"shared": self.shared, "check": self.check, "host": socket.gethostname()}

    def run_task(self, task: Task) -> tuple[Result, dict[str, bytes]]:
        if self.scratch is None:
            return self.run(task), {}
        if "video_bytes" in task:
            video = self.scratch / "in" / Path(task["video"]).name
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes(task.pop("video_bytes"))
            task = {**task, "video": str(video)}
        try:
            result = self.run(task)
            out = self.scratch / "out"
            files = {} if "error" in result else {path.relative_to(out).as_posix(): path.read_bytes()
                                                  for path in sorted(out.rglob("*")) if path.is_file()}
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)  # made again by the next task's writes
        return result, files
