"""Peak memory readings for the speed benchmarks.

On CPU: the process's peak resident set size (`ru_maxrss`, which never decreases); on a GPU:
`torch.cuda.max_memory_allocated`, reset before each measurement.
"""

from __future__ import annotations

import resource

import torch


def peak_memory_mib(device: str = "cpu") -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_kind(device: str = "cpu") -> str:
    return "cuda max allocated" if device.startswith("cuda") else "process peak RSS"


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
