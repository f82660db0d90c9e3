"""`mibench merge`: shard runs made apart become one run equal to the unsharded run; a conflict stops the
merge before anything is written; merging again adds nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from mibench.cli import main
from mibench.media.audio import write_wav
from mibench.media.synth import drum_track
from mibench.media.video import probe
from mibench.report.aggregate import aggregate, leaderboard
from mibench.report.render import render_report
from mibench.stages.merge import merge_runs
from mibench.store import STORE_NAME, Store

# two prompts x two seeds: the leaderboard's bootstrap clusters by prompt, so its intervals do not depend on the
# order of the store's rows (a naive bootstrap of objective metrics does, and a merged run's order is the shards')
GENERATE = ["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "paper", "--limit", "4",
            "--seeds", "2"]
# every column but the timestamps (and the seconds a video took)
COLUMNS = {
    "jobs": "job_id, item_id, model, suite, music_id, music_path, prompt_id, prompt, seed, num_frames, tempo, bpm, "
            "genre, tags",
    "models": "name, generator, fingerprint, settings",
    "videos": "job_id, path, status, error, info, fingerprint",
    "evaluations": "id, judge, mode, settings",
    "answers": "job_id, evaluation, judge, question_set, question_id, mode, run_index, question, raw, score, "
               "distribution, options, valid_mass",
    "metrics": "job_id, name, fingerprint, value, params, note",
}


def _cli(args: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["mibench", *args])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None), args


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Shards A (0/2) and B (1/2) of 4 jobs and the unsharded run U, each generated, scored and
    measured with the CLI on its own, plus the music folder."""
    root = tmp_path_factory.mktemp("merge")
    music = root / "music"
    music.mkdir()
    for bpm in (90, 120):
        write_wav(music / f"synth-{bpm}bpm.wav", drum_track(bpm, 8.0, sr=16000, seed=bpm), 16000)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        for name, shard in (("A", ["--shard", "0/2"]), ("B", ["--shard", "1/2"]), ("U", [])):
            _cli([*GENERATE, "--music", str(music), *shard, "--run-dir", str(root / name)], monkeypatch)
        for name in "ABU":
            _cli(["score", "--preset", "tiny", "--max-new-tokens", "2", "--run-dir", str(root / name)], monkeypatch)
            _cli(["metrics", "--run-dir", str(root / name)], monkeypatch)
    return {name: root / name for name in ("A", "B", "U", "music")}


def rows(run: Path, table: str) -> set[tuple]:
    with closing(sqlite3.connect(run / STORE_NAME)) as db:
        return set(db.execute(f"SELECT {COLUMNS[table]} FROM {table}"))


def snapshot(run: Path) -> tuple[dict, dict]:
    """Every row of every table of a run's store and every file of the folder (the store's by name only)."""
    with closing(sqlite3.connect(run / STORE_NAME)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        stored = {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables}
    files = {p.relative_to(run).as_posix(): p.name.startswith(STORE_NAME) or hashlib.sha256(p.read_bytes()).digest()
             for p in run.rglob("*") if p.is_file()}
    return stored, files


def merge(sources: list[Path], into: Path, capsys, monkeypatch) -> tuple[int, dict | None, str]:
    code, out, err = run_cli(["merge", *map(str, sources), "--into", str(into), "--json"], capsys, monkeypatch)
    return code, json.loads(out) if out else None, err


def test_merged_shards_equal_the_unsharded_run(runs, tmp_path, capsys, monkeypatch):
    merged = tmp_path / "M"
    code, summary, err = merge([runs["A"], runs["B"]], merged, capsys, monkeypatch)
    assert code == 0, err
    assert summary["added"] == {"jobs": 4, "models": 1, "evaluations": 1, "videos": 4, "answers": 44, "metrics": 28,
                                "sessions": 6}
    assert summary["files_copied"] == 8 and summary["external"] == []  # 4 mp4s and their sidecars
    for table in COLUMNS:
        assert rows(merged, table) == rows(runs["U"], table), table
    store = Store.open(merged)
    assert len(store.answers()) == 44 and len({m["value"] for m in store.metrics()}) > 4
    for video in store.videos():
        assert video["path"].startswith(str(merged)) and probe(video["path"]).num_frames == 180
        assert Path(video["path"]).with_suffix(".json").is_file()
    sessions = store.sessions()
    assert [(s["stage"], s["options"].get("merged_from")) for s in sessions] == [
        *[(stage, shard) for shard in "AB" for stage in ("generate", "score", "metrics")], ("merge", None)]
    assert Path(render_report(merged)).is_file()
    boards = [leaderboard(aggregate(Store.open(run), n_boot=200)) for run in (merged, runs["U"])]
    assert boards[0]["n_videos_done"].tolist() == [4]
    pd.testing.assert_frame_equal(*boards, check_exact=False)

    before = snapshot(merged)
    code, again, _ = merge([runs["B"], runs["A"], runs["B"]], merged, capsys, monkeypatch)
    assert code == 0 and not any(again["added"].values()) and again["files_copied"] == 0
    assert snapshot(merged) == before

    code, overlap, _ = merge([runs["U"]], merged, capsys, monkeypatch)  # the same rows and bytes: only U's sessions
    assert code == 0 and {t: n for t, n in overlap["added"].items() if n} == {"sessions": 3}
    assert overlap["files_copied"] == 0 and all(rows(merged, t) == rows(runs["U"], t) for t in COLUMNS)


def test_a_conflict_leaves_the_target_unchanged(runs, tmp_path, capsys, monkeypatch):
    merged = tmp_path / "M"
    assert merge([runs["A"]], merged, capsys, monkeypatch)[0] == 0
    before = snapshot(merged)

    other = tmp_path / "frames"  # the same model name made with other settings
    code, _, _ = run_cli([*GENERATE, "--music", str(runs["music"]), "--shard", "1/2", "--frames", "24",
                          "--run-dir", str(other)], capsys, monkeypatch)
    assert code == 0
    rescored = tmp_path / "rescored"  # one answer of B with another score
    shutil.copytree(runs["B"], rescored)
    with closing(sqlite3.connect(rescored / STORE_NAME)) as db, db:
        key = db.execute("SELECT job_id, evaluation, question_id FROM answers ORDER BY rowid").fetchone()
        db.execute("UPDATE answers SET raw='7', score=7 WHERE job_id=? AND evaluation=? AND question_id=?", key)
    remade = tmp_path / "remade"  # A with one video file made again (other bytes, same settings)
    shutil.copytree(runs["A"], remade)
    video = Store.open(remade).videos()[0]
    Path(video["path"]).write_bytes(Path(video["path"]).read_bytes() + b"\0")

    cases = [([other], "cannot merge: model synthetic-onbeat differs between "
              f"{merged} and {other} (settings.num_frames: 180 -> 24) (a model name stands for one set of settings"),
             ([runs["B"], rescored], f"cannot merge: answer {', '.join(key)}, 0 differs between {runs['B']} and "
              f"{rescored} (raw: "),
             ([remade], f"cannot merge: video {video['job_id']} differs between {merged} and {remade} (the video "
              "files differ: videos/synthetic-onbeat/"),
             ([runs["B"], runs["music"]], f"{runs['music']} is not a mibench run (no {STORE_NAME})")]
    for sources, line in cases:
        code, out, err = merge(sources, merged, capsys, monkeypatch)
        assert code == 2 and out is None and line in err and len(err.strip().splitlines()) == 1, err
        assert snapshot(merged) == before
        code, _, err = merge([runs["A"], *sources], tmp_path / "new", capsys, monkeypatch)  # into a new folder
        assert code == 2 and "Traceback" not in err and not (tmp_path / "new").exists()
    assert "score: null -> 7.0" in merge([runs["B"], rescored], merged, capsys, monkeypatch)[2]


def test_a_failed_write_adds_no_rows_and_merging_again_completes(runs, tmp_path, monkeypatch):
    merged, copy = tmp_path / "M", shutil.copyfile
    copied = []

    def disk_full_after_two(source, dest):
        if len(copied) == 2:
            raise OSError(28, "No space left on device")
        copied.append(copy(source, dest))

    monkeypatch.setattr(shutil, "copyfile", disk_full_after_two)
    with pytest.raises(OSError, match="No space left"):
        merge_runs([runs["A"], runs["B"]], merged)
    assert not any(rows(merged, table) for table in COLUMNS) and not list(merged.rglob("*.tmp"))
    monkeypatch.setattr(shutil, "copyfile", copy)
    summary = merge_runs([runs["A"], runs["B"]], merged)
    assert (summary.copied, summary.present, summary.added["videos"]) == (6, 2, 4)  # the 2 files copied before stay
    assert all(rows(merged, table) == rows(runs["U"], table) for table in COLUMNS)


def test_an_older_run_is_upgraded_and_merged(runs, tmp_path):
    old = tmp_path / "old"  # A as mibench 0.x (schema 2) wrote it: no prompt tags, no valid mass, no video digests
    shutil.copytree(runs["A"], old)
    with closing(sqlite3.connect(old / STORE_NAME)) as db, db:
        db.execute("ALTER TABLE jobs DROP COLUMN tags")
        db.execute("ALTER TABLE answers DROP COLUMN valid_mass")
        db.execute("ALTER TABLE videos DROP COLUMN content")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    summary = merge_runs([old], tmp_path / "M")
    assert summary.added["jobs"] == 2 and summary.added["answers"] == 22
    merged = Store.open(tmp_path / "M")
    assert {job["tags"] == {} for job in merged.jobs()} == {True}
    assert rows(tmp_path / "M", "metrics") == rows(runs["A"], "metrics")
