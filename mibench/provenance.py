"""What produced a run's results: library versions and the options of each stage, kept in the store's
`sessions` table so reports can say how every number was obtained."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

from mibench import __version__
from mibench.media.video import x264_simd
from mibench.store import Store

PACKAGES = ("torch", "transformers", "diffusers", "peft", "av", "decord", "librosa", "numpy", "pandas")


def versions() -> dict[str, str]:
    found = {"mibench": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["x264 simd"] = x264_simd()  # the encoder's bytes depend on it
    return found


@contextmanager
def session(store: Store, stage: str, options: dict) -> Iterator[int]:
    """Record a stage in the store; its end time is written only when it finishes."""
    session_id = store.begin_session(stage, options, versions())
    yield session_id
    store.end_session(session_id)
