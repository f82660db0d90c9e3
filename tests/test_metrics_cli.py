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


def test_recipes_are_chosen_on_the_command_line(tmp_path, music_dir, capsys, monkeypatch):
    run_dir = str(tmp_path / "run")
    run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist", "--music",
             str(music_dir), "--limit", "1", "--run-dir", run_dir], capsys, monkeypatch)
    code, out, _ = run_cli(["metrics", "--run-dir", run_dir, "--json"], capsys, monkeypatch)
    published = json.loads(out)["videos"][0]["metrics"]
    assert code == 0 and {"bas_fact", "bas_bailando"} <= set(published) and "bas_mibench" not in published
    assert published["bas_fact"]["params"]["source"].startswith("AI Choreographer")
    assert published["bas_bailando"]["params"]["music"]["analysis_fps"] == 60
    assert published["bas_fact"]["params"]["music"]["librosa"]
    code, out, _ = run_cli(["metrics", "--recipe", "mibench", "--run-dir", run_dir, "--json"], capsys, monkeypatch)
    own = json.loads(out)["videos"][0]["metrics"]
    assert code == 0 and set(own) == (set(published) - {"bas_fact", "bas_bailando"}) | {"bas_mibench"}
    assert own["bas_mibench"]["params"]["music"]["lag_frames"] == 1
    assert own["motion_bpm"] == published["motion_bpm"]  # the other metrics do not depend on the recipe
    code, _, err = run_cli(["metrics", "--recipe", "edge", "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 2 and "unknown BAS recipe 'edge'" in err and len(err.strip().splitlines()) == 1
    rows = Store.open(run_dir).metrics()
    assert {r["name"] for r in rows} >= {"bas_fact", "bas_bailando", "bas_mibench"}
