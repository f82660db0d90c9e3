"""`mibench doctor`: library versions, compute devices, which model weights are found locally and
whether the pose path of the metrics can run."""

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


def diagnose() -> dict[str, dict[str, str]]:
    from mibench.metrics.pose import estimator_status

    return {"versions": versions(), "devices": devices(), "weights": weights_status(),
            "metrics": {"pose estimator": estimator_status()}}
