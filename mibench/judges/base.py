"""The judge protocol and building a judge by name from its model card.

A judge encodes a video once (frames and, for audio-visual judges, its music) and then answers any
number of questions about the encoding. `mode="greedy"` returns the answer text (paper protocol);
`mode="expected"` also returns the probability-weighted score over the answers 0..10, their distribution
and the probability mass the judge put on them (`valid_mass`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibench.cards import Card, card
from mibench.errors import ConfigError


@dataclass
class JudgeAnswer:
    text: str
    expected_score: float | None = None
    distribution: dict[str, float] | None = None
    valid_mass: float | None = None  # the raw probability of the answers 0..10 before renormalising


class Judge(ABC):
    """Base class: the card, the preset's settings (`modal`, `max_new_tokens`, ...) and user overrides.

    A judge declares the settings a user may override (`options`), and whether it takes `--device` and
    `--checkpoint`; anything else is refused with one line before any work. `identity()` is everything
    about the judge that can change an answer: settings, weights, the device type (cpu, cuda; not its
    index) and the dtype the weights load in there (`weights_dtype()`, known without loading them).
    """

    options: frozenset[str] = frozenset({"modal", "max_new_tokens"})
    uses_device = True
    uses_checkpoint = True

    def __init__(self, card: Card, preset: str, *, checkpoint: Path | None = None, device: str | None = None,
                 options: dict | None = None):
        given = {k: v for k, v in (options or {}).items() if v is not None}
        refused = sorted(set(given) - self.options)
        refused += ["device"] * (device is not None and not self.uses_device)
        refused += ["checkpoint"] * (checkpoint is not None and not self.uses_checkpoint)
        if refused:
            flags = ", ".join("--" + o.replace("_", "-") for o in refused)
            raise ConfigError(f"judge {card.name} does not use {flags}", "drop those options")
        self.card = card
        self.preset = preset
        self.checkpoint = checkpoint
        self.device = device or "cpu"
        self.settings = {**card.settings(preset), **given}

    @property
    def modal(self) -> str:
        return str(self.settings["modal"])

    @property
    def max_new_tokens(self) -> int:
        return int(self.settings["max_new_tokens"])

    @property
    def device_type(self) -> str:
        """The kind of device the judge runs on ("cpu", "cuda", ...): `--device` without its index."""
        return self.device.split(":", 1)[0]

    def weights_identity(self) -> dict | None:
        """The identity of the weights this judge loads."""
        return None

    cuda_dtype: str | None = None  # the dtype real weights load in on CUDA (None: the judge loads no weights)

    def weights_dtype(self) -> str | None:
        """The dtype its weights load in on this device, resolved without loading them: `cuda_dtype` on CUDA,
        else float32 (the tiny preset's random model, built without --checkpoint, always float32); None for
        a judge without weights."""
        if self.cuda_dtype is None:
            return None
        random_tiny = self.preset == "tiny" and self.checkpoint is None
        return self.cuda_dtype if self.device_type == "cuda" and not random_tiny else "float32"

    def identity(self) -> dict:
        return {"judge": self.card.name, "preset": self.preset, "settings": dict(sorted(self.settings.items())),
                "weights": self.weights_identity(), "device": self.device_type, "dtype": self.weights_dtype()}

    @property
    def name(self) -> str:
        return self.card.name

    @abstractmethod
    def encode(self, video: Path, *, jitter_seed: int | None = None) -> Any:
        """Read and encode a video once (in the judge's `modal`); raises MediaError for a corrupt or
        silent video."""

    @abstractmethod
    def ask(self, encoded: Any, questions: list[str], *, mode: str = "greedy") -> list[JudgeAnswer]:
        """Answer every question about one encoded video (decoding up to the judge's `max_new_tokens`)."""


def build_judge(name: str, preset: str, **kwargs) -> Judge:
    judge_card = card(name, "judge")
    return judge_card.load_class()(judge_card, preset, **kwargs)
