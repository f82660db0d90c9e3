"""Audio-conditioned video sampling with the unconditional coupled U-Net (MM-Diffusion's zero-shot a2v).

Both official methods (`GaussianDiffusion.conditional_p_sample_loop` in researchmm/MM-Diffusion, MIT):

* replacement (classifier_scale 0): at every step the known audio is re-noised to the current level
  with one fixed eps, a_i = q_sample(a0, i, eps_a), and only the video half of the joint step is kept;
* gradient (classifier_scale > 0): the same joint step is taken with the video state requiring grad;
  loss = mean((a_sample - q_sample(a0, i-1, eps_a))**2) per clip, and the video sample moves by
  -[i > 0] * guidance_scale * sqrt(abar_i) * d(loss.mean over the batch)/d(video state).

`guidance_scale` is the effective scale: the official fp16 script's 3 * 2**20 (see config.py). One set
of cross-attention shifts serves the forward and the backward of a step (the reference re-draws them in
its checkpoint recomputation, which a port cannot sensibly reproduce). `ddim=True` swaps the ancestral
step for a deterministic DDIM step in both methods - a speed option, not the official protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from .diffusion import Schedule
from .unet import MultimodalUNet

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""(video x_t, audio x_t, model timesteps) -> (video eps, audio eps)."""

METHODS = ("replacement", "gradient")
_LOSS_SCALE = 2.0**20


@dataclass
class StepResult:
    """One conditional step: the next video state and what produced it."""

    video: torch.Tensor  # video state for the next step
    audio_in: torch.Tensor  # re-noised condition the model saw
    video_eps: torch.Tensor
    audio_eps: torch.Tensor
    audio_sample: torch.Tensor  # audio half of the joint step (discarded by the samplers)
    audio_target: torch.Tensor | None = None  # gradient method: q_sample(a0, i - 1, eps_a)
    loss: torch.Tensor | None = None  # gradient method: per-clip loss [B]
    grad: torch.Tensor | None = None  # gradient method: d loss.mean() / d video state


def replacement_step(
    denoise: Denoiser,
    schedule: Schedule,
    video: torch.Tensor,
    audio_cond: torch.Tensor,
    audio_eps: torch.Tensor,
    i: int,
    *,
    noise_video: torch.Tensor | None = None,
    noise_audio: torch.Tensor | None = None,
    ddim: bool = False,
) -> StepResult:
    """One replacement-method step at respaced index i."""
    audio_in = schedule.q_sample(audio_cond, i, audio_eps)
    with torch.no_grad():
        video_eps, audio_eps_hat = denoise(video, audio_in, schedule.model_timesteps(i, len(video), video.device))
        return StepResult(
            video=schedule.step(video, video_eps, i, noise_video, ddim=ddim),
            audio_in=audio_in,
            video_eps=video_eps,
            audio_eps=audio_eps_hat,
            audio_sample=schedule.step(audio_in, audio_eps_hat, i, noise_audio, ddim=ddim),
        )


def gradient_step(
    denoise: Denoiser,
    schedule: Schedule,
    video: torch.Tensor,
    audio_cond: torch.Tensor,
    audio_eps: torch.Tensor,
    i: int,
    *,
    guidance_scale: float,
    noise_video: torch.Tensor | None = None,
    noise_audio: torch.Tensor | None = None,
    ddim: bool = False,
) -> StepResult:
    """One gradient-guided step at respaced index i (the gradient is also taken at i = 0, unused)."""
    audio_in = schedule.q_sample(audio_cond, i, audio_eps)
    audio_target = schedule.q_sample(audio_cond, i - 1, audio_eps)
    video = video.detach().requires_grad_(True)
    with torch.enable_grad():
        video_eps, audio_eps_hat = denoise(video, audio_in, schedule.model_timesteps(i, len(video), video.device))
        video_sample = schedule.step(video, video_eps, i, noise_video, ddim=ddim)
        audio_sample = schedule.step(audio_in, audio_eps_hat, i, noise_audio, ddim=ddim)
        loss = (audio_sample - audio_target).pow(2).flatten(1).mean(dim=1)
        # scaled by 2**20 and unscaled - exact in binary floating point - so that float16 convs do not
        # underflow (the reference applied this scale under fp16 and forgot to unscale it)
        (grad,) = torch.autograd.grad(loss.mean() * _LOSS_SCALE, video)
        grad = grad / _LOSS_SCALE
    guided = video_sample.detach()
    if i > 0:
        guided = guided - grad * guidance_scale * float(schedule.sqrt_alphas_cumprod[i])
    return StepResult(
        video=guided,
        audio_in=audio_in,
        video_eps=video_eps.detach(),
        audio_eps=audio_eps_hat.detach(),
        audio_sample=audio_sample.detach(),
        audio_target=audio_target,
        loss=loss.detach(),
        grad=grad,
    )


def sample_video(
    model: MultimodalUNet,
    schedule: Schedule,
    audio_cond: torch.Tensor,
    video_shape: tuple[int, ...],
    *,
    method: str,
    guidance_scale: float,
    generator: torch.Generator,
    ddim: bool = False,
    on_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Video [B, F, C, H, W] for the clean condition audio [B, C_a, L] (in [-1, 1]).

    Every random draw comes from `generator` (a CPU generator; tensors are moved to the audio's
    device): x_T of the video, then eps_a, then per step the cross-attention shifts followed by the
    video and audio noise of the ancestral step.
    """
    device = audio_cond.device

    def randn(shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=generator).to(device)

    video = randn(video_shape)
    audio_eps = randn(audio_cond.shape)
    for i in reversed(range(schedule.num_steps)):
        denoise = partial(model, shifts=model.draw_shifts(generator))
        noise = {} if ddim or i == 0 else {"noise_video": randn(video.shape), "noise_audio": randn(audio_eps.shape)}
        if method == "gradient":
            result = gradient_step(
                denoise, schedule, video, audio_cond, audio_eps, i, guidance_scale=guidance_scale, ddim=ddim, **noise
            )
        else:
            result = replacement_step(denoise, schedule, video, audio_cond, audio_eps, i, ddim=ddim, **noise)
        video = result.video
        if on_step is not None:
            on_step()
    return video
