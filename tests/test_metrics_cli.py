"""`mibench metrics` over a run: the on-beat synthetic dancer beats the off-beat one; resume skips."""

from __future__ import annotations

import json

from conftest import run_cli

from mibench.store import Store


def test_metrics_stage_stores_scores_and_resumes(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    for model in ("synthetic-onbeat", "synthetic-offbeat"):
        code, _, _ = run_cli(["generate", "--model", model, "--preset", "tiny", "--suite", "aist", "--music",
                              str(music_dir), "--run-dir", run_dir], capsys, monkeypatch)
        assert code == 0
    code, out, _ = run_cli(["metrics", "--run-dir", run_dir, "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 4
    store = Store.open(run_dir)
    jobs = {j["job_id"]: j["model"] for j in store.jobs()}
    scores: dict[str, list[float]] = {}
    for row in store.metrics():
        if row["name"] == "bas_bailando":
            scores.setdefault(jobs[row["job_id"]], []).append(row["value"])
            assert json.loads(row["params"])["fps"] == 30.0
    assert min(scores["synthetic-onbeat"]) > max(scores["synthetic-offbeat"])
    code, out, _ = run_cli(["metrics", "--run-dir", run_dir, "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["skipped"] == 4


def test_tempo_option_speeds_up_the_music_and_the_dancer_follows(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    code, _, _ = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist",
                          "--music", str(music_dir), "--tempo", "1.25", "--limit", "1", "--run-dir", run_dir],
                         capsys, monkeypatch)
    assert code == 0
    code, _, _ = run_cli(["metrics", "--run-dir", run_dir], capsys, monkeypatch)
    store = Store.open(run_dir)
    [job] = store.jobs()
    assert job["tempo"] == 1.25 and job["job_id"].split("-")[-2] == "t1.25"
    values = {m["name"]: m["value"] for m in store.metrics()}
    assert abs(values["music_bpm"] - job["bpm"] * 1.25) / (job["bpm"] * 1.25) < 0.05  # the music really is faster
    assert abs(values["tempo_ratio"] - 1.0) < 0.05 and values["bas_fact"] > 0.8
