"""Jobs: one video to generate and score, with a stable id; expansion of named suites into jobs.

A job id is `<music>-<prompt>-s<seed>-<hash>`: a readable slug plus the first 10 hex digits of the
SHA-1 of (model, music id, prompt text, seed, frames, tempo). `item_id` hashes (music id, prompt text,
seed, tempo): the jobs of every model on one item hear the same music from the same instant
(`generators.base.window_start`), whatever their video length, so they are paired in comparisons.

Suites (see `SUITES`): `paper` = every music x the paper's 10 prompts (the paper's protocol with the 10
AIST test tracks: 100 videos a model); `aist` = every music with one fixed caption; `prompts` = the
extended prompt benchmark, each prompt paired with one music in turn (round robin).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mibench.errors import ConfigError
from mibench.suite import aist
from mibench.suite.prompts import Prompt, load_prompt_set


@dataclass(frozen=True)
class Music:
    """A piece of music a job is conditioned on; `path` is None until the audio is located."""

    id: str
    path: str | None = None
    bpm: float | None = None
    genre: str | None = None


@dataclass(frozen=True)
class Job:
    model: str
    suite: str
    music_id: str
    music_path: str | None
    prompt_id: str
    prompt: str
    seed: int
    num_frames: int
    tempo: float = 1.0
    bpm: float | None = None
    genre: str | None = None
    tags: dict = field(default_factory=dict, compare=False)  # the prompt's tags (report slices), not hashed

    @property
    def item_id(self) -> str:
        return _digest([self.music_id, self.prompt, self.seed, self.tempo])

    @property
    def job_id(self) -> str:
        digest = _digest([self.model, self.music_id, self.prompt, self.seed, self.num_frames, self.tempo])
        tempo = "" if self.tempo == 1.0 else f"-t{self.tempo:g}"
        return f"{slug(self.music_id)}-{slug(self.prompt_id)}-s{self.seed}{tempo}-{digest}"

    def to_dict(self) -> dict:
        return asdict(self) | {"job_id": self.job_id, "item_id": self.item_id}


def _digest(parts: list) -> str:
    return hashlib.sha1(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:10]


def slug(text: str, max_len: int = 24) -> str:
    """A file-name-safe slug: ASCII letters, digits, '.', '_' and '-' only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return cleaned[:max_len] or "x"


SUITES = {
    "paper": "every music x the paper's 10 prompts (10 AIST test tracks -> 100 videos a model)",
    "aist": "every music with the paper's fixed AIST caption (10 videos a model)",
    "prompts": "the extended prompt benchmark, each prompt with one music in turn",
}


def _pairs(suite: str, music: list[Music]) -> list[tuple[Music, Prompt]]:
    if suite == "paper":
        prompts = load_prompt_set("paper").prompts
        return [(m, p) for m in music for p in prompts]
    if suite == "aist":
        caption = load_prompt_set("aist").prompts[0]
        return [(m, caption) for m in music]
    if suite == "prompts":
        prompts = load_prompt_set("extended").prompts
        return [(music[i % len(music)], p) for i, p in enumerate(prompts)]
    raise ConfigError(f"unknown suite {suite!r}", f"choose one of: {', '.join(SUITES)}")


def expand(
    suite: str,
    model: str,
    music: list[Music],
    *,
    seeds: list[int],
    num_frames: int,
    tempo: float = 1.0,
    limit: int | None = None,
) -> list[Job]:
    """The jobs of `suite` for `model`: (music x prompt) pairs x seeds, the first `limit` of them."""
    if not music:
        raise ConfigError(f"suite {suite!r} needs at least one music track")
    jobs = [
        Job(
            model=model,
            suite=suite,
            music_id=m.id,
            music_path=m.path,
            prompt_id=p.id,
            prompt=p.text,
            seed=seed,
            num_frames=num_frames,
            tempo=tempo,
            bpm=m.bpm,
            genre=m.genre,
            tags=dict(p.tags),
        )
        for m, p in _pairs(suite, music)
        for seed in seeds
    ]
    return jobs[:limit] if limit is not None else jobs


def select_shard(jobs: list[Job], shard: str | None) -> list[Job]:
    """Jobs i, i+n, i+2n, ... for shard "i/n", i counted from 0 (0/n .. n-1/n, as SLURM's
    `--array=0-{n-1}` numbers its tasks): n processes or batch-scheduler tasks split a run without overlap
    and write to one store."""
    if shard is None:
        return jobs
    match = re.fullmatch(r"(\d+)/(\d+)", shard.strip())
    if not match or int(match.group(2)) < 1:
        raise ConfigError(f"bad shard {shard!r}", "use I/N with I from 0 to N-1, e.g. --shard 0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if index >= count:
        raise ConfigError(f"shard {shard} is out of range: I counts from 0",
                          f"the shards of {count} are 0/{count} .. {count - 1}/{count}")
    return jobs[index::count]


_BPM_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*bpm", re.IGNORECASE)


def music_from_folder(folder: Path) -> list[Music]:
    """Every audio file in a folder as a Music, id = file stem (wav, mp3, flac, ogg, m4a). The tempo is
    known for AIST music ids (mBR0.wav) and for names that state it (`synth-120bpm.wav`)."""
    suffixes = {".wav", ".mp3", ".flac", ".ogg", ".m4a"}
    music = []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes):
        bpm, genre = None, None
        if aist.is_music_id(path.stem):
            track = aist.track(path.stem)
            bpm, genre = float(track.bpm), track.genre
        elif match := _BPM_IN_NAME.search(path.stem):
            bpm = float(match.group(1))
        music.append(Music(id=path.stem, path=str(path), bpm=bpm, genre=genre))
    return music
