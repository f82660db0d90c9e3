"""Resolves model weights named in a card: a local file or folder, or a Hugging Face repo id.

A Hugging Face id is looked up in the local cache first; if files are missing it is downloaded
through huggingface_hub unless HF_HUB_OFFLINE is set. When nothing can be found the error names the
missing files and where to get them.
"""

from __future__ import annotations

import os
from pathlib import Path

from mibench.errors import WeightsError


def _is_local(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).expanduser().exists()


def resolve(source: str | Path, files: list[str] | None = None, *, what: str,
            patterns: list[str] | None = None) -> Path:
    """The local path of `source` with `files` (relative paths) present; downloads what is missing
    unless offline. `patterns` restricts a hub download to matching files (default: `files`)."""
    source = str(source)
    files = files or []
    if _is_local(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise WeightsError(f"{what} folder {path} does not exist", "check the path")
        missing = [f for f in files if not (path / f).exists()] if path.is_dir() else []
        if missing:
            raise WeightsError(f"{what} folder {path} lacks {', '.join(missing)} (it holds: {listing(path)})",
                               "point the option at a folder in the official layout")
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = patterns or files or None
    try:
        return Path(snapshot_download(source, allow_patterns=patterns, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise WeightsError(
            f"{what} weights {source!r} are not in the local Hugging Face cache (offline): need "
            f"{', '.join(files) if files else 'the whole repo'}",
            f"run `huggingface-cli download {source}` on a machine with internet, or pass a local folder",
        )
    try:
        return Path(snapshot_download(source, allow_patterns=patterns))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise WeightsError(
            f"cannot download {what} weights {source!r}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
            f"run `huggingface-cli download {source}` where the hub is reachable, or pass a local folder",
        ) from exc


def listing(folder: Path, most: int = 6) -> str:
    """What a folder holds, for error messages: up to `most` names (folders with a slash), or "nothing"."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(folder).iterdir())
    if not names:
        return "nothing"
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def safetensors_handle(path: Path, what: str):
    """`safetensors.safe_open` of a file, or a WeightsError naming it when it is truncated or corrupt."""
    from safetensors import SafetensorError, safe_open

    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{what} {path} is not a readable safetensors file ({str(exc).splitlines()[0]})",
                           "the file is truncated or corrupt: download it again") from exc


def found_locally(source: str, files: list[str] | None = None) -> bool:
    """Whether `source` resolves without any download (for `mibench doctor`)."""
    if _is_local(source):
        path = Path(source).expanduser()
        return path.exists() and all((path / f).exists() for f in (files or []))
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(source, allow_patterns=files or None, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not found locally"
        return False
    return True
