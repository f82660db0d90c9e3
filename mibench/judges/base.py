"""The judge protocol and building a judge by name from its model card.

A judge encodes a video once (frames and, for audio-visual judges, its music) and then answers any
number of questions about the encoding. `mode="greedy"` returns the answer text (paper protocol);
`mode="expected"` also returns the probability-weighted score over the answers 0..10.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mibench.cards import Card, card


@dataclass
class JudgeAnswer:
    text: str
    expected_score: float | None = None
    distribution: dict[str, float] | None = None


class Judge(ABC):
    def __init__(self, card: Card, preset: str, *, checkpoint: Path | None = None, device: str = "cpu",
                 options: dict | None = None):
        self.card = card
        self.preset = preset
        self.checkpoint = checkpoint
        self.device = device
        self.settings = {**card.settings(preset), **{k: v for k, v in (options or {}).items() if v is not None}}

    @property
    def name(self) -> str:
        return self.card.name

    @abstractmethod
    def encode(self, video: Path, *, modal: str = "av", jitter_seed: int | None = None) -> Any:
        """Read and encode a video once; raises MediaError for a corrupt or silent video."""

    @abstractmethod
    def ask(self, encoded: Any, questions: list[str], *, mode: str = "greedy",
            max_new_tokens: int = 16) -> list[JudgeAnswer]:
        """Answer every question about one encoded video."""


def build_judge(name: str, preset: str, **kwargs) -> Judge:
    judge_card = card(name, "judge")
    return judge_card.load_class()(judge_card, preset, **kwargs)
