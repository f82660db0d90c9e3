"""`mibench doctor`: library versions, compute devices, which model weights are found locally, what this
machine's GPU can run of each judge (from the memory its model card states) and whether the pose path of the
metrics can run."""

from __future__ import annotations

from mibench.cards import cards
from mibench.provenance import versions
from mibench.weights import found_locally


def devices() -> dict[str, str]:
    import torch

    found = {"cpu": f"{torch.get_num_threads()} threads"}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found[f"cuda:{i}"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    else:
        found["cuda"] = "not available"
    return found


def weights_status() -> dict[str, str]:
    status = {}
    for card in cards():
        for part, spec in card.weights.items():
            ok = found_locally(spec["source"], spec.get("files"))
            where = spec.get("url") or spec["source"]
            status[f"{card.name}.{part}"] = "found" if ok else f"missing (get it from {where})"
    return status


def gpu_fit(memory_gb: dict, gib: float | None) -> str:
    """What a GPU with `gib` GiB runs of a model whose card states `memory_gb` (seconds of video -> GB)."""
    if not memory_gb:
        return "memory not stated by its model card"
    table = ", ".join(f"{s} s: {gb:g} GB" for s, gb in sorted(memory_gb.items()))
    if gib is None:
        return f"no GPU here (CPU float32: tiny preset and small checkpoints); needs {table}"
    fits = [s for s, gb in sorted(memory_gb.items()) if gb * 1e9 <= gib * 2**30]
    if not fits:
        return f"does not fit on the GPU alone ({table}); device_map offloads the rest to the CPU (slower)"
    return f"fits up to {max(fits)} s of video on the GPU ({table}); longer clips offload to the CPU"


def judges_status() -> dict[str, str]:
    """Per judge card: what this machine's largest GPU runs (from the memory its model card states)."""
    import torch

    gib = max((torch.cuda.get_device_properties(i).total_memory / 2**30 for i in range(torch.cuda.device_count())),
              default=None) if torch.cuda.is_available() else None
    return {card.name: gpu_fit(card.memory_gb, gib) for card in cards("judge")}


def diagnose() -> dict[str, dict[str, str]]:
    from mibench.metrics.pose import estimator_status

    return {"versions": versions(), "devices": devices(), "weights": weights_status(), "judges": judges_status(),
            "metrics": {"pose estimator": estimator_status()}}
