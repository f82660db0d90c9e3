"""`mibench prepare`: training videos -> cached clips (VAE latents, T5 captions, wav2vec2 music) + a manifest.

Every video (files as given; folders searched recursively for .mp4/.mov/.mkv/.webm/.avi) is either AIST
(named like `gBR_sBM_c01_d04_mBR1_ch01.mp4`: test-split music and cameras other than `aist_cameras` are
*excluded*, see `captions.py`) or in-the-wild (taken as it is). Unusable videos are *skipped* with a
reason: undecodable, no or silent audio track, smaller than the clip size, too short for one clip away
from the edges (clips cached before a video fails midway stay in the manifest). Clips are cut as `clips.py`
says and encoded by `Encoders` (`encoders.py`).

On-disk layout of `out/` (the training loop's input):

    prepare.json       {"format": 1, "fingerprint", "settings", "encoders" (identity), "versions"}
    manifest.jsonl     one JSON object per clip: clip_id, source (absolute path), kind ("aist" | "wild"),
                       start_s, frames, fps, height, width, caption (detailed), basic_caption, genre,
                       situation, camera, dancer (AIST codes as in the file name, e.g. "BR", "BM", "c01",
                       "d04" (several dancers joined by "_"), "mBR1"; None for in-the-wild clips),
                       music_id, cache ("clips/<clip_id>.safetensors")
    clips/<clip_id>.safetensors   float32 latent_mean, latent_logvar (12, T', H', W'); text_feat,
                       basic_feat (L, D); int64 text_mask, basic_mask (L,) (1 = token); float32 audio_feat
                       (T_a, F); metadata clip_id, fingerprint, caption, basic_caption
    skipped.jsonl      {"source", "reason"} per skipped video of the last run

`clip_id` is `<file name without extension>.seg<k>` (k = 0, 1, ... in time order), so two source videos
may not share a file name. The fingerprint digests the settings and the encoders' identity: a folder
prepared with other ones is refused. Resuming: a clip whose cache file exists and holds its current
captions is not recomputed (its manifest line is rebuilt from the seed and the caption files, as every
window and caption is); every file is written atomically;
the manifest gets a line as each clip is cached and is rewritten at the end with exactly the clips of this
run's videos, so a killed run loses at most the clip it was encoding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mibench.errors import ConfigError, MediaError, MibenchError
from mibench.fingerprint import digest
from mibench.media.audio import atomic_output, is_silent, load_audio
from mibench.media.video import VideoInfo, probe
from mibench.provenance import versions
from mibench.stages.generate import differences

from .captions import (
    AIST_BASIC,
    TRAIN_CAMERAS,
    WILD_BASIC,
    AistName,
    aist_caption,
    exclusion,
    parse_aist_name,
    unparsed_aist,
    wild_caption,
)
from .clips import MUSIC_RATE, clip_music, clip_seconds, clip_starts, crop_box, cut_clips
from .encoders import Encoders

FORMAT = 1
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
SIZE_STEP = 16  # VAE downsampling 8 x DiT patch 2


@dataclass
class PrepareSummary:
    """What one `prepare` call did."""

    computed: int = 0  # clips encoded by this call
    reused: int = 0  # clips found already cached
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (video, why): AIST videos the recipe leaves out
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (video, why): unusable videos

    @property
    def clips(self) -> int:
        return self.computed + self.reused

    def as_dict(self) -> dict:
        return {"clips": self.clips, "computed": self.computed, "reused": self.reused,
                "excluded": [{"source": s, "reason": r} for s, r in self.excluded],
                "skipped": [{"source": s, "reason": r} for s, r in self.skipped]}


def find_videos(sources: list[Path]) -> list[Path]:
    """The videos of `sources`, each once: files as given, folders searched recursively (sorted)."""
    found = []
    for source in map(Path, sources):
        if source.is_dir():
            found += sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        elif source.is_file():
            found.append(source)
        else:
            raise ConfigError(f"training source {source} does not exist", "pass video files or folders of videos")
    videos: dict[str, Path] = {}  # by file name without extension
    for video in found:
        held = videos.setdefault(video.stem, video)
        if held.resolve() != video.resolve():
            raise ConfigError(f"two training videos are named {video.stem} ({held}, {video})",
                              "rename one: clip ids come from file names")
    return list(videos.values())


def prepare(sources: list[Path], out: Path, *, encoders: Encoders, crops_per_minute: float = 5, frames: int = 73,
            fps: float = 30, height: int = 480, width: int = 848, edge_margin: float = 0.05, seed: int = 0,
            aist_cameras: tuple[str, ...] = TRAIN_CAMERAS, progress: Callable[[], None] = lambda: None,
            log: Callable[[str], None] = lambda _: None) -> PrepareSummary:
    """Cut, encode and cache the training clips of `sources` in `out` (see the module docstring);
    `progress()` runs after each video (`len(find_videos(sources))` times), `log` gets one line per
    excluded or skipped video."""
    if (frames - 1) % 6 or min(height, width) < SIZE_STEP or height % SIZE_STEP or width % SIZE_STEP:
        raise ConfigError(f"clips of {frames} frames of {width}x{height} cannot be encoded",
                          f"use 6k+1 frames and sizes that are multiples of {SIZE_STEP} (e.g. 73 frames, 848x480)")
    if fps <= 0 or crops_per_minute <= 0 or not 0 <= edge_margin < 0.5:
        raise ConfigError(f"bad clip settings fps={fps}, crops_per_minute={crops_per_minute}, "
                          f"edge_margin={edge_margin}", "use fps > 0, crops per minute > 0, 0 <= margin < 0.5")
    videos = find_videos(sources)
    settings = json.loads(json.dumps({
        "frames": frames, "fps": fps, "height": height, "width": width, "crops_per_minute": crops_per_minute,
        "edge_margin": edge_margin, "seed": seed, "aist_cameras": list(aist_cameras),
        "clip_seconds": clip_seconds(frames, fps), "music_rate": MUSIC_RATE, "text_tokens": encoders.text_tokens}))
    run = _Run(Path(out), encoders, settings, _claim(Path(out), settings, encoders.identity))
    summary = PrepareSummary()
    for video in videos:
        try:
            why = run.video(video, summary)
            if why is not None:
                summary.excluded.append((str(video), why))
                log(f"excluded {video}: {why}")
        except MibenchError as exc:
            summary.skipped.append((str(video), exc.line()))
            log(f"skipped: {exc.line()}")
        progress()
    _write_lines(run.out / "manifest.jsonl", run.records)
    _write_lines(run.out / "skipped.jsonl", [{"source": s, "reason": r} for s, r in summary.skipped])
    return summary


def _claim(out: Path, settings: dict, identity: dict) -> str:
    """The folder's fingerprint; writes prepare.json for a new folder, refuses one made with other settings."""
    made = {"format": FORMAT, "settings": settings, "encoders": identity}
    fingerprint = digest(made)
    path = out / "prepare.json"
    if path.is_file():
        held = json.loads(path.read_text())
        if held.get("fingerprint") != fingerprint:
            changed = differences({k: held.get(k) for k in made}, json.loads(json.dumps(made, default=str)))
            raise ConfigError(f"{out} holds clips prepared with other settings ({'; '.join(changed[:3])})",
                              "use another --out for these settings")
        return fingerprint
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({**made, "fingerprint": fingerprint, "versions": versions()}, indent=2) + "\n")
    return fingerprint


class _Run:
    """One `prepare` call's state: the manifest lines written so far and the caption encodings made."""

    def __init__(self, out: Path, encoders: Encoders, settings: dict, fingerprint: str):
        self.out, self.encoders, self.settings, self.fingerprint = out, encoders, settings, fingerprint
        self.records: list[dict] = []  # the clips of this run's videos, in order
        self.listed = _tidy(out / "manifest.jsonl")
        self.texts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def video(self, video: Path, summary: PrepareSummary) -> str | None:
        """Cache the clips of one video; returns why it is excluded, or None."""
        s = self.settings
        name = parse_aist_name(video.stem)
        why = unparsed_aist(video.stem) if name is None else exclusion(name, tuple(s["aist_cameras"]))
        if why is not None:
            return why
        info = probe(video)
        if info.width < s["width"] or info.height < s["height"]:
            raise MediaError(f"{video} is {info.width}x{info.height}, smaller than the clips' {s['width']}x"
                             f"{s['height']}", "pass a larger video or a smaller clip size")
        span = s["clip_seconds"]
        starts = clip_starts(info.duration, span, crops_per_minute=s["crops_per_minute"],
                             edge_margin=s["edge_margin"], seed=s["seed"], key=video.name)
        if not starts:
            raise MediaError(f"{video} is too short ({info.duration:.2f} s) for a {span} s clip away from its "
                             f"first and last {s['edge_margin']:.0%}", "pass a longer video or fewer --frames")
        records = [self._record(video, name, k, start) for k, start in enumerate(starts)]
        todo = [r for r in records if not self._cached(r)]
        summary.reused += len(records) - len(todo)
        try:
            if todo:
                self._encode(video, info, todo, name is not None, summary)
        finally:  # the clips cached so far count, even when a later one fails
            for record in records:
                if self._cached(record):
                    self.records.append(record)
                    self._list(record)
        return None

    def _record(self, video: Path, name: AistName | None, k: int, start: float) -> dict:
        clip_id = f"{video.stem}.seg{k}"
        s = self.settings
        return {
            "clip_id": clip_id, "source": str(video.resolve()), "kind": "wild" if name is None else "aist",
            "start_s": start, "frames": s["frames"], "fps": s["fps"], "height": s["height"], "width": s["width"],
            "caption": wild_caption(video) if name is None else aist_caption(name, s["seed"], clip_id),
            "basic_caption": WILD_BASIC if name is None else AIST_BASIC,
            **_aist_fields(name), "cache": f"clips/{clip_id}.safetensors",
        }

    def _encode(self, video: Path, info: VideoInfo, todo: list[dict], aist: bool, summary: PrepareSummary) -> None:
        s = self.settings
        if not info.has_audio:
            raise MediaError(f"{video} has no audio track", "training clips need their music")
        wave, _ = load_audio(video, MUSIC_RATE)
        if is_silent(wave):
            raise MediaError(f"{video} has a silent audio track", "training clips need their music")
        box = crop_box(aist, info.width, info.height, s["width"], s["height"])
        cut = cut_clips(video, [r["start_s"] for r in todo], frames=s["frames"], fps=s["fps"], source_fps=info.fps,
                        box=box, out_width=s["width"], out_height=s["height"])
        done = 0
        for i, pixels in cut:
            record = todo[i]
            mean, logvar = self.encoders.encode_video(pixels)
            text_feat, text_mask = self._text(record["caption"])
            basic_feat, basic_mask = self._text(record["basic_caption"])
            audio = self.encoders.encode_music(clip_music(wave, record["start_s"], s["clip_seconds"]))
            tensors = {"latent_mean": mean, "latent_logvar": logvar, "text_feat": text_feat, "text_mask": text_mask,
                       "basic_feat": basic_feat, "basic_mask": basic_mask, "audio_feat": audio}
            with atomic_output(self.out / record["cache"]) as tmp:
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                          metadata={"clip_id": record["clip_id"], "fingerprint": self.fingerprint,
                                    "caption": record["caption"], "basic_caption": record["basic_caption"]})
            self._list(record)
            summary.computed += 1
            done += 1
        if done < len(todo):
            raise MediaError(f"{video}: no frame could be decoded", "re-encode or replace the file")

    def _cached(self, record: dict) -> bool:
        """Whether the clip's cache file exists and holds its current captions (an edited caption file
        makes its video's clips be encoded again)."""
        path = self.out / record["cache"]
        if not path.is_file():
            return False
        with safe_open(path, "pt") as handle:
            held = handle.metadata() or {}
        return (held.get("caption"), held.get("basic_caption")) == (record["caption"], record["basic_caption"])

    def _text(self, caption: str) -> tuple[torch.Tensor, torch.Tensor]:
        if caption not in self.texts:
            self.texts[caption] = self.encoders.encode_text(caption)
        return self.texts[caption]

    def _list(self, record: dict) -> None:
        """Append a cached clip's manifest line unless the manifest already has it."""
        if record["clip_id"] in self.listed:
            return
        with (self.out / "manifest.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self.listed.add(record["clip_id"])


def _aist_fields(name: AistName | None) -> dict:
    """The manifest's AIST codes of a clip (all None for in-the-wild clips)."""
    if name is None:
        return dict.fromkeys(("genre", "situation", "camera", "dancer", "music_id"))
    return {"genre": name.genre_code, "situation": name.situation_code, "camera": name.camera,
            "dancer": "_".join(name.dancers), "music_id": name.music_id}


def _tidy(manifest: Path) -> set[str]:
    """The clip ids of an existing manifest, rewritten without the line a killed run may have cut short."""
    if not manifest.is_file():
        return set()
    rows: dict[str, dict] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            rows.setdefault(row["clip_id"], row)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    _write_lines(manifest, list(rows.values()))
    return set(rows)


def _write_lines(path: Path, rows: list[dict]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
