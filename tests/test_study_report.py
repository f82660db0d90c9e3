"""`mibench study create|export` and the study in the report: links printed, votes exported without tokens, the
study section in every format, failing raters excluded on request."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, store_answers
from study_run import build_run
from test_report_browser import ARTIFACTS, chromium_launcher, new_page

from mibench.store import Store
from mibench.study.votes import record_vote


def test_create_vote_export_and_report(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    build_run(run)
    code, out, err = run_cli(["study", "create", "--run-dir", str(run), "--models", "alpha", "--models", "beta",
                              "--raters", "3", "--checks", "1", "--json"], capsys, monkeypatch)
    created = json.loads(out)
    assert code == 0 and len(created["raters"]) == 3 and created["study"] in err
    assert all(link["url"].startswith("http://127.0.0.1:8000/r/") for link in created["raters"])
    code, _, err = run_cli(["study", "create", "--run-dir", str(run), "--models", "alpha"], capsys, monkeypatch)
    assert code == 2 and "two models" in err

    study, store = created["study"], Store.open(run)
    tokens = [link["token"] for link in created["raters"]]
    sequences = {t: json.loads(store.db.execute("SELECT sequence FROM study_raters WHERE token=?", (t,))
                               .fetchone()[0]) for t in tokens}
    kinds = dict(store.db.execute("SELECT pair_id, kind FROM study_items WHERE study=?", (study,)).fetchall())
    for n, token in enumerate(tokens):  # raters 1 and 2 prefer alpha; rater 3 fails its check and prefers beta
        for entry in sequences[token]:
            a_side = "left" if entry["left"] == "a" else "right"
            b_side = "right" if a_side == "left" else "left"
            kind = kinds[entry["pair_id"]]
            if kind == "beat":  # the check: video a dances on the beat
                side = a_side if n < 2 else b_side
            elif kind == "same":
                side = "tie" if n < 2 else "left"
            else:
                side = a_side if n < 2 else b_side
            for question in ("visual_quality", "music_alignment", "motion_realism", "dance_complexity"):
                record_vote(store, token, entry["pair_id"], question, side)
    jobs = {j["job_id"]: j for j in store.jobs()}
    store_answers(store, [{"job_id": job_id, "judge": "videollama2", "question_set": "paper", "question_id": qid,
                           "mode": "greedy", "run_index": 0, "question": "q", "raw": "", "distribution": None,
                           "options": {}, "score": 8.0 if job["model"] == "alpha" else 4.0}
                          for job_id, job in jobs.items()
                          for qid in ("imaging_quality", "aesthetic_quality", "overall_consistency",
                                      "beat_alignment", "movement_realism", "choreography_complexity")])
    store.close()

    code, csv, _ = run_cli(["study", "export", "--run-dir", str(run), "--study", study], capsys, monkeypatch)
    assert code == 0 and csv.count("\n") == 1 + 3 * 4 * (3 + 1) and not any(t in csv for t in tokens)

    code, out, _ = run_cli(["report", "--run-dir", str(run), "--json", "--no-reference"], capsys, monkeypatch)
    [kept] = json.loads(out)["studies"]
    assert kept["failing_raters"] == ["rater-3"] and kept["excluded"] == []
    visual = next(r for r in kept["win_rates"] if r["question_id"] == "visual_quality")
    assert visual["win_rate_a"] == pytest.approx(6 / 9) and visual["n_raters"] == 3
    judge = next(r for r in kept["judges"] if r["question_id"] == "music_alignment")
    assert judge["agreement"] == 1.0  # the judge prefers alpha, as the majority of every item does
    page = (run / "report" / "index.html").read_text(encoding="utf-8")
    assert "Human studies" in page and f"study-{study}-votes.csv" in page and "rater-3 0/1 (failing)" in page
    assert (run / "report" / f"study-{study}-votes.csv").read_text(encoding="utf-8") == csv

    code, out, _ = run_cli(["report", "--run-dir", str(run), "--json", "--no-reference", "--exclude-failed-raters"],
                           capsys, monkeypatch)
    [excluded] = json.loads(out)["studies"]
    visual = next(r for r in excluded["win_rates"] if r["question_id"] == "visual_quality")
    assert excluded["excluded"] == ["rater-3"] and visual["win_rate_a"] == 1.0 and visual["n_raters"] == 2
    markdown = (run / "report" / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Human studies" in markdown and "rater-3 (excluded)" in markdown

    sync_playwright = chromium_launcher()  # the report's study section, as a reader sees it
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser, page, _ = new_page(p)
        page.goto((run / "report" / "index.html").as_uri())
        section = page.locator("#studies")
        assert section.locator("table.study tbody tr").count() == 4
        section.screenshot(path=str(ARTIFACTS / "report-study.png"))
        browser.close()
