"""A job's numbers describe the bytes of its video and its music: a video re-recorded with other bytes loses
its answers and metrics, a file changed after it was recorded is failed (not scored or measured), other music
under a job's music name is refused, and a video another process is measuring is left to it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from conftest import run_cli

from mibench.media.audio import write_wav
from mibench.media.synth import drum_track
from mibench.metrics.bas import PUBLISHED
from mibench.metrics.motion import WORK_HEIGHT
from mibench.stages.measure import metrics_fingerprint
from mibench.store import CHANGED_VIDEO, Store

GENERATE = ["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist"]  # one video per track
SCORE = ["score", "--judge", "videollama2", "--preset", "tiny", "--max-new-tokens", "2", "--json"]


def made(tmp_path, music_dir, capsys, monkeypatch, *, score: bool = True):
    """A run with two synthetic videos, scored and measured; its folder."""
    run_dir = str(tmp_path / "run")
    code, _, _ = run_cli([*GENERATE, "--music", str(music_dir), "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 0
    if score:
        assert run_cli([*SCORE, "--run-dir", run_dir], capsys, monkeypatch)[0] == 0
        assert run_cli(["metrics", "--run-dir", run_dir, "--json"], capsys, monkeypatch)[0] == 0
    return run_dir


def counts(store: Store, job_id: str) -> tuple[int, int]:
    answers = store.db.execute("SELECT COUNT(*) FROM answers WHERE job_id=?", (job_id,)).fetchone()[0]
    metrics = store.db.execute("SELECT COUNT(*) FROM metrics WHERE job_id=?", (job_id,)).fetchone()[0]
    return answers, metrics


def test_a_video_recorded_again_with_other_bytes_loses_its_answers_and_metrics(tmp_path, music_dir, capsys,
                                                                                monkeypatch):
    store = Store.open(made(tmp_path, music_dir, capsys, monkeypatch))
    first, second = store.videos()
    before = counts(store, first["job_id"]), counts(store, second["job_id"])
    assert all(n > 0 for pair in before for n in pair)
    same = tmp_path / "same.mp4"
    shutil.copyfile(first["path"], same)
    assert store.record_video(first["job_id"], same, fingerprint=first["fingerprint"]) == 0  # same bytes: kept
    assert counts(store, first["job_id"]) == before[0]
    dropped = store.record_video(first["job_id"], second["path"], fingerprint=first["fingerprint"])
    assert dropped == sum(before[0]) and counts(store, first["job_id"]) == (0, 0)
    assert counts(store, second["job_id"]) == before[1]  # the other job keeps its numbers


def test_a_file_changed_after_it_was_recorded_is_failed_not_scored_or_measured(tmp_path, music_dir, capsys,
                                                                              monkeypatch):
    run_dir = made(tmp_path, music_dir, capsys, monkeypatch, score=False)
    store = Store.open(run_dir)
    first, second = store.videos()
    shutil.copyfile(second["path"], first["path"])  # a playable video, but not the one recorded
    code, out, err = run_cli([*SCORE, "--run-dir", run_dir], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 1 and result["done"] == 1
    assert result["failed"] == [{"job_id": first["job_id"], "error": CHANGED_VIDEO}]
    assert {a["job_id"] for a in store.answers()} == {second["job_id"]}
    code, out, _ = run_cli(["metrics", "--run-dir", run_dir, "--json"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 1 and result["done"] == 1 and [f["job_id"] for f in result["failed"]] == [first["job_id"]]
    assert {m["job_id"] for m in store.metrics(latest=False)} == {second["job_id"]}
    code, out, err = run_cli(["report", "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"1 video file(s) changed after they were recorded (job {first['job_id']})" in err
    assert not (Path(run_dir) / "report").exists()


def test_other_music_under_a_jobs_music_name_is_refused(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = made(tmp_path, music_dir, capsys, monkeypatch, score=False)
    other = tmp_path / "other-music"
    other.mkdir()
    for bpm in (90, 120):  # the same names, other drums
        write_wav(other / f"synth-{bpm}bpm.wav", drum_track(bpm, 8.0, sr=16000, seed=bpm + 1), 16000)
    code, out, err = run_cli([*GENERATE, "--music", str(other), "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "was made from other music named" in err and "has other bytes" in err
    code, _, _ = run_cli([*GENERATE, "--music", str(music_dir), "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 0  # the music it was made with: nothing to do


def test_metrics_leave_a_video_another_process_is_measuring_alone(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = made(tmp_path, music_dir, capsys, monkeypatch, score=False)
    store = Store.open(run_dir)
    first, second = store.videos()
    fingerprint = metrics_fingerprint({"method": "diff", "height": WORK_HEIGHT, "recipes": tuple(PUBLISHED),
                                       "pose": False})
    key = f"metrics:{fingerprint}:{first['job_id']}"
    with store.transaction():  # held by a live process on this host: the one that started the tests
        store.db.execute("INSERT INTO claims VALUES (?, ?, ?, ?)", (key, socket.gethostname(), os.getppid(),
                                                                    time.time() + 600))
    code, out, err = run_cli(["metrics", "--run-dir", run_dir, "--json"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 0 and (result["done"], result["claimed_elsewhere"]) == (1, 1)
    assert "1 videos measured, 0 already measured, 1 being measured by another process" in err
    assert {m["job_id"] for m in store.metrics(latest=False)} == {second["job_id"]}
    assert [row[0] for row in store.db.execute("SELECT key FROM claims")] == [key]  # ours released, theirs kept
