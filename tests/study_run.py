"""A tiny run for the study tests: models `alpha` and `beta` on three common items (2 s clips with a
tone), one item only `alpha` has and one whose `beta` video failed; a study of alpha vs beta on it."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from mibench.media.video import write_mp4
from mibench.store import Store
from mibench.study.model import create_study
from mibench.suite.jobs import Job

COMMON = 3  # items with a done video of both models


def clip(path: Path, hue: int, seconds: float = 2.0, fps: int = 8) -> None:
    """A moving bar over a coloured background, with a 440 Hz tone."""
    t = int(seconds * fps)
    frames = np.zeros((t, 96, 128, 3), dtype=np.uint8)
    frames[..., hue % 3] = 60 + 40 * (hue // 3)
    for i in range(t):
        frames[i, 30:66, (i * 12) % 112: (i * 12) % 112 + 16] = 255
    audio = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)
    write_mp4(path, frames, fps, audio=audio, audio_sr=16000)


def build_run(run_dir: Path) -> None:
    store = Store.open(run_dir)
    jobs = [Job(model=m, suite="paper", music_id=f"mBR{i}", music_path=None, prompt_id=f"p{i}",
                prompt=f"a dancer, take {i}", seed=0, num_frames=16) for m in ("alpha", "beta")
            for i in range(COMMON + 2)]
    store.add_jobs(jobs)
    for n, job in enumerate(jobs):
        index = int(job.music_id[3:])
        if job.model == "beta" and index == COMMON:  # only alpha has this item
            continue
        if job.model == "beta" and index == COMMON + 1:
            store.record_video(job.job_id, None, fingerprint="fp", status="failed", error="out of memory")
            continue
        path = run_dir / "videos" / job.model / f"{job.job_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        clip(path, n)
        store.record_video(job.job_id, path, info={"fps": 8, "num_frames": 16}, fingerprint="fp")
    store.close()


def make_study(run_dir: Path, **options) -> str:
    """A study of alpha vs beta (2 raters, 2 checks each unless `options` say otherwise); its id."""
    store = Store.open(run_dir)
    try:
        return create_study(store, "alpha", "beta", **{"raters": 2, "checks": 2, "seed": 7, **options}).id
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
