"""Configurations of the MM-Diffusion port: the coupled U-Net, the 64->256 upsampler and the sampler.

`AISTPP_MMD`, `AISTPP_SR` and `AISTPP_SAMPLER` are the flags of the official AIST++ audio->video script
(researchmm/MM-Diffusion `ssh_scripts/audio2video_sample_sr.sh`). `from_reference_kwargs` reads the
keyword arguments the reference builders take (`create_model(...)`, `ImageSuperResModel(...)`), as
recorded in a golden fixture's config.json.

Guidance strength: the official script runs `--use_fp16 True --classifier_scale 3.0`, and its gradient
sampler multiplies the loss by the fp16 loss scale 2**20 without dividing it back, so the effective
guidance scale is 3 * 2**20. `OFFICIAL_GUIDANCE_SCALE` is that effective value; the port uses no loss
scale, so `guidance_scale=3.0` reproduces what the same code does with `use_fp16=False` (about 10**6
times weaker, i.e. nearly unconditional video).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mibench.errors import ConfigError

OFFICIAL_CLASSIFIER_SCALE = 3.0
FP16_LOSS_SCALE = 2**20
OFFICIAL_GUIDANCE_SCALE = OFFICIAL_CLASSIFIER_SCALE * FP16_LOSS_SCALE


def _ints(value: str | Sequence[int] | int) -> tuple[int, ...]:
    """'1,2,3' / [1, 2, 3] / 3 -> (1, 2, 3)."""
    if isinstance(value, str):
        return tuple(int(v) for v in value.split(",") if v.strip())
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


@dataclass(frozen=True)
class MMDConfig:
    """The coupled audio-video U-Net (`MultimodalUNet`); defaults are the official AIST++ model."""

    video_size: tuple[int, int, int, int] = (16, 3, 64, 64)  # frames, channels, height, width
    audio_size: tuple[int, int] = (1, 25600)  # channels, samples (1.6 s at 16 kHz)
    model_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    num_heads: int = 4  # in-ResBlock video/audio self-attention
    num_head_channels: int = 64  # cross-attention only; -1 -> num_heads
    cross_attention_resolutions: tuple[int, ...] = (2, 4, 8)
    cross_attention_windows: tuple[int, ...] = (1, 4, 8)
    cross_attention_shift: bool = True
    video_attention_resolutions: tuple[int, ...] = (2, 4, 8)
    audio_attention_resolutions: tuple[int, ...] = (-1,)
    use_scale_shift_norm: bool = True
    video_type: str = "2d+1d"

    def __post_init__(self) -> None:
        frames, _, height, width = self.video_size
        levels = len(self.channel_mult)
        if self.video_type not in ("2d+1d", "3d"):
            raise ConfigError(f"unknown MM-Diffusion video_type {self.video_type!r}", "use '2d+1d' or '3d'")
        if len(self.cross_attention_windows) != len(self.cross_attention_resolutions):
            raise ConfigError("cross_attention_windows must give one window per cross-attention resolution")
        if max(self.cross_attention_windows, default=1) > frames:
            raise ConfigError(f"a cross-attention window is longer than the clip ({frames} frames)")
        for level in range(levels):
            samples = self.audio_size[1] // 4**level
            if samples * 4**level != self.audio_size[1] or samples % frames:
                raise ConfigError(
                    f"audio length {self.audio_size[1]} does not split into {frames} equal segments at "
                    f"every U-Net level",
                    "use a length divisible by frames * 4**(levels - 1)",
                )
        if height % 2 ** (levels - 1) or width % 2 ** (levels - 1):
            raise ConfigError(f"video size {height}x{width} is not divisible by {2 ** (levels - 1)}")

    @property
    def frames(self) -> int:
        return self.video_size[0]

    @property
    def middle_cross_attention(self) -> bool:
        """The reference adds a full (window = F) middle cross-attention only for windows == [1, 4, 8]."""
        return self.cross_attention_windows == (1, 4, 8)

    @classmethod
    def from_reference_kwargs(cls, kwargs: Mapping[str, Any]) -> MMDConfig:
        """From the keyword arguments of the reference `create_model` (see a fixture's config.json)."""
        if kwargs.get("learn_sigma") or kwargs.get("class_cond"):
            raise ConfigError("learned-variance and class-conditional MM-Diffusion models are not supported")
        if not kwargs.get("resblock_updown", True):
            raise ConfigError("resblock_updown=False builds a U-Net without upsampling in the reference")
        if kwargs.get("audio_type", "1d") not in ("1d", "linear"):
            raise ConfigError(f"unknown MM-Diffusion audio_type {kwargs['audio_type']!r}")
        video_size = _ints(kwargs["video_size"])
        mult = kwargs.get("channel_mult", "")
        if mult in ("", None):
            by_size = {256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
            if video_size[-1] not in by_size:
                raise ConfigError(f"no default channel_mult for video size {video_size[-1]}")
            mult = by_size[video_size[-1]]
        return cls(
            video_size=video_size,  # type: ignore[arg-type]
            audio_size=_ints(kwargs["audio_size"]),  # type: ignore[arg-type]
            model_channels=int(kwargs["num_channels"]),
            channel_mult=_ints(mult),
            num_res_blocks=int(kwargs["num_res_blocks"]),
            num_heads=int(kwargs.get("num_heads", 1)),
            num_head_channels=int(kwargs.get("num_head_channels", -1)),
            cross_attention_resolutions=_ints(kwargs.get("cross_attention_resolutions", "2,4,8")),
            cross_attention_windows=_ints(kwargs.get("cross_attention_windows", "1,4,8")),
            cross_attention_shift=bool(kwargs.get("cross_attention_shift", True)),
            video_attention_resolutions=_ints(kwargs.get("video_attention_resolutions", "2,4,8")),
            audio_attention_resolutions=_ints(kwargs.get("audio_attention_resolutions", "2,4,8")),
            use_scale_shift_norm=bool(kwargs.get("use_scale_shift_norm", False)),
            video_type=str(kwargs.get("video_type", "2d+1d")),
        )


@dataclass(frozen=True)
class SRConfig:
    """The frame-wise upsampler (guided-diffusion `SuperResModel`); defaults are `AIST++_SR.pt`."""

    large_size: int = 256
    small_size: int = 64
    model_channels: int = 192
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 2
    attention_ds: tuple[int, ...] = (8, 16, 32)  # downsampling factors with self-attention
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    learn_sigma: bool = True

    @classmethod
    def from_reference_kwargs(cls, kwargs: Mapping[str, Any]) -> SRConfig:
        """From the keyword arguments of the reference `ImageSuperResModel` (other keys are ignored)."""
        if kwargs.get("use_new_attention_order"):
            raise ConfigError("the MM-Diffusion upsampler uses the legacy attention order only")
        if not kwargs.get("resblock_updown", True):
            raise ConfigError("only resblock_updown=True upsamplers (the official ones) are supported")
        return cls(
            large_size=int(kwargs["large_size"]),
            small_size=int(kwargs["small_size"]),
            model_channels=int(kwargs["num_channels"]),
            channel_mult=_ints(kwargs["channel_mult"]),
            num_res_blocks=int(kwargs["num_res_blocks"]),
            attention_ds=_ints(kwargs["attention_resolutions"]),
            num_heads=int(kwargs.get("num_heads", 1)),
            num_head_channels=int(kwargs.get("num_head_channels", -1)),
            num_heads_upsample=int(kwargs.get("num_heads_upsample", -1)),
            use_scale_shift_norm=bool(kwargs.get("use_scale_shift_norm", False)),
            learn_sigma=bool(kwargs.get("learn_sigma", False)),
        )


@dataclass(frozen=True)
class SamplerDefaults:
    """Sampler settings used when `generate` is not told otherwise; defaults = the official script."""

    method: str = "gradient"  # classifier_scale 3.0 > 0 selects the gradient-guided sampler
    steps: int = 1000  # DDPM, no respacing
    guidance_scale: float = OFFICIAL_GUIDANCE_SCALE
    sr_steps: int = 25  # DDIM "ddim25", eta 0
    fps: float = 10.0
    sample_rate: int = 16000


AISTPP_MMD = MMDConfig()
AISTPP_SR = SRConfig()
AISTPP_SAMPLER = SamplerDefaults()
