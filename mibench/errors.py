"""User-facing errors: every one carries a one-line cause and, where known, what to do about it.

The CLI prints `error: <cause> (<fix>)` and exits with code 2, without a traceback.
"""

from __future__ import annotations


class MibenchError(Exception):
    """Base class of errors caused by the user's input or environment, not by a bug."""

    def __init__(self, cause: str, fix: str | None = None):
        self.cause = cause
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.cause} ({self.fix})" if self.fix else self.cause


class MediaError(MibenchError):
    """A media file is missing, corrupt, silent or has no audio track."""


class WeightsError(MibenchError):
    """Model weights are missing, incomplete or do not match the model."""


class ConfigError(MibenchError):
    """An unknown name, a bad option value or a malformed data file."""


class StoreError(MibenchError):
    """The results store cannot be opened or is of an unknown schema."""
