"""The recipe's optimizers: torch AdamW, bitsandbytes' 8-bit AdamW, and AdamW with its state on the CPU.

`adamw-cpu-offload` (`CpuOffloadAdamW`) keeps float32 master copies of the trainable weights and both Adam
moments in CPU memory and runs the AdamW step there; after each step the updated weights are copied back
to the model. What it changes: the GPU no longer holds the moments (8 bytes per trainable parameter, about
5.8 GB for the paper's 0.72B-parameter adapter); steps are slower (gradients go to the host, the update
runs on CPU cores, the weights come back); CPU memory grows by 16 bytes per trainable parameter (master,
moments, gradient copy). The update is torch's AdamW itself: on the CPU it equals `adamw`; on a GPU it
differs from it by float rounding only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from mibench.errors import ConfigError

from .recipe import Recipe


class CpuOffloadAdamW(torch.optim.AdamW):
    """AdamW over CPU float32 master copies of `params`; `step` copies gradients in and weights back."""

    def __init__(self, params: Iterable[torch.nn.Parameter], **kwargs):
        self.device_params = list(params)
        masters = [p.detach().to("cpu", torch.float32, copy=True) for p in self.device_params]
        super().__init__(masters, **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ConfigError("adamw-cpu-offload takes no closure", "call step() without one")
        masters = self.param_groups[0]["params"]
        for param, master in zip(self.device_params, masters, strict=True):
            master.grad = None if param.grad is None else param.grad.detach().to("cpu", torch.float32)
        super().step()
        for param, master in zip(self.device_params, masters, strict=True):
            param.copy_(master)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for param in self.device_params:
            param.grad = None


def make_optimizer(params: list[torch.nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over `params` (one parameter group)."""
    kwargs = dict(lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, **kwargs)
    if recipe.optimizer == "adamw-cpu-offload":
        return CpuOffloadAdamW(params, **kwargs)
    try:
        import bitsandbytes
    except ImportError:
        raise ConfigError("optimizer adamw8bit needs bitsandbytes, which is not installed",
                          "pip install bitsandbytes (CUDA), or use optimizer: adamw") from None
    return bitsandbytes.optim.AdamW8bit(params, **kwargs)
