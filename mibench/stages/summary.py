"""What every stage returns: items done, skipped (already done under the same settings), claimed by
another process working on the same run, failed (with their one-line errors), retried (attempts lost
with a Ray worker that died, each run again: `mibench.stages.ray_executor`) and the numbers it stored,
and the exit code the CLI gives it.

Exit codes (`exit_code`): 0 every item done or already done; 1 some items failed (each is named in the
summary, the rest are done and kept). User errors (2) never reach a summary: they stop the command first.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StageSummary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    elsewhere: int = 0  # items another process had claimed (it is making them)
    retried: list[tuple[str, str]] = field(default_factory=list)  # (item, error) of each attempt lost and run again
    results: list[dict] = field(default_factory=list)  # the numbers stored by this call, for --json

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "claimed_elsewhere": self.elsewhere,
                "failed": [{"job_id": j, "error": e} for j, e in self.failed],
                "retried": [{"job_id": j, "error": e} for j, e in self.retried]}
