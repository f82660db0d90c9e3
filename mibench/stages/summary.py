"""What every stage returns: items done, skipped (already done under the same settings) and failed (with
their one-line errors), and the exit code the CLI gives it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StageSummary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped,
                "failed": [{"job_id": j, "error": e} for j, e in self.failed]}
