"""`mibench score` with the tiny VideoLLaMA 2 judge: fills the store, resumes, skips corrupt videos,
repeated runs with jitter, expected-score mode."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

from mibench.stages.score import jitter_seed
from mibench.store import Store


def test_score_fills_resumes_and_skips_corrupt_videos(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    code, _, _ = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "paper",
                          "--music", str(music_dir), "--limit", "3", "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 0
    store = Store.open(run_dir)
    broken = store.videos()[2]
    Path(broken["path"]).write_bytes(b"\x00" * 4096)

    score = ["score", "--model", "synthetic-onbeat", "--judge", "videollama2", "--preset", "tiny",
             "--max-new-tokens", "2", "--run-dir", run_dir, "--json"]
    code, out, err = run_cli(score, capsys, monkeypatch)
    result = json.loads(out)
    assert code == 1 and result["done"] == 2
    missing = sum(a["score"] is None for a in result["answers"])
    assert f"22 answers, {missing} missing ({missing / 22:.0%})" in err
    assert (f"warning: {missing} of 22 answers" in err) == (missing >= 11)
    assert [f["job_id"] for f in result["failed"]] == [broken["job_id"]]
    assert broken["job_id"] in err
    answers = store.answers()
    assert len(answers) == 2 * 11  # 8 quality + 3 prompt-alignment questions per readable video
    assert {a["question_set"] for a in answers} == {"paper"} and {a["mode"] for a in answers} == {"greedy"}
    assert all(a["raw"] is not None for a in answers)
    assert all("'" + a["question"].split("'")[1] + "'" in a["question"] for a in answers
               if a["question_id"] == "style_capture")

    code, out, _ = run_cli(score, capsys, monkeypatch)
    assert code == 1 and json.loads(out)["done"] == 0 and json.loads(out)["skipped"] == 2
    assert len(store.answers()) == 22

    code, out, _ = run_cli(score + ["--mode", "expected", "--runs", "2", "--limit", "2"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 4
    expected = [a for a in store.answers() if a["mode"] == "expected"]
    assert len(expected) == 44 and {a["run_index"] for a in expected} == {0, 1}
    assert all(0.0 <= a["score"] <= 10.0 for a in expected)
    assert all(abs(sum(json.loads(a["distribution"]).values()) - 1.0) < 1e-5 for a in expected)
    assert all(0.0 < a["valid_mass"] <= 1.0 + 1e-6 for a in expected)
    assert {a["valid_mass"] for a in json.loads(out)["answers"]} == {a["valid_mass"] for a in expected}
    items = {j["job_id"]: j["item_id"] for j in store.jobs()}
    jitter = {(a["job_id"], a["run_index"]): json.loads(a["options"])["jitter_seed"] for a in expected}
    assert {seed for (_, run), seed in jitter.items() if run == 0} == {None}
    again = {job: seed for (job, run), seed in jitter.items() if run == 1}
    assert again == {job: jitter_seed(0, items[job], 1) for job in again}
    assert len(set(again.values())) == 2  # each video its own jitter draw (was seed + run for every video)


def test_score_rejects_bad_options(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist", "--music",
             str(music_dir), "--limit", "1", "--run-dir", run_dir], capsys, monkeypatch)
    for extra, needle in ((["--mode", "sampled"], "unknown mode"), (["--modal", "audio"], "unknown modal"),
                          (["--model", "ghost"], "run has no videos of ghost"),
                          (["--judge", "gpt"], "unknown judge 'gpt'"),
                          (["--questions", "nope"], "unknown question set 'nope'")):
        code, _, err = run_cli(["score", "--preset", "tiny", "--run-dir", run_dir, *extra], capsys, monkeypatch)
        assert code == 2 and needle in err and "Traceback" not in err, (extra, err)


def test_silent_videos_need_modal_video(tmp_path, capsys, monkeypatch):
    import numpy as np

    from mibench.media.video import write_mp4

    folder = tmp_path / "mine"
    folder.mkdir()
    frames = (np.arange(24 * 32 * 32 * 3) % 251).astype(np.uint8).reshape(24, 32, 32, 3)
    write_mp4(folder / "mute.mp4", frames, 12)
    run_dir = str(tmp_path / "run")
    run_cli(["generate", "--videos", str(folder), "--name", "mine", "--run-dir", run_dir], capsys, monkeypatch)
    score = ["score", "--preset", "tiny", "--max-new-tokens", "2", "--run-dir", run_dir, "--json"]
    code, out, err = run_cli(score, capsys, monkeypatch)
    result = json.loads(out)
    assert code == 1 and result["done"] == 0 and len(result["failed"]) == 1 and "no audio" in err
    code, out, _ = run_cli(score + ["--modal", "video"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 1
    answers = Store.open(run_dir).answers()
    assert len(answers) == 8 and {json.loads(a["options"])["modal"] for a in answers} == {"video"}
