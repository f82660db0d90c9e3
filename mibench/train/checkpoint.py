"""Resumable training checkpoints: everything needed to continue a run bit-exactly.

    out/checkpoints/step-<k>/        after k optimizer steps
        trainable.safetensors        the trainable parameters by name (float32)
        optimizer.pt, scheduler.pt   `state_dict()`s of the optimizer and the LR scheduler
        rng.pt                       the clip order's state, and per process the python, numpy, torch CPU
                                     and (if any) CUDA RNG states
        state.json                   {"step", "num_processes", "manifest" (sha256), "recipe"}: written last

A checkpoint is written into `step-<k>.partial/` and renamed when complete, so a killed run leaves either
a whole checkpoint or none; the newest `keep` complete ones are kept (0: all). `.pt` files load with
`weights_only=True`.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mibench.errors import ConfigError

_STEP = re.compile(r"step-(\d+)")


def checkpoints(out: Path) -> dict[int, Path]:
    """The complete checkpoints under `out`, by step."""
    folder = Path(out) / "checkpoints"
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _STEP.fullmatch(path.name)
            if match and (path / "state.json").is_file():
                found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def rng_state() -> dict:
    """This process's global RNG states (python, numpy, torch CPU, CUDA if available)."""
    _, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                       "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["key"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out: Path, step: int, *, trainable: dict[str, torch.Tensor], optimizer: dict, scheduler: dict,
                    rng: dict, state: dict, keep: int) -> Path:
    """Write checkpoint `step` atomically and prune old ones; returns its folder."""
    final = Path(out) / "checkpoints" / f"step-{step}"
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in trainable.items()},
              str(partial / "trainable.safetensors"))
    torch.save(optimizer, partial / "optimizer.pt")
    torch.save(scheduler, partial / "scheduler.pt")
    torch.save(rng, partial / "rng.pt")
    (partial / "state.json").write_text(json.dumps({"step": step, **state}, indent=1) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    if keep:
        for old in list(checkpoints(out).values())[:-keep]:
            shutil.rmtree(old)
    return final


def load_checkpoint(folder: Path) -> dict:
    """All parts of a checkpoint folder: trainable, optimizer, scheduler, rng, state."""
    folder = Path(folder)
    try:
        return {"trainable": load_file(str(folder / "trainable.safetensors")),
                "optimizer": torch.load(folder / "optimizer.pt", weights_only=True),
                "scheduler": torch.load(folder / "scheduler.pt", weights_only=True),
                "rng": torch.load(folder / "rng.pt", weights_only=True),
                "state": json.loads((folder / "state.json").read_text())}
    except (OSError, RuntimeError, ValueError) as err:
        raise ConfigError(f"checkpoint {folder} is unreadable ({err.__class__.__name__}: {err})",
                          "delete that checkpoint folder to resume from an older one") from err


def load_trainable(params: dict[str, torch.nn.Parameter], tensors: dict[str, torch.Tensor], what: str) -> None:
    """Copy checkpointed trainable weights into the model's, strictly by name and shape."""
    if params.keys() != tensors.keys() or any(p.shape != tensors[k].shape for k, p in params.items()):
        raise ConfigError(f"{what} holds other trainable weights than this model",
                          "resume with the recipe and base model the run started with")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name])
