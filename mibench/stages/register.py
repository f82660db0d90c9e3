"""Bring your own videos: register a folder of existing mp4s as a model of a run.

Each `<stem>.mp4` becomes a job of model NAME (suite `byo`), its music taken from the video's own
audio track. The prompt, when known, comes from `<stem>.txt` or the `prompt` field of `<stem>.json`
beside the video; without one the prompt-alignment questions are skipped for that video. Videos are
scored in place (not copied): their paths are stored relative to the run folder when they lie inside it
(even when the run or the folder is given through a symlink), so the run can be moved; else absolute.
A name stands for one folder (relative to the run when inside it, so the same folder registered again after
the run moved is the same), and each video for its file's content (size and first MiB): registering another
folder under the name, or a changed file again, is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from mibench.errors import ConfigError, MediaError
from mibench.fingerprint import digest, file_identity
from mibench.media.video import probe
from mibench.store import Store
from mibench.suite.jobs import Job


def _prompt_for(video: Path) -> str:
    text_file, json_file = video.with_suffix(".txt"), video.with_suffix(".json")
    if text_file.is_file():
        return text_file.read_text(encoding="utf-8").strip()
    if json_file.is_file():
        try:
            return str(json.loads(json_file.read_text(encoding="utf-8")).get("prompt") or "")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ConfigError(f"sidecar {json_file} is not a JSON object", "fix or remove it") from exc
    return ""


def _in_run(store: Store, path: Path) -> Path:
    """`path` under the run folder as the store names it when it lies inside the run (either path may go
    through symlinks: their resolved forms are compared), so it is stored relative; else resolved."""
    real, root = path.resolve(), store.root.resolve()
    return store.root / real.relative_to(root) if real.is_relative_to(root) else real


def register_videos(store: Store, folder: Path, name: str) -> tuple[list[Job], list[str]]:
    """Register every mp4 of `folder` as model `name`; returns the jobs and one warning per skipped file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--videos folder {folder} does not exist")
    files = sorted(folder.glob("*.mp4"))
    if not files:
        raise ConfigError(f"no .mp4 files in {folder}")
    jobs, warnings, infos = [], [], []
    for path in files:
        try:
            info = probe(path)
        except MediaError as exc:
            warnings.append(exc.line())
            continue
        if not info.has_audio:
            warnings.append(f"{path} has no audio track: it can be scored only with --modal video")
        prompt = _prompt_for(path)
        jobs.append(Job(model=name, suite="byo", music_id=path.stem, music_path=str(path.resolve()),
                        prompt_id="own" if prompt else "none", prompt=prompt, seed=0, num_frames=info.num_frames))
        infos.append((path, info))
    if not jobs:  # before the name is claimed: nothing is bound to it
        raise ConfigError(f"none of the {len(files)} mp4s in {folder} can be read ({warnings[0]})",
                          "replace or re-encode them")
    settings = {"generator": "videos", "folder": store.relative(_in_run(store, folder))}  # moves with the run
    prints = [digest({**settings, "file": file_identity(path)}) for path, _ in infos]
    changed = [job.music_id for job, fingerprint in zip(jobs, prints, strict=True)
               if (known := store.video(job.job_id)) is not None and known["fingerprint"] != fingerprint]
    if changed:
        raise ConfigError(f"{len(changed)} videos changed since they were registered as {name!r} "
                          f"({', '.join(changed[:3])}): their answers and metrics belong to the old files",
                          "register the folder under another --name, or use a new --run")
    held = store.claim_model(name, "videos", digest(settings), settings)
    if held is not None:
        raise ConfigError(f"run already has a model {name!r} ({held['generator']}: "
                          f"{held['settings'].get('folder', 'generated')})",
                          "register these videos under another --name")
    store.add_jobs(jobs)
    for job, (path, info), fingerprint in zip(jobs, infos, prints, strict=True):
        store.record_video(job.job_id, _in_run(store, path), fingerprint=fingerprint,
                           info={"registered": True, "fps": info.fps, "width": info.width, "height": info.height})
    return jobs, warnings
