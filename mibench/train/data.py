"""Training data: the prepared folder (`mibench prepare` output), the seeded clip order, one step's example.

Prepared folder: `manifest.jsonl` (one JSON per clip: `clip_id`, `kind` "aist" | "wild", `cache` relative
path, other metadata) and per clip a safetensors file with float32 `latent_mean`, `latent_logvar`
(12, T', H', W'), `text_feat`, `basic_feat` (L, D), int64 `text_mask`, `basic_mask` (L,) and float32
`audio_feat` (T_a, F).

Clip order (`ClipOrder`): one `torch.Generator` seeded with the recipe's seed, the same on every process.
Each step it makes, for each process in rank order, the source draw (in-the-wild with probability
`wild_ratio`, else AIST), takes that source's next clip of its current epoch permutation (a fresh
permutation, from the same generator, when one is used up) and draws a 62-bit seed for that process's step
generator. Process r trains on the r-th pick: data sharded per process, deterministic for a given number of
processes. The state (generator, permutations, positions) goes into checkpoints.

Example (`make_example`): from the clip and the step generator, in this order: sigma, the caption draws,
the latent sample z = mean + exp(logvar / 2) eps_z, the noise eps; then the flow pair of `schedule.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from mibench.errors import ConfigError

from .recipe import Recipe
from .schedule import draw_caption, draw_sigma, flow_pair

KINDS = ("aist", "wild")
TENSORS = ("latent_mean", "latent_logvar", "text_feat", "text_mask", "basic_feat", "basic_mask", "audio_feat")


@dataclass(frozen=True)
class Clip:
    clip_id: str
    kind: str
    path: Path


class PreparedData:
    """The clips of a prepared folder, by kind, sorted by clip id."""

    def __init__(self, folder: Path):
        manifest = Path(folder) / "manifest.jsonl"
        if not manifest.is_file():
            raise ConfigError(f"{folder} has no manifest.jsonl", "run `mibench prepare` to make a training folder")
        text = manifest.read_text(encoding="utf-8")
        self.fingerprint = hashlib.sha256(text.encode()).hexdigest()
        self.clips: dict[str, list[Clip]] = {kind: [] for kind in KINDS}
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                clip = Clip(str(row["clip_id"]), row["kind"], Path(folder) / row["cache"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ConfigError(f"{manifest} line {number} is malformed ({err!r})",
                                  "prepare the folder again") from err
            if clip.kind not in KINDS:
                raise ConfigError(f"{manifest} line {number} has kind {clip.kind!r}", f"use one of: {', '.join(KINDS)}")
            self.clips[clip.kind].append(clip)
        for kind in KINDS:
            self.clips[kind].sort(key=lambda c: c.clip_id)

    def check_ratio(self, wild_ratio: float) -> None:
        """Refuse a mixing ratio that needs a kind of clip the folder lacks."""
        for kind, needed in (("wild", wild_ratio > 0), ("aist", wild_ratio < 1)):
            if needed and not self.clips[kind]:
                raise ConfigError(f"wild_ratio {wild_ratio} needs {kind} clips, and the prepared folder has none",
                                  "prepare such clips or change wild_ratio")

    @staticmethod
    def load(clip: Clip) -> dict[str, torch.Tensor]:
        try:
            tensors = load_file(str(clip.path))
        except (SafetensorError, OSError) as err:
            raise ConfigError(f"clip cache {clip.path} is unreadable ({err})", "prepare the folder again") from err
        missing = [name for name in TENSORS if name not in tensors]
        if missing:
            raise ConfigError(f"clip cache {clip.path} lacks {', '.join(missing)}", "prepare the folder again")
        return tensors


class ClipOrder:
    """Which clip, and which step seed, each process gets at each step (see the module docstring)."""

    def __init__(self, data: PreparedData, recipe: Recipe, num_processes: int):
        data.check_ratio(recipe.wild_ratio)
        self.data = data
        self.wild_ratio = recipe.wild_ratio
        self.num_processes = num_processes
        self.generator = torch.Generator().manual_seed(recipe.seed)
        self.perms = {kind: torch.empty(0, dtype=torch.long) for kind in KINDS}
        self.pos = dict.fromkeys(KINDS, 0)

    def next_step(self) -> list[tuple[Clip, int]]:
        """(clip, step seed) for every process, in rank order."""
        picks = []
        for _ in range(self.num_processes):
            wild = torch.rand((), generator=self.generator, dtype=torch.float64).item() < self.wild_ratio
            kind = "wild" if wild else "aist"
            if self.pos[kind] == len(self.perms[kind]):
                self.perms[kind] = torch.randperm(len(self.data.clips[kind]), generator=self.generator)
                self.pos[kind] = 0
            clip = self.data.clips[kind][int(self.perms[kind][self.pos[kind]])]
            self.pos[kind] += 1
            picks.append((clip, int(torch.randint(2 ** 62, (), generator=self.generator))))
        return picks

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perms": dict(self.perms), "pos": dict(self.pos)}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.perms = dict(state["perms"])
        self.pos = dict(state["pos"])


@dataclass
class Example:
    """One step's model inputs and target (batch 1, float32, CPU)."""

    inputs: torch.Tensor
    target: torch.Tensor
    sigma: torch.Tensor
    text_feat: torch.Tensor
    text_mask: torch.Tensor
    audio_feat: torch.Tensor
    caption: str


def make_example(tensors: dict[str, torch.Tensor], step: int, generator: torch.Generator, recipe: Recipe,
                 mean: torch.Tensor, std: torch.Tensor) -> Example:
    """A training example of one clip: noise level, caption, latent sample and noise from `generator`."""
    sigma = draw_sigma(generator, step, recipe)
    caption = draw_caption(generator, recipe)
    latent_mean = tensors["latent_mean"][None].float()
    z = latent_mean + torch.exp(0.5 * tensors["latent_logvar"][None].float()) * torch.randn(
        latent_mean.shape, generator=generator)
    eps = torch.randn(z.shape, generator=generator)
    inputs, target = flow_pair(z, eps, sigma, mean, std, recipe.latents)
    prefix = "basic" if caption == "basic" else "text"
    text_feat, text_mask = tensors[f"{prefix}_feat"][None].float(), tensors[f"{prefix}_mask"][None].bool()
    if caption == "empty":
        text_feat, text_mask = torch.zeros_like(text_feat), torch.zeros_like(text_mask)
    return Example(inputs, target, sigma, text_feat, text_mask, tensors["audio_feat"][None].float(), caption)
