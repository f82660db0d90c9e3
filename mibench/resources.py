"""Locates the data folders shipped with mibench: prompts/, baselines/ and reports/.

A wheel carries copies under `mibench/_data/` (see setup.py), looked up first; in a source
checkout (and an editable install) they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder `name` (prompts, baselines or reports), wherever this install keeps it."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mibench data folder {name!r} is missing from this install")
