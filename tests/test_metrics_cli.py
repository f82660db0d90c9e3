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
