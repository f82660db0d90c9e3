"""Strict loading of MM-Diffusion checkpoints (`AIST++.pt`, `AIST++_SR.pt` or safetensors copies).

A checkpoint is a flat {name: tensor} state dict in the official key layout. `.safetensors` files are
read with safetensors; anything else with `torch.load(weights_only=True)` (tensors may be views into
shared storages, as the reference trainer's fp16 master-param checkpoints are). Every checkpoint tensor
must be consumed and every parameter filled with a tensor of its shape, else `WeightsError` names the
missing, unexpected and mis-shaped keys. Values are cast to the parameters' dtype (float32); a lower
`dtype` then applies to the convolutions only, like the reference's `convert_to_fp16` (norms, linear
layers and the timestep embedding stay float32).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from mibench.errors import WeightsError

from .config import MMDConfig, SRConfig
from .sr_unet import SuperResUNet
from .unet import MultimodalUNet

FIX = "pass the official AIST++.pt / AIST++_SR.pt from researchmm/MM-Diffusion (or a safetensors copy)"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The {name: tensor} dict stored in `path` (.safetensors, or a torch.save pickle of tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist", FIX)
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable or unsafe file ends up here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read checkpoint {path}: {reason}", FIX) from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"checkpoint {path} is not a flat state dict of tensors", FIX)
    return dict(state)


def _listing(kind: str, names: list[str], limit: int = 5) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{len(names)} {kind}: {', '.join(names[:limit])}{more}"


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Copy `state` into `module`'s parameters and buffers, requiring an exact key and shape match."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        _listing(kind, names)
        for kind, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped))
        if names
    ]
    if problems:
        raise WeightsError(f"{source} does not match {type(module).__name__}: " + "; ".join(problems), FIX)
    with torch.no_grad():
        for name, target in expected.items():
            target.copy_(state[name])


def cast_convs_(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast the conv weights of `model` to `dtype` (e.g. torch.float16 on a GPU); everything else stays."""
    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            module.to(dtype)
    return model


def _loaded(model: nn.Module, path: str | Path, device: str | torch.device, dtype: torch.dtype) -> nn.Module:
    load_strict(model, read_state_dict(path), source=f"checkpoint {path}")
    return cast_convs_(model.to(device), dtype).eval().requires_grad_(False)


def load_mmd(
    path: str | Path, config: MMDConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> MultimodalUNet:
    """The coupled U-Net of `config` with the weights in `path`, in eval mode, without gradients."""
    return _loaded(MultimodalUNet(config), path, device, dtype)


def load_sr(
    path: str | Path, config: SRConfig, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> SuperResUNet:
    """The upsampler of `config` with the weights in `path`, in eval mode, without gradients."""
    return _loaded(SuperResUNet(config), path, device, dtype)
