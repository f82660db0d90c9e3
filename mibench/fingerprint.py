"""What identifies a result: a digest of everything that can change it, and the identity of weights.

- `digest(data)`: the first 16 hex digits of the SHA-256 of `data` as canonical JSON (sorted keys).
  A video's fingerprint digests its generator's resolved settings (card, preset, steps, guidance,
  dtype, frames, ...) and weights identity; an evaluation's digests the judge's settings, weights
  identity, mode, decoding and the exact question texts; a metric's digests the stage's options.
- `weights_identity(source)`: a local file or folder is named by its absolute path plus a content
  hash of its small files (configs, indices, tokenizers: under 1 MiB) and the size and first MiB of
  each larger file (the weights themselves, which are too big to hash on every run); a Hugging Face id
  by the repo and the revision of its local snapshot (None when it is not downloaded yet).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SMALL_FILE = 1 << 20
MAX_DEPTH = 2


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


def _hub_revision(repo: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=["*.json"], local_files_only=True)).name
    except Exception:  # noqa: BLE001 - not downloaded (or not a hub id): no revision to name
        return None


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
