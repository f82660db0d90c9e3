"""Portable run folders: paths are stored relative to the run folder (registered videos inside it too, even
through a symlinked run path), so a run made from one working directory can be copied or moved and scored,
measured and reported from another."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
from conftest import run_cli

from mibench.media.video import write_mp4
from mibench.report.views import model_page
from mibench.store import Store


def test_a_copied_run_works_from_another_directory(tmp_path, music_dir, capsys, monkeypatch):
    made_in = tmp_path / "made_in"
    made_in.mkdir()
    monkeypatch.chdir(made_in)
    code, _, _ = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist",
                          "--music", str(music_dir), "--run", "r1"], capsys, monkeypatch)
    assert code == 0 and (made_in / "runs" / "r1" / "mibench.sqlite").is_file()
    with sqlite3.connect(made_in / "runs" / "r1" / "mibench.sqlite") as db:
        stored = [row[0] for row in db.execute("SELECT path FROM videos")]
    assert len(stored) == 2 and all(p.startswith("videos/synthetic-onbeat/") for p in stored)

    copy = tmp_path / "elsewhere" / "copied"
    shutil.copytree(made_in / "runs" / "r1", copy)
    shutil.rmtree(made_in)  # the original is gone: only the copy remains
    other = tmp_path / "other_cwd"
    other.mkdir()
    monkeypatch.chdir(other)
    relative = "../elsewhere/copied"
    code, out, _ = run_cli(["score", "--preset", "tiny", "--max-new-tokens", "2", "--run-dir", relative, "--json"],
                           capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 2 and json.loads(out)["failed"] == []
    code, out, _ = run_cli(["metrics", "--run-dir", relative, "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 2 and json.loads(out)["failed"] == []
    code, _, _ = run_cli(["report", "--run-dir", relative], capsys, monkeypatch)
    assert code == 0
    page = (copy / "report" / model_page("synthetic-onbeat")).read_text()
    assert page.count('<video controls preload="metadata" src="../videos/synthetic-onbeat/') == 2

    moved = tmp_path / "moved"
    copy.rename(moved)
    store = Store.open(moved)
    assert all(v["path"].startswith(str(moved)) for v in store.videos())
    code, out, _ = run_cli(["score", "--preset", "tiny", "--max-new-tokens", "2", "--run-dir", str(moved), "--json"],
                           capsys, monkeypatch)
    assert code == 0 and json.loads(out)["skipped"] == 2


def test_videos_registered_through_a_symlinked_run_move_with_it(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    own = run / "own"
    own.mkdir(parents=True)
    tone = 0.3 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    for stem in ("a", "b"):
        write_mp4(own / f"{stem}.mp4", np.zeros((20, 32, 32, 3), np.uint8), 10, audio=tone, audio_sr=16000)
    link = tmp_path / "link"
    link.symlink_to(run, target_is_directory=True)
    # the run through the symlink, the videos through it or through the real folder
    for name, videos in (("mine", link / "own"), ("real", own)):
        code, out, _ = run_cli(["generate", "--videos", str(videos), "--name", name, "--run-dir", str(link), "--json"],
                               capsys, monkeypatch)
        assert code == 0 and json.loads(out)["registered"] == 2
    with sqlite3.connect(run / "mibench.sqlite") as db:
        stored = sorted(row[0] for row in db.execute("SELECT path FROM videos"))
    assert stored == ["own/a.mp4", "own/a.mp4", "own/b.mp4", "own/b.mp4"]  # relative to the run folder

    moved = tmp_path / "moved"
    run.rename(moved)
    link.unlink()
    videos = Store.open(moved).videos()
    assert len(videos) == 4 and all(Path(v["path"]).parent == moved / "own" and Path(v["path"]).is_file()
                                    for v in videos)
    code, out, _ = run_cli(["metrics", "--model", "mine", "--run-dir", str(moved), "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 2 and json.loads(out)["failed"] == []
    code, out, _ = run_cli(["generate", "--videos", str(moved / "own"), "--name", "mine", "--run-dir", str(moved),
                            "--json"], capsys, monkeypatch)  # the same folder, registered again where it now is
    assert code == 0 and json.loads(out)["registered"] == 2
    assert len(Store.open(moved).answers()) == 0 and len(Store.open(moved).metrics()) > 0  # metrics kept
