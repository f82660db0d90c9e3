"""Strict checkpoint reading for the MusicInfuser port: safetensors files and key/shape checks.

Every loader of this package goes through here, so that a missing or truncated file, a tensor the
model lacks, a parameter the file lacks or a wrong shape stops loading with one `WeightsError` line
naming the problem (DESIGN: loading is strict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from mibench.errors import WeightsError


def read_safetensors(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors (on CPU, stored dtype) and the metadata of a safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} {path} does not exist", "check the path or download the weights")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(
            f"{what} {path} is not a readable safetensors file ({err})",
            "the file is truncated or corrupt: download it again",
        ) from err
    return tensors, metadata


def names(items: Iterable[str], limit: int = 6) -> str:
    """A short, sorted listing of names for an error line."""
    items = sorted(items)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_tensors(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise unless `got` has exactly the keys of `expected`, each of the expected shape."""
    missing = expected.keys() - got.keys()
    unexpected = got.keys() - expected.keys()
    wrong = [
        f"{key} {tuple(got[key].shape)} != {tuple(shape)}"
        for key, shape in expected.items()
        if key in got and tuple(got[key].shape) != tuple(shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors: {names(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors: {names(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {names(wrong, 3)}")
    if problems:
        raise WeightsError(f"{what} does not match the model: " + "; ".join(problems),
                           "use the weights made for this model and configuration")


def check_loading_info(info: Mapping, what: str, *, tolerated_missing: Iterable[str] = (),
                       tolerated_unexpected_prefixes: tuple[str, ...] = ()) -> None:
    """Raise on the missing/unexpected/mismatched keys that `from_pretrained(output_loading_info=True)` reports."""
    missing = set(info.get("missing_keys", ())) - set(tolerated_missing)
    unexpected = {k for k in info.get("unexpected_keys", ()) if not k.startswith(tolerated_unexpected_prefixes)}
    mismatched = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ())]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors: {names(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors: {names(unexpected)}")
    if mismatched:
        problems.append(f"wrong shapes: {names(mismatched)}")
    if problems:
        raise WeightsError(f"{what} does not match its config: " + "; ".join(problems),
                           "download the weights again or use a matching config")
