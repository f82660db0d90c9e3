"""Portable run folders: paths are stored relative to the run folder, so a run made from one working
directory can be copied or moved and scored, measured and reported from another."""

from __future__ import annotations

import json
import shutil
import sqlite3

from conftest import run_cli

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
