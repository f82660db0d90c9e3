"""The training recipe: every setting of a MusicInfuser adapter training run, loadable from YAML.

Defaults are the paper's recipe (official `music_infuser/train.py` + `configs/music_infuser.yaml`,
paper v3 §4.2-4.5). Presets live in `configs/` (`paper.yaml`, `tiny.yaml`):

    recipe = load_recipe("paper")             # or load_recipe("path/to/my.yaml")

A YAML file names any subset of the fields below; the rest keep their defaults. Unknown keys, wrong types
and out-of-range values are refused with one `ConfigError` line. Write floats with a dot (`1.0e-4`): YAML
reads `1e-4` as a string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import yaml

from mibench.errors import ConfigError
from mibench.generators.musicinfuser.zica import OFFICIAL_AUDIO_LAYERS

CONFIGS = Path(__file__).resolve().parent / "configs"
OPTIMIZERS = ("adamw", "adamw8bit", "adamw-cpu-offload")
_CHOICES = {"latents": ("normalised", "raw"), "optimizer": OPTIMIZERS, "precision": ("auto", "bf16", "fp32"),
            "adapter_dtype": ("fp32", "bf16")}
_FRACTIONS = ("lora_dropout", "basic_caption_ratio", "caption_dropout", "wild_ratio", "weight_decay")
_POSITIVE = ("lora_rank", "lora_alpha", "beta_start", "beta_half_life", "lr", "eps", "num_steps",
             "checkpoint_every", "log_every")


@dataclass(frozen=True)
class Recipe:
    """One training run's settings (defaults: the paper's recipe).

    Adapter (LoRA on the q/k/v and output projections of both attention streams of every block, as the
    released adapter; ZICA after the blocks in `audio_layers`). Only the LoRA and audio modules train.
    - lora_rank, lora_alpha, lora_dropout: LoRA rank r, alpha (update scaled by alpha / r) and dropout
      (paper: 64, 64, 0). q, k and v share one LoRA A per stream, as genmo's fused qkv LoRA.
    - audio_layers: the 0-based blocks followed by an audio cross-attention: "official" (the released 16:
      6-10, 21, 34-36, 38, 39, 43-47), a list, or the path of a JSON list (`layers.json` of
      `select-layers`; relative paths from the working directory). Stored resolved, as a tuple.

    Noise and loss.
    - beta_start, beta_half_life: sigma ~ Beta(1, b(step)), b(step) = 1 + (beta_start - 1) 2^(-step /
      beta_half_life) (paper: 3, 200): low noise first, uniform after ~2k steps. beta_start 1 is uniform.
    - latents: "normalised" (default): the DiT sees (1 - sigma) z_n + sigma eps with z_n the per-channel
      normalised VAE latent, target z_n - eps: the space the sampler works in. "raw": the official code's
      quirk, the raw VAE latent z goes in, the target is normalise(z - eps); use it to re-train comparably
      with the released adapter.

    Captions. - basic_caption_ratio: probability of the basic caption instead of the detailed one (0.2).
    - caption_dropout: probability that the chosen caption is dropped, its features and mask zeroed (0.1).

    Data. - wild_ratio: probability that a step trains on an in-the-wild clip rather than an AIST one
    (paper 1:1 = 0.5; the public config 0.0, AIST only).

    Optimisation (per process: batch 1 clip, as the official code asserts; N processes make a batch of N).
    - optimizer: "adamw" (torch), "adamw8bit" (bitsandbytes, when installed), "adamw-cpu-offload" (moments
      and float32 master weights on the CPU, step on the CPU: slower steps, less GPU memory).
    - lr, weight_decay, betas, eps: AdamW (paper: 1e-4, 0, (0.9, 0.999), 1e-8).
    - warmup_steps, num_steps: LR linear from 0 over the warm-up, then cosine to 0 at num_steps (200, 4000).
    - grad_checkpointing: recompute each block in the backward pass (the official run checkpoints all 48).
    - precision: "auto" = "bf16" on CUDA (frozen base weights bf16, trainable weights float32, forward
      under bf16 autocast; the official run keeps even the trainable weights in bf16) and "fp32" on CPU.
    - seed: seeds the new modules' initialisation, the clip order, noise levels, captions and noise.

    Outputs. - checkpoint_every: steps between resumable checkpoints (500). - keep_checkpoints: how many
    of the newest checkpoints to keep (0 = all; each holds weights and optimizer state). - log_every: steps
    between progress lines (log.csv gets every step). - adapter_dtype: dtype of the final adapter files
    ("fp32" is lossless; "bf16" is half the size, like the released file).
    """

    lora_rank: int = 64
    lora_alpha: float = 64.0
    lora_dropout: float = 0.0
    audio_layers: tuple[int, ...] | list[int] | str = "official"
    beta_start: float = 3.0
    beta_half_life: float = 200.0
    latents: str = "normalised"
    basic_caption_ratio: float = 0.2
    caption_dropout: float = 0.1
    wild_ratio: float = 0.5
    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] | list[float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 200
    num_steps: int = 4000
    grad_checkpointing: bool = True
    precision: str = "auto"
    seed: int = 42
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    adapter_dtype: str = "fp32"

    def __post_init__(self):
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.default)
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"recipe {name} {getattr(self, name)!r} is unknown",
                                  f"use one of: {', '.join(choices)}")
        for name in _FRACTIONS:
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"recipe {name} {getattr(self, name)} is outside [0, 1]", "use a fraction")
        for name in _POSITIVE:
            if getattr(self, name) <= 0:
                raise ConfigError(f"recipe {name} {getattr(self, name)} is not positive", "use a value above 0")
        if self.beta_start < 1 or self.warmup_steps < 0 or self.keep_checkpoints < 0:
            raise ConfigError("recipe beta_start is below 1 or warmup_steps / keep_checkpoints is negative",
                              "use beta_start >= 1 and counts >= 0")
        if self.warmup_steps >= self.num_steps:
            raise ConfigError(f"recipe warmup_steps {self.warmup_steps} >= num_steps {self.num_steps}",
                              "make the warm-up shorter than the run")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ConfigError(f"recipe betas {list(self.betas)} are not two numbers in [0, 1)", "use e.g. [0.9, 0.999]")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "audio_layers", resolve_audio_layers(self.audio_layers))

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        """The autocast dtype on `device` (None: plain float32)."""
        bf16 = self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda")
        return torch.bfloat16 if bf16 else None

    def to_dict(self) -> dict:
        """The recipe as plain YAML/JSON values (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


def _check_type(name: str, value: object, default: object) -> None:
    if name in ("audio_layers", "betas"):  # checked in full by their own rules
        ok = isinstance(value, (tuple, list, str))
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = type(value) is type(default)
    if not ok:
        raise ConfigError(f"recipe {name} {value!r} is not of type {type(default).__name__}",
                          "fix its type (write floats like 1.0e-4)")


def resolve_audio_layers(value: tuple[int, ...] | list[int] | str) -> tuple[int, ...]:
    """"official", a list of block indices or the path of a JSON list -> a tuple of block indices."""
    if value == "official":
        return OFFICIAL_AUDIO_LAYERS
    if isinstance(value, str):
        try:
            value = json.loads(Path(value).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"audio layers file {value} is unreadable ({err.__class__.__name__})",
                              "pass the layers.json written by select-layers") from err
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value):
        raise ConfigError(f"audio layers {value!r} are not a non-empty list of block indices",
                          'use "official", a list like [6, 7] or a JSON file holding one')
    return tuple(value)


def recipe_names() -> list[str]:
    """The packaged recipes (`configs/*.yaml`)."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A packaged recipe by name (`recipe_names()`) or a YAML file; unknown keys are refused."""
    path = CONFIGS / f"{name_or_path}.yaml" if str(name_or_path) in recipe_names() else Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"unknown recipe {str(name_or_path)!r}",
                          f"use one of: {', '.join(recipe_names())}, or the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {path} is not valid YAML ({err.__class__.__name__})", "fix the file") from err
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} is not a mapping of settings", "write `key: value` lines")
    unknown = sorted(set(data) - {f.name for f in fields(Recipe)})
    if unknown:
        raise ConfigError(f"recipe {path} has unknown keys: {', '.join(map(str, unknown))}",
                          "see mibench.train.recipe.Recipe for the known ones")
    return Recipe(**data)
