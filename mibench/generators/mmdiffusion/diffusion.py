"""Gaussian diffusion of MM-Diffusion (guided-diffusion style): schedule, respacing, one-step updates.

Linear betas 1e-4 .. 0.02 over T = 1000 (float64), epsilon prediction, x0 clipped to [-1, 1], the
FIXED_LARGE variance [posterior_variance[1], betas[1:]] for ancestral (DDPM) steps, deterministic DDIM
(eta 0). A respaced schedule keeps a subset of the T timesteps (`space_timesteps`, e.g. "ddim25" or
"50"); the updates use the respaced coefficients of index i while the model is given the original
timestep `timestep_map[i]`. Per-step coefficients are gathered in float64 and rounded to float32, as
the reference does. Ported from openai/guided-diffusion and researchmm/MM-Diffusion (MIT).
"""

from __future__ import annotations

import numpy as np
import torch

from mibench.errors import ConfigError


def linear_betas(num_timesteps: int = 1000) -> np.ndarray:
    """Ho et al.'s linear schedule, stretched so any T has the same shape as T = 1000."""
    scale = 1000 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)


def space_timesteps(num_timesteps: int, spacing: str) -> list[int]:
    """The kept timesteps: "ddimN" = the integer stride giving N steps; "a,b,..." = a steps from the first
    equal section, b from the second, ... (rounded, float-accumulated positions as in guided-diffusion)."""
    if spacing.startswith("ddim"):
        wanted = int(spacing[len("ddim") :])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == wanted:
                return list(range(0, num_timesteps, stride))
        raise ConfigError(f"no integer stride gives exactly {wanted} of {num_timesteps} steps", "use another count")
    counts = [int(c) for c in spacing.split(",")]
    size_per, extra = divmod(num_timesteps, len(counts))
    kept: set[int] = set()
    start = 0
    for section, count in enumerate(counts):
        size = size_per + (1 if section < extra else 0)
        if size < count:
            raise ConfigError(f"cannot take {count} steps from a section of {size}")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            kept.add(start + round(position))
            position += stride
        start += size
    return sorted(kept)


def spacing_for(steps: int, *, ddim: bool, num_timesteps: int = 1000) -> str:
    """Respacing string for `steps` sampler steps: DDIM's fixed stride when one fits, else even sections."""
    if not 2 <= steps <= num_timesteps:
        raise ConfigError(f"steps must be between 2 and {num_timesteps}, got {steps}")
    if ddim and any(len(range(0, num_timesteps, s)) == steps for s in range(1, num_timesteps)):
        return f"ddim{steps}"
    return str(steps)


def _f32(value: float) -> float:
    """A coefficient rounded to float32, as the reference gathers it."""
    return float(np.float32(value))


class Schedule:
    """A (respaced) linear-beta schedule and the DDPM / DDIM updates on it."""

    def __init__(self, spacing: str = "", num_timesteps: int = 1000):
        base = np.cumprod(1.0 - linear_betas(num_timesteps))
        kept = set(space_timesteps(num_timesteps, spacing or str(num_timesteps)))
        if len(kept) < 2:
            raise ConfigError("a diffusion schedule needs at least 2 steps")
        betas, self.timestep_map, last = [], [], 1.0
        for t, alpha_bar in enumerate(base):
            if t in kept:
                betas.append(1.0 - alpha_bar / last)
                last = alpha_bar
                self.timestep_map.append(t)
        self.spacing = spacing or str(num_timesteps)
        self.betas = np.array(betas, dtype=np.float64)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        ac, prev = self.alphas_cumprod, self.alphas_cumprod_prev
        self.sqrt_alphas_cumprod = np.sqrt(ac)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - ac)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / ac - 1.0)
        posterior_variance = self.betas * (1.0 - prev) / (1.0 - ac)
        self.posterior_mean_coef1 = self.betas * np.sqrt(prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - prev) * np.sqrt(1.0 - self.betas) / (1.0 - ac)
        self.fixed_large_variance = np.append(posterior_variance[1], self.betas[1:])

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def model_timesteps(self, i: int, batch: int, device: torch.device | str) -> torch.Tensor:
        """The original timestep of respaced index i, as the [batch] int64 tensor the model takes."""
        return torch.full((batch,), self.timestep_map[i], dtype=torch.long, device=device)

    def q_sample(self, x0: torch.Tensor, i: int, noise: torch.Tensor) -> torch.Tensor:
        """x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) noise (i = -1 wraps to the last index, as numpy does)."""
        return _f32(self.sqrt_alphas_cumprod[i]) * x0 + _f32(self.sqrt_one_minus_alphas_cumprod[i]) * noise

    def predict_x0(self, x: torch.Tensor, eps: torch.Tensor, i: int) -> torch.Tensor:
        """x0 = sqrt(1/abar_i) x - sqrt(1/abar_i - 1) eps, clipped to [-1, 1]."""
        x0 = _f32(self.sqrt_recip_alphas_cumprod[i]) * x - _f32(self.sqrt_recipm1_alphas_cumprod[i]) * eps
        return x0.clamp(-1.0, 1.0)

    def ddpm_step(
        self, x: torch.Tensor, eps: torch.Tensor, i: int, noise: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Ancestral step (sample x_{i-1}, x0): posterior mean + sqrt(FIXED_LARGE variance) noise (none at i = 0)."""
        x0 = self.predict_x0(x, eps, i)
        mean = _f32(self.posterior_mean_coef1[i]) * x0 + _f32(self.posterior_mean_coef2[i]) * x
        if i == 0:
            return mean, x0
        if noise is None:
            raise ValueError("a DDPM step at i > 0 needs noise")
        sigma = float(np.exp(0.5 * np.float32(np.log(self.fixed_large_variance[i]))))
        return mean + sigma * noise, x0

    def ddim_step(self, x: torch.Tensor, eps: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic DDIM step, eta 0 (sample x_{i-1}, x0); eps is re-derived from the clipped x0."""
        x0 = self.predict_x0(x, eps, i)
        eps = (_f32(self.sqrt_recip_alphas_cumprod[i]) * x - x0) / _f32(self.sqrt_recipm1_alphas_cumprod[i])
        abar_prev = _f32(self.alphas_cumprod_prev[i])
        return float(np.sqrt(abar_prev)) * x0 + float(np.sqrt(1.0 - abar_prev)) * eps, x0

    def step(
        self, x: torch.Tensor, eps: torch.Tensor, i: int, noise: torch.Tensor | None, *, ddim: bool
    ) -> torch.Tensor:
        """x_{i-1} by DDIM (eta 0) or DDPM."""
        return self.ddim_step(x, eps, i)[0] if ddim else self.ddpm_step(x, eps, i, noise)[0]
