"""Model cards: `baselines/<name>.yaml` declares a generator or judge by name.

Card fields: `name`, `kind` (generator | judge), `entry` ("module:Class" that implements it), `title`,
`description`, `inputs` (text/audio), `weights` (name -> {source: Hugging Face id or local path, files,
url, note}), `defaults` (the full-size, paper-faithful settings), `presets` (name -> overrides of
`defaults`; every card has `tiny`, built locally without downloads, and `full`) and optionally `memory_gb`
(seconds of video -> the GPU memory the upstream model card states, for `mibench doctor`) and `resources`
(what one Ray worker of the model reserves, `RESOURCES`: `num_gpus` when the model runs on CUDA, default 1,
a fraction lets workers share a GPU, more than 1 gives one worker several; `num_cpus` when it runs on the
CPU, default 1; `memory_gb`, host memory, Ray's `memory`, default none).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import yaml

from mibench.errors import ConfigError
from mibench.resources import data_dir

PRESETS = ("tiny", "full")
RESOURCES = ("num_gpus", "num_cpus", "memory_gb")


@dataclass(frozen=True)
class Card:
    name: str
    kind: str
    entry: str
    title: str
    description: str = ""
    inputs: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)
    memory_gb: dict = field(default_factory=dict)  # seconds of video -> GPU memory (GB) its model card states
    resources: dict = field(default_factory=dict)  # what one Ray worker reserves (RESOURCES)

    def __post_init__(self):
        for key, value in self.resources.items():
            if key not in RESOURCES:
                raise ConfigError(f"model card {self.name!r}: unknown resource {key!r}", f"use {', '.join(RESOURCES)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"model card {self.name!r}: resource {key} must be a positive number, got {value!r}")

    def settings(self, preset: str) -> dict:
        """The card's defaults with the preset's overrides applied."""
        if preset not in self.presets:
            raise ConfigError(f"model {self.name!r} has no preset {preset!r}",
                              f"choose one of: {', '.join(self.presets)}")
        return {**self.defaults, **(self.presets[preset] or {})}

    def load_class(self) -> type:
        module, _, attr = self.entry.partition(":")
        return getattr(importlib.import_module(module), attr)


def _load(path) -> Card:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return Card(**data)
    except TypeError as exc:
        raise ConfigError(f"model card {path} is malformed: {exc}") from exc


def cards(kind: str | None = None) -> list[Card]:
    found = [_load(p) for p in sorted(data_dir("baselines").glob("*.yaml"))]
    return [c for c in found if kind is None or c.kind == kind]


def card(name: str, kind: str) -> Card:
    for c in cards(kind):
        if c.name == name:
            return c
    known = ", ".join(c.name for c in cards(kind))
    raise ConfigError(f"unknown {kind} {name!r}", f"known {kind}s: {known}")
