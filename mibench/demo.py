"""`mibench demo`: the whole pipeline on tiny presets, on a CPU, in a few minutes.

It writes two synthetic music clips at different tempi into `<run>/music/`, runs every registered
generator's tiny preset on them (suite `aist`: one fixed caption per track), scores every video with
every judge's tiny preset in expected-score mode (random weights: the greedy text is gibberish and
would parse as missing; the expected score over 0..10 always exists, so the report has numbers to
show; the plumbing is the real one), computes the objective metrics, creates a small human A/B study
(MusicInfuser vs MM-Diffusion, two rater links; `mibench study serve` serves it) and renders the report.
Parts that are not built yet are named, not faked.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mibench.cards import cards
from mibench.media.audio import write_wav
from mibench.media.synth import drum_track
from mibench.provenance import session
from mibench.stages.generate import generate_jobs
from mibench.store import Store
from mibench.suite.jobs import expand, music_from_folder
from mibench.suite.prompts import load_question_set

DEMO_TEMPI = (90, 128)
DEMO_SECONDS = 10.0
SAMPLE_RATE = 16000


def _not_built(exc: ModuleNotFoundError) -> bool:
    return bool(exc.name and exc.name.startswith("mibench"))


def write_demo_music(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, bpm in enumerate(DEMO_TEMPI):
        path = folder / f"synth-{bpm:03d}bpm.wav"
        if not path.is_file():
            write_wav(path, drum_track(bpm, DEMO_SECONDS, sr=SAMPLE_RATE, seed=i), SAMPLE_RATE)


def _demo_study(store: Store, run_dir: Path, console: Console) -> dict:
    """A small blinded study (MusicInfuser vs MM-Diffusion, 2 raters) and how to serve it."""
    from mibench.report.text import study_ids
    from mibench.study.model import create_study, load_study, rater_links

    kept = [load_study(store, sid) for sid in study_ids(store)]  # a second demo run keeps the first study
    study = kept[0] if kept else create_study(store, "musicinfuser", "mmdiffusion", raters=2, checks=1, seed=0)
    links = rater_links(store, study.id, "http://127.0.0.1:8000")
    console.print(escape(f"human study {study.id}: serve it with `mibench study serve --run-dir {run_dir} --study "
                         f"{study.id}`, then open {links[0]['url']}"), highlight=False)
    return {"id": study.id, "raters": [link["url"] for link in links]}


def run_demo(run_dir: Path, console: Console) -> dict:
    from mibench.generators.base import build_generator
    from mibench.judges.base import build_judge
    from mibench.stages.score import score_videos

    start = time.perf_counter()
    run_dir = Path(run_dir)
    write_demo_music(run_dir / "music")
    music = music_from_folder(run_dir / "music")
    store = Store.open(run_dir)
    summary: dict = {"run_dir": str(run_dir), "generators": {}, "judges": {}, "not_built": []}

    for card in cards("generator"):
        try:
            generator = build_generator(card.name, "tiny")
        except ModuleNotFoundError as exc:
            if not _not_built(exc):
                raise
            summary["not_built"].append(f"generator {card.name}")
            console.print(f"[yellow]not built yet[/yellow]: generator {card.name}")
            continue
        jobs = expand("aist", card.name, music, seeds=[0], num_frames=generator.num_frames)
        t0 = time.perf_counter()
        with session(store, "generate", {"model": card.name, "preset": "tiny", "suite": "aist", "demo": True}):
            result = generate_jobs(run_dir, store, generator, jobs,
                                   log=lambda line: console.print(line, markup=False, highlight=False))
        summary["generators"][card.name] = {**result.as_dict(), "seconds": round(time.perf_counter() - t0, 1)}
        console.print(f"generated {card.name}: {result.done} new, {result.skipped} kept "
                      f"({time.perf_counter() - t0:.1f} s)")

    questions = load_question_set("paper")
    for card in cards("judge"):
        try:
            judge = build_judge(card.name, "tiny", options={"max_new_tokens": 4})
        except ModuleNotFoundError as exc:
            if not _not_built(exc):
                raise
            summary["not_built"].append(f"judge {card.name}")
            console.print(f"[yellow]not built yet[/yellow]: judge {card.name}")
            continue
        t0 = time.perf_counter()
        with session(store, "score", {"judge": card.name, "preset": "tiny", "mode": "expected", "runs": 1,
                                      "questions": questions.name, "demo": True}):
            result = score_videos(store, judge, questions, mode="expected")
        summary["judges"][card.name] = {**result.as_dict(), "seconds": round(time.perf_counter() - t0, 1)}
        console.print(f"scored with {card.name} (tiny, random weights, expected mode): {result.done} videos "
                      f"({time.perf_counter() - t0:.1f} s)")

    try:
        from mibench.stages.measure import compute_run_metrics
    except ModuleNotFoundError as exc:
        if not _not_built(exc):
            raise
        summary["not_built"].append("metrics")
        console.print("[yellow]not built yet[/yellow]: objective metrics")
    else:
        with session(store, "metrics", {"demo": True}):
            compute_run_metrics(store)
        console.print("computed objective metrics")

    summary["study"] = _demo_study(store, run_dir, console)

    try:
        from mibench.report.render import render_report
    except ModuleNotFoundError as exc:
        if not _not_built(exc):
            raise
        summary["not_built"].append("report")
        console.print("[yellow]not built yet[/yellow]: report")
    else:
        summary["report"] = str(render_report(run_dir))
    store.close()
    summary["seconds"] = round(time.perf_counter() - start, 1)
    console.print(f"demo finished in {summary['seconds']} s")
    if "report" in summary:
        console.print(escape(f"report: {summary['report']}"))
    return summary
