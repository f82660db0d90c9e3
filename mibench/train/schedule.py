"""The recipe's per-step schedules and draws: noise level, learning rate, caption choice, flow-matching pair.

- Noise level (official `train.py`): sigma ~ Beta(1, b(step)), b(step) = 1 + (b0 - 1) 2^(-step / half_life),
  drawn by inverting its CDF, sigma = 1 - u^(1 / b) with u ~ U[0, 1) from the given generator. sigma = 1 is
  pure noise; the DiT timestep is (1 - sigma) * 1000 (genmo feeds t = 1 - sigma, scaled by 1000).
- LR factor (official `get_cosine_annealing_lr_scheduler`): step / warmup during the warm-up (0 at step
  0), then 0.5 (1 + cos(pi (step - warmup) / (num_steps - warmup))), 0 at num_steps.
- Caption: the basic caption with probability `basic_caption_ratio`, else the detailed one; then dropped
  (features and mask zeroed) with probability `caption_dropout`. Both draws are made every step.
- Flow pair (rectified flow, official loss): z_sigma = (1 - sigma) x + sigma eps, target x - eps, in the
  DiT's normalised latent space ("normalised") or the official quirk ("raw": x is the raw VAE latent,
  the target is normalised).
"""

from __future__ import annotations

import math

import torch

from .recipe import Recipe

CAPTION_KINDS = ("detailed", "basic", "empty")


def noise_beta(step: int, recipe: Recipe) -> float:
    """b(step) of sigma ~ Beta(1, b(step))."""
    return 1 + (recipe.beta_start - 1) * 2 ** (-step / recipe.beta_half_life)


def draw_sigma(generator: torch.Generator, step: int, recipe: Recipe, n: int = 1) -> torch.Tensor:
    """n float32 noise levels sigma ~ Beta(1, b(step)) in (0, 1]."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (1 - u ** (1 / noise_beta(step, recipe))).float()


def lr_factor(step: int, recipe: Recipe) -> float:
    """The learning-rate multiplier at optimizer step `step` (0-based)."""
    if step < recipe.warmup_steps:
        return step / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / (recipe.num_steps - recipe.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))


def make_lr_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LambdaLR:
    """Warm-up + cosine, stepped once after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, recipe))


def draw_caption(generator: torch.Generator, recipe: Recipe) -> str:
    """"detailed", "basic" or "empty" (dropped)."""
    basic, dropped = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    if dropped < recipe.caption_dropout:
        return "empty"
    return "basic" if basic < recipe.basic_caption_ratio else "detailed"


def flow_pair(z: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
              latents: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(DiT input, target) of raw VAE latents z (B, C, T, H, W), noise eps, noise levels sigma (B,) and the
    per-channel normalisation (C,) (`latents` is "normalised" or "raw")."""
    view = (1, -1, 1, 1, 1)
    mean, std = mean.view(view).to(z), std.view(view).to(z)
    s = sigma.view(-1, 1, 1, 1, 1).to(z)
    if latents == "raw":
        return (1 - s) * z + s * eps, (z - eps - mean) / std
    z_n = (z - mean) / std
    return (1 - s) * z_n + s * eps, z_n - eps
