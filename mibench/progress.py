"""Progress of long stages on stderr (stdout stays machine-readable).

On a terminal: a rich progress bar. Elsewhere (a batch job's log, a pipe): plain lines, at most one every
`PLAIN_INTERVAL_S` seconds and one at the end, `label: done/total (percent), rate, ETA`, so a
scheduler's log shows progress instead of a blank line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
