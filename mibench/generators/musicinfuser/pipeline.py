"""DancePipeline: MusicInfuser (Mochi + ZICA + LoRA, driven by music) and the Mochi baseline, on diffusers.

    pipe = DancePipeline.from_weights(root, adapter=root / "musicinfuser.safetensors", device="cuda")
    frames = pipe.generate(prompt, wave_16k, num_frames=145, height=480, width=848)  # uint8 (T, H, W, 3)

Defaults are the paper's (official `inference.py`): 64 steps, CFG 6.0 on text only, empty negative
prompt zeroed, seeded float32 noise (see `sampler.py`). T5, the VAE and wav2vec2 run in float32;
`weight_dtype` sets the transformer's (and adapter's) weights only, latents stay float32. Decoding is
`AutoencoderKLMochi.decode` of `latents * std + mean`, then `((x + 1) / 2).clamp(0, 1) * 255`
truncated to uint8, as genmo's video writer (genmo decodes under bf16 autocast, here in float32).
The baseline (`adapter=None`) has no music path and ignores any music given to `generate`.

Timing (for `mibench bench`): after `generate`, `last_timings` holds the seconds spent on music
features, text encoding, each denoising step (CUDA-synchronised; one step = both CFG passes) and
decoding; `callback(step, total)` runs after every step.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import MochiPipeline

from mibench.errors import ConfigError, WeightsError

from .adapter import audio_block_count, load_adapter, read_adapter
from .components import load_text_encoder, load_tokenizer, load_transformer, load_vae
from .features import MusicEncoder
from .sampler import (
    VAE_SPATIAL,
    VAE_TEMPORAL,
    TextCondition,
    denoise,
    dit_to_vae_latents,
    initial_noise,
    latent_shape,
    make_scheduler,
)
from .tiny import tiny_parts
from .zica import OFFICIAL_AUDIO_LAYERS, Zica, attach_zica

OFFLOAD_MODES = ("model", "sequential")


@dataclass
class Timings:
    """Seconds spent by the last `generate` call, per stage."""

    music_s: float = 0.0
    text_s: float = 0.0
    steps_s: list[float] = field(default_factory=list)
    decode_s: float = 0.0


class DancePipeline:
    """Text + music -> dance video frames; holds a diffusers `MochiPipeline` (`.mochi`) for its parts."""

    def __init__(self, mochi: MochiPipeline, music: MusicEncoder | None = None, zica: Zica | None = None):
        """`music` (wav2vec2) and `zica` (the audio hooks; `zica.layers`) are None for the Mochi baseline."""
        self.mochi = mochi
        self.music = music
        self.zica = zica
        self.last_timings = Timings()

    @classmethod
    def from_weights(cls, root: Path | None = None, *, adapter: Path | None, base: str = "genmo/mochi-1-preview",
                     wav2vec: str = "facebook/wav2vec2-base-960h", device: str | torch.device = "cpu",
                     weight_dtype: torch.dtype = torch.float32, offload: str | None = None,
                     vae_tiling: bool = False, fuse_lora: bool = False,
                     audio_layers: Sequence[int] = OFFICIAL_AUDIO_LAYERS) -> DancePipeline:
        """Load real weights (layout in `components.py`); `adapter=None` gives the Mochi baseline.

        `adapter` is an official `musicinfuser.safetensors`; its ZICA blocks sit after the blocks in
        `audio_layers` (the released model's 16 layers by default). `offload` is None, "model" or
        "sequential" (diffusers CPU offload, GPU devices only). `fuse_lora` merges the LoRA into the
        weights (genmo's inference path, a little faster; the adapter cannot be exported afterwards).
        """
        device = torch.device(device)
        check_placement(device, offload)
        root = Path(root) if root is not None else None
        if adapter is not None:  # read first: a bad adapter fails before the big downloads and loads
            tensors, spec = read_adapter(Path(adapter))
            if audio_block_count(tensors) != len(audio_layers):
                raise WeightsError(f"adapter {adapter} has {audio_block_count(tensors)} audio cross-attention "
                                   f"blocks but {len(audio_layers)} audio layers are configured",
                                   "pass the audio_layers the adapter was trained with")
        transformer = load_transformer(root, base, weight_dtype)
        music = zica = None
        if adapter is not None:
            music = MusicEncoder.from_pretrained(wav2vec, device)
            zica = attach_zica(transformer, audio_layers, feat_dim=music.feature_dim, device="meta")
            load_adapter(transformer, tensors, spec, fuse=fuse_lora, what=f"MusicInfuser adapter {adapter}")
        mochi = MochiPipeline(scheduler=make_scheduler(), vae=load_vae(root, base),
                              text_encoder=load_text_encoder(root, base), tokenizer=load_tokenizer(root, base),
                              transformer=transformer)
        place(mochi, device, offload, vae_tiling)
        return cls(mochi, music, zica)

    @classmethod
    def tiny(cls, *, with_adapter: bool = True, seed: int = 0, device: str | torch.device = "cpu",
             weight_dtype: torch.dtype = torch.float32, offload: str | None = None, vae_tiling: bool = False,
             fuse_lora: bool = False) -> DancePipeline:
        """The tiny preset (`tiny.py`): seeded random weights, no download, placed and configured as
        `from_weights` places real ones (device, transformer dtype, offload, VAE tiling, fused LoRA)."""
        device = torch.device(device)
        check_placement(device, offload)
        parts = tiny_parts(with_adapter=with_adapter, seed=seed, fuse_lora=fuse_lora)
        if weight_dtype != parts.transformer.dtype:
            parts.transformer.to(weight_dtype)
        mochi = MochiPipeline(scheduler=make_scheduler(), vae=parts.vae, text_encoder=parts.text_encoder,
                              tokenizer=parts.tokenizer, transformer=parts.transformer)
        place(mochi, device, offload, vae_tiling)
        music = None if parts.music is None else MusicEncoder(parts.music.model, parts.music.extractor, device)
        return cls(mochi, music, parts.zica)

    @property
    def device(self) -> torch.device:
        return self.mochi._execution_device

    def music_features(self, audio_16k: np.ndarray) -> torch.Tensor:
        """(1, T_a, 768) wav2vec2 features of a cropped 16 kHz mono float wave."""
        if self.music is None:
            raise ConfigError("the Mochi baseline takes no music", "load an adapter for MusicInfuser")
        return self.music(audio_16k)

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> TextCondition:
        """T5 features and mask of a prompt, padded to the transformer's `max_sequence_length` (float32)."""
        tokens = self.mochi.tokenizer(prompt, padding="max_length", truncation=True, return_tensors="pt",
                                      max_length=self.mochi.transformer.config.max_sequence_length)
        mask = tokens.attention_mask.bool().to(self.device)
        embeds = self.mochi.text_encoder(tokens.input_ids.to(self.device), attention_mask=mask)[0].float()
        condition = TextCondition(embeds, mask)
        return TextCondition.empty_like(condition) if prompt == "" else condition

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """uint8 frames (T, H, W, 3) of DiT-space latents (batch 1)."""
        vae = self.mochi.vae
        video = vae.decode(dit_to_vae_latents(latents, vae.config).to(vae.dtype), return_dict=False)[0]
        frames = ((video[0].float() + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8)
        return frames.permute(1, 2, 3, 0).cpu().numpy()

    def generate(self, prompt: str, audio_16k: np.ndarray | None, *, num_frames: int, height: int, width: int,
                 steps: int = 64, guidance_scale: float = 6.0, seed: int = 0,
                 callback: Callable[[int, int], None] | None = None, batch_cfg: bool = False) -> np.ndarray:
        """uint8 frames (num_frames, height, width, 3) of a dance video; same inputs + seed -> same frames."""
        check_size(num_frames, height, width, steps)
        if self.music is not None and audio_16k is None:
            raise ConfigError("MusicInfuser needs music to generate a video", "pass a music file")
        timings = Timings()
        clock = _Clock(self.device)
        audio = None
        if self.music is not None:
            audio = self.music_features(audio_16k)
            timings.music_s = clock.lap()
        cond = self.encode_prompt(prompt)
        timings.text_s = clock.lap()
        channels = self.mochi.transformer.config.in_channels
        noise = initial_noise(seed, latent_shape(num_frames, height, width, channels)).to(self.device)

        def on_step(step: int, total: int) -> None:
            timings.steps_s.append(clock.lap())
            if callback is not None:
                callback(step, total)
                clock.lap()  # the callback's own time counts in no step

        clock.lap()
        with warnings.catch_warnings():
            # diffusers' Mochi RoPE asks for float32 autocast, which CPU autocast ignores (harmlessly), warning.
            warnings.filterwarnings("ignore", message="In CPU autocast, but the target dtype is not supported")
            latents = denoise(self.mochi.transformer, self.mochi.scheduler, noise, cond,
                              TextCondition.empty_like(cond), steps=steps, guidance_scale=guidance_scale,
                              audio_feat=audio, batch_cfg=batch_cfg, callback=on_step)
        frames = self.decode(latents)
        timings.decode_s = clock.lap()
        self.mochi.maybe_free_model_hooks()
        self.last_timings = timings
        return frames


class _Clock:
    """Seconds between laps, synchronising CUDA so that queued kernels count where they ran."""

    def __init__(self, device: torch.device):
        self.device = device
        self.last = time.perf_counter()

    def lap(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        elapsed, self.last = now - self.last, now
        return elapsed


def check_size(num_frames: int, height: int, width: int, steps: int) -> None:
    step = VAE_SPATIAL * 2  # VAE downsampling x patch size
    if num_frames < 1 or (num_frames - 1) % VAE_TEMPORAL:
        raise ConfigError(f"num_frames {num_frames} is not 6k+1", "use e.g. 73 or 145 frames")
    if min(height, width) < step or height % step or width % step:
        raise ConfigError(f"frame size {width}x{height} is not a multiple of {step} pixels", "use e.g. 848x480")
    if steps < 2:  # diffusers' linear-quadratic schedule divides by its linear half: 1 step has none
        raise ConfigError(f"the sampler needs at least 2 steps, got {steps}", "use the paper's 64 steps")


def check_placement(device: torch.device, offload: str | None) -> None:
    if offload is not None and offload not in OFFLOAD_MODES:
        raise ConfigError(f"unknown offload mode {offload!r}", f"use one of {', '.join(OFFLOAD_MODES)}")
    if offload is not None and device.type == "cpu":
        raise ConfigError("CPU offload needs a GPU device", "drop the offload option on CPU")


def place(mochi: MochiPipeline, device: torch.device, offload: str | None, vae_tiling: bool) -> None:
    if offload == "model":
        mochi.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        mochi.enable_sequential_cpu_offload(device=device)
    else:
        mochi.to(device)
    if vae_tiling:
        mochi.vae.enable_tiling()
