"""Progress of long stages on stderr (stdout stays machine-readable).

On a terminal: a rich progress bar. Elsewhere (a batch job's log, a pipe): plain lines, at most one every
`PLAIN_INTERVAL_S` seconds and one at the end, `label: done/total (percent), rate, ETA`, so a
scheduler's log shows progress instead of a blank line.

A stage spread over workers (`--executor ray`) also logs the whole cluster's state in such lines
(`ClusterProgress`): jobs done, failed, running and retried, each worker's jobs per minute, and the ETA
at the workers' combined rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

PLAIN_INTERVAL_S = 30.0


@dataclass
class Bar:
    progress: Progress
    task: int

    def advance(self) -> None:
        self.progress.advance(self.task)


@dataclass
class PlainBar:
    """Periodic plain progress lines for a console that is not a terminal."""

    console: Console
    label: str
    total: int
    interval: float = PLAIN_INTERVAL_S
    done: int = 0
    start: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    def advance(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.interval or self.done == self.total:
            self.last = now
            self.console.print(self.line(now - self.start), markup=False, highlight=False, soft_wrap=True)

    def line(self, elapsed: float) -> str:
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {_clock((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else ""
        return f"{self.label}: {self.done}/{self.total}{share}, {rate * 60:.1f}/min, elapsed {_clock(elapsed)}{eta}"


@dataclass
class ClusterProgress:
    """Periodic lines on a stage's workers: `log` one at most every `interval` seconds, and at the end."""

    log: Callable[[str], None]
    label: str
    total: int
    interval: float = PLAIN_INTERVAL_S
    done: int = 0
    failed: int = 0
    lost: int = 0
    workers: dict[str, list[float]] = field(default_factory=dict)  # name -> [first ready, jobs finished]
    start: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)

    def joined(self, name: str) -> None:
        self.workers.setdefault(name, [time.monotonic(), 0])

    def finished(self, name: str, *, failed: bool) -> None:
        self.workers[name][1] += 1
        self.failed += failed
        self.done += not failed

    def retried(self) -> None:
        self.lost += 1

    def tick(self, running: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            self.log(self.line(running, now))

    def line(self, running: int, now: float) -> str:
        rates = {name: count / (now - since) * 60 if now > since else 0.0
                 for name, (since, count) in self.workers.items()}
        left = self.total - self.done - self.failed
        combined = sum(rates.values()) / 60
        eta = f", ETA {_clock(left / combined)}" if combined > 0 and left > 0 else ""
        each = ", ".join(f"{name} {rate:.1f}/min" for name, rate in rates.items()) or "none ready"
        return (f"{self.label}: {self.done}/{self.total} done, {self.failed} failed, {running} running, "
                f"{self.lost} retried; workers {each}; elapsed {_clock(now - self.start)}{eta}")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@contextmanager
def progress_bar(console: Console, label: str, total: int, *,
                 interval: float = PLAIN_INTERVAL_S) -> Iterator[Bar | PlainBar]:
    if not console.is_terminal:
        yield PlainBar(console, label, total, interval)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        yield Bar(progress, progress.add_task(label, total=total))
