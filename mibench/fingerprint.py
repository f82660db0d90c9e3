"""What identifies a result: a digest of everything that can change it, and the identity of weights.

- `digest(data)`: the first 16 hex digits of the SHA-256 of `data` as canonical JSON (sorted keys).
  A video's fingerprint digests its generator's resolved settings (card, preset, steps, guidance,
  dtype, frames, ...) and weights identity; an evaluation's digests the judge's settings, weights
  identity, mode, decoding and the exact question texts; a metric's digests the stage's options.
- `weights_identity(source)`: a local file or folder is named by its absolute path plus a content
  hash of its small files (configs, indices, tokenizers: under 1 MiB) and the size and first MiB of
  each larger file (the weights themselves, which are too big to hash on every run); a Hugging Face id
  by the repo and its revision (the commit hash), known before any weights are downloaded so that the
  first run's results carry the same identity as the later ones: the revision of its local snapshot
  when the cache holds one, else the hub's current revision (`HfApi().model_info(repo).sha`, the one a
  download then fetches), asked once per process with a `HUB_TIMEOUT_S` timeout and never when
  `HF_HUB_OFFLINE` is set. None only when neither answers (offline, no network, an unknown or private
  repo): such results name no revision.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

SMALL_FILE = 1 << 20
MAX_DEPTH = 2
HUB_TIMEOUT_S = 10.0
_HUB_ANSWERS: dict[str, str | None] = {}  # repo -> the hub's revision (None: it did not answer), once a process


def digest(data: object) -> str:
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_identity(path: Path) -> str:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(SMALL_FILE)
    kind = "sha256" if size <= SMALL_FILE else f"bytes={size};head-sha256"
    return f"{kind}:{hashlib.sha256(head).hexdigest()[:16]}"


def _folder_files(folder: Path, depth: int = 0) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            found[entry.name] = file_identity(entry)
        elif entry.is_dir() and depth < MAX_DEPTH:
            found.update({f"{entry.name}/{k}": v for k, v in _folder_files(entry, depth + 1).items()})
    return found


def _offline() -> bool:
    """HF_HUB_OFFLINE is set (read as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _hub_revision(repo: str) -> str | None:
    """The revision of `repo`'s local snapshot, else (online) the hub's current one, else None."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=["*.json"], local_files_only=True)).name
    except Exception:  # noqa: BLE001 - not downloaded (or not a hub id): ask the hub
        pass
    if _offline():
        return None
    if repo not in _HUB_ANSWERS:
        try:
            _HUB_ANSWERS[repo] = HfApi().model_info(repo, timeout=HUB_TIMEOUT_S).sha or None
        except Exception:  # noqa: BLE001 - no network, unknown or private repo: no revision to name
            _HUB_ANSWERS[repo] = None
    return _HUB_ANSWERS[repo]


def weights_identity(source: str | Path | None) -> dict | None:
    """The identity of a weights source (see the module docstring); None for no source."""
    if source is None:
        return None
    path = Path(str(source)).expanduser()
    if isinstance(source, Path) or str(source).startswith((".", "/", "~")) or path.exists():
        if path.is_file():
            return {"path": str(path.resolve()), "file": file_identity(path)}
        if path.is_dir():
            return {"path": str(path.resolve()), "files": _folder_files(path)}
        return {"path": str(path.resolve()), "missing": True}
    return {"hub": str(source), "revision": _hub_revision(str(source))}
