"""Shared pytest fixtures: the golden fixture root (MIBENCH_FIXTURES_DIR) and scratch folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mibench.cli import main
from mibench.media.audio import write_wav
from mibench.media.synth import drum_track

TESTS = Path(__file__).resolve().parent


def fixtures_root() -> Path:
    """MIBENCH_FIXTURES_DIR, default tests/fixtures (a copy of ../shared/fixtures)."""
    return Path(os.environ.get("MIBENCH_FIXTURES_DIR", TESTS / "fixtures"))


def fixture_set(name: str) -> Path:
    """One port's fixture set (musicinfuser, videollama2, mmdiffusion); fails loudly when absent."""
    path = fixtures_root() / name
    if not (path / "README.md").is_file():
        pytest.fail(f"fixture set {path} is missing (set MIBENCH_FIXTURES_DIR)")
    return path


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Nothing may reach a model hub during tests."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def store_answers(store, rows: list[dict]) -> None:
    """Record answer rows in a store, each under the evaluation it names (`evaluation`), else one
    evaluation per (judge, mode) (registered here)."""
    rows = [{**r, "evaluation": r.get("evaluation") or f"eval-{r['judge']}-{r['mode']}"} for r in rows]
    for evaluation, judge, mode in sorted({(r["evaluation"], r["judge"], r["mode"]) for r in rows}):
        store.add_evaluation(evaluation, judge, mode, {"judge": judge, "mode": mode})
    store.record_answers(rows)


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """Run `mibench ARGS` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["mibench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), out, err


@pytest.fixture
def music_dir(tmp_path) -> Path:
    """Two synthetic drum tracks (90 and 120 BPM, 8 s) named so their tempo is known."""
    folder = tmp_path / "music"
    folder.mkdir()
    for bpm in (90, 120):
        write_wav(folder / f"synth-{bpm}bpm.wav", drum_track(bpm, 8.0, sr=16000, seed=bpm), 16000)
    return folder
