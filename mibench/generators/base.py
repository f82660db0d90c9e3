"""The generator protocol, the music a job is conditioned on, and building a generator by name.

A generator turns a Job into an mp4 at a given path (written atomically, with the job's music segment
muxed in) and returns metadata for the video's JSON sidecar. Music windows are cut identically for
every model: the offset is drawn from (music id, seed), not from the model, so the judge hears the
same segment in every model's video of an item.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from mibench.cards import Card, card
from mibench.errors import MediaError
from mibench.media.audio import change_tempo, crop_or_pad, load_audio
from mibench.suite.jobs import Job


class Generator(ABC):
    """Base class: holds the card, the preset's settings and user overrides."""

    def __init__(self, card: Card, preset: str, *, weights: Path | None = None, device: str = "cpu",
                 options: dict | None = None):
        self.card = card
        self.preset = preset
        self.weights = weights
        self.device = device
        self.settings = {**card.settings(preset), **{k: v for k, v in (options or {}).items() if v is not None}}

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def num_frames(self) -> int:
        return int(self.settings["num_frames"])

    @property
    def fps(self) -> float:
        return float(self.settings["fps"])

    def prepare(self) -> None:  # noqa: B027 - an optional hook; generators without weights need none
        """Load the weights; called once before the first job, so weight errors stop the command."""

    @abstractmethod
    def generate(self, job: Job, out_path: Path) -> dict:
        """Write the job's video to `out_path`; return metadata for the sidecar."""


def build_generator(name: str, preset: str, **kwargs) -> Generator:
    model_card = card(name, "generator")
    return model_card.load_class()(model_card, preset, **kwargs)


def window_seed(job: Job) -> int:
    """The seed of the music window: same music and seed -> same window, whatever the model."""
    digest = hashlib.sha1(f"{job.music_id}|{job.seed}|{job.tempo}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def job_music(job: Job, sr: int, seconds: float) -> tuple[np.ndarray, float]:
    """The job's music as a mono `sr` wave of exactly `seconds` (tempo applied, seeded window), and the
    window's start in seconds of the (tempo-changed) music."""
    if not job.music_path:
        raise MediaError(f"job {job.job_id} has no music file", "pass --aist-music DIR or --music DIR")
    wave, _ = load_audio(job.music_path, sr)
    if job.tempo != 1.0:
        wave = change_tempo(wave, sr, job.tempo)
    return crop_or_pad(wave, sr, seconds, seed=window_seed(job))
