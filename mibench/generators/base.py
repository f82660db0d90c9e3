"""The generator protocol, the music a job is conditioned on, and building a generator by name.

A generator turns a Job into an mp4 at a given path (written atomically, with the job's music segment
muxed in) and returns metadata for the video's JSON sidecar. Music windows are cut identically for
every model: the start is drawn from the item (music, tempo) and seed only (`window_start`), so the
judge and the metrics hear the same music from the same instant in every model's video of an item.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mibench.cards import Card, card
from mibench.errors import ConfigError, MediaError
from mibench.fingerprint import digest
from mibench.media.audio import change_tempo, crop_or_pad, load_audio
from mibench.suite.jobs import Job


class Generator(ABC):
    """Base class: holds the card, the preset's settings and user overrides.

    A generator declares what it takes: `options` (settings a user may override, e.g. `steps`),
    `uses_device` and `uses_weights`; anything else given is refused with one line before any work.
    `identity()` is everything that can change its videos (settings, weights); `fingerprint` its digest.
    """

    options: frozenset[str] = frozenset({"num_frames"})
    uses_device = False
    uses_weights = False
    no_effect: frozenset[str] = frozenset({"offload"})  # settings that move memory, never change a video

    def __init__(self, card: Card, preset: str, *, weights: Path | None = None, device: str | None = None,
                 options: dict | None = None):
        given = {k: v for k, v in (options or {}).items() if v is not None}
        refused = sorted(set(given) - self.options)
        refused += ["device"] * (device is not None and not self.uses_device)
        refused += ["weights"] * (weights is not None and not self.uses_weights)
        if refused:
            takes = sorted(self.options | ({"device"} if self.uses_device else set())
                           | ({"weights"} if self.uses_weights else set()))
            raise ConfigError(f"{card.name} does not use {', '.join(flag(o) for o in refused)}",
                              f"it takes {', '.join(flag(o) for o in takes)}; drop the others")
        self.card = card
        self.preset = preset
        self.weights = weights
        self.device = device or "cpu"
        self.settings = {**card.settings(preset), **given}

    def weights_identity(self) -> dict | None:
        """The identity of the weights this generator loads (None: it has none)."""
        return None

    @cached_property
    def identity(self) -> dict:
        """Read once (the weights identity hashes files): the settings and weights behind every video."""
        settings = {k: v for k, v in sorted(self.settings.items()) if k not in self.no_effect}
        return json.loads(json.dumps({"generator": self.card.name, "preset": self.preset, "settings": settings,
                                      "weights": self.weights_identity()}, default=str))

    @cached_property
    def fingerprint(self) -> str:
        return digest(self.identity)

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


def flag(option: str) -> str:
    """The command-line flag of a generator option."""
    return "--frames" if option == "num_frames" else "--" + option.replace("_", "-")


def build_generator(name: str, preset: str, **kwargs) -> Generator:
    model_card = card(name, "generator")
    return model_card.load_class()(model_card, preset, **kwargs)


ITEM_WINDOW_S = 10.0  # every item's music window starts where a window this long still fits the track


@dataclass(frozen=True)
class MusicWindow:
    """The music a job's video carries: `wave` at the generator's rate, starting `start_s` into the
    (tempo-changed) track; `padded_s` seconds of silence were added past the track's end."""

    wave: np.ndarray
    start_s: float
    seconds: float
    padded_s: float

    def info(self) -> dict:
        """What the sidecar and the store record about the window."""
        found = {"music_offset_s": self.start_s, "music_seconds": self.seconds, "music_padded_s": self.padded_s}
        if self.padded_s > 0:
            found["warnings"] = [f"the music is {self.padded_s:.3f} s shorter than the window from "
                                 f"{self.start_s:.3f} s: padded with silence"]
        return found


def window_start(job: Job, track_seconds: float) -> float:
    """The start (in seconds, whole milliseconds) of the item's music window: drawn from the item (music,
    tempo) and the seed only, never from the model or the window's length, so every generator of an item
    hears the same music from the same instant."""
    digest = hashlib.sha1(f"{job.music_id}|{job.seed}|{job.tempo}".encode()).digest()
    fraction = np.random.default_rng(int.from_bytes(digest[:8], "little")).random()
    return math.floor(fraction * max(0.0, track_seconds - ITEM_WINDOW_S) * 1000) / 1000


def job_music(job: Job, sr: int, seconds: float) -> MusicWindow:
    """The job's music as a mono `sr` wave of exactly `round(seconds * sr)` samples (tempo applied), from
    the item's window start (`window_start`); padded with silence, and a warning, past the track's end."""
    if not job.music_path:
        raise MediaError(f"job {job.job_id} has no music file", "pass --aist-music DIR or --music DIR")
    wave, _ = load_audio(job.music_path, sr)
    if job.tempo != 1.0:
        wave = change_tempo(wave, sr, job.tempo)
    start = window_start(job, len(wave) / sr)
    clip, _ = crop_or_pad(wave, sr, seconds, offset=start)
    padded = max(0, round(start * sr) + len(clip) - len(wave)) / sr
    return MusicWindow(clip, start, len(clip) / sr, round(padded, 6))
