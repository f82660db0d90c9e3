"""The leaderboard read first, its slices, and the four formats (HTML, CSV, JSON, Markdown) agreeing on
every number, on a hand-made store whose scores are known."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import store_answers

from mibench.report import render_report
from mibench.report.text import collect
from mibench.report.views import fmt
from mibench.store import Store
from mibench.suite.jobs import Job
from mibench.suite.prompts import load_question_set

QUESTIONS = [q for q in load_question_set("paper").questions]
TRACKS = {"m0": "Break", "m1": "Pop", "m2": "Krump"}
PROMPTS = {"p0": {"group": "solo", "dancer": "male"}, "p1": {"group": "solo", "dancer": "female"},
           "p2": {"group": "trio", "dancer": "male"}, "p3": {"group": "trio", "dancer": "female"}}
BASE = {"A": 7.0, "B": 5.0, "C-variant": 6.0}  # every score of a model's video: base + the group's delta
GROUP_DELTA = {"solo": 1.0, "trio": -1.0}
GENRE_DELTA = {"Break": 0.5, "Pop": 0.0, "Krump": -0.5}


def score(model: str, track: str, prompt: str) -> float:
    return BASE[model] + GROUP_DELTA[PROMPTS[prompt]["group"]] + GENRE_DELTA[TRACKS[track]]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("formats") / "run"
    store = Store.open(run_dir)
    rows = []
    for model in BASE:
        jobs = [Job(model=model, suite="paper", music_id=m, music_path=None, prompt_id=p, prompt=f"prompt {p}",
                    seed=0, num_frames=49, genre=genre, tags=PROMPTS[p]) for m, genre in TRACKS.items()
                for p in PROMPTS]
        store.add_jobs(jobs)
        for job in jobs:
            store.record_video(job.job_id, run_dir / "videos" / f"{job.job_id}.mp4", fingerprint="fp")
            value = score(model, job.music_id, job.prompt_id)
            rows += [{"job_id": job.job_id, "judge": "videollama2", "question_set": "paper", "question_id": q.id,
                      "mode": "greedy", "run_index": 0, "question": q.text, "raw": str(value), "score": value,
                      "distribution": None, "options": {}} for q in QUESTIONS]
            bas = 0.2 + 0.01 * BASE[model] + (0.005 if job.music_id == "m0" else 0.0)
            store.record_metrics(job.job_id, "fp", {"pose_bas_fact": (bas, {}, None),
                                                    "pose_bas_bailando": (bas / 2, {}, None)})
    rows[-1]["score"], rows[-1]["raw"] = None, "no idea"  # one missing answer (model C-variant)
    store_answers(store, rows)
    store.close()
    render_report(run_dir, seed=1)
    return run_dir


def test_ranking_best_marks_and_reference_rows(run):
    store = Store.open(run)
    data = collect(store, run.name, seed=1)
    store.close()
    board = data.board
    assert [r.model for r in board.rows] == ["A", "C-variant", "B"]
    assert [g.title for g in board.groups] == ["videollama2 · greedy"]
    assert board.groups[0].keys == ["overall", "dance_quality", "video_quality", "prompt_alignment"]
    assert board.groups[0].clustering == "music track x prompt"
    assert board.objective_keys == ["pose_bas_fact", "pose_bas_bailando"]
    assert [r.cells[0][0].best for r in board.rows] == [True, False, False]
    assert board.rows[0].missing == [0] and board.rows[1].missing == [1]
    assert board.rows[0].cells[0][0].value == pytest.approx(7.0)  # deltas cancel over the balanced design
    reported = {r.model: r for r in board.reference}
    musicinfuser = reported["MusicInfuser (Ours)"]
    assert musicinfuser.label == "reported in the MusicInfuser paper, not measured"
    assert math.isnan(musicinfuser.cells[0][0].value)  # the paper reports no overall for this table
    assert [c.value for c in musicinfuser.cells[0][1:]] == [7.95, 8.95, 8.96]


def test_slices_by_prompt_tag_and_genre(run):
    slices = pd.read_csv(run / "report" / "slices.csv")
    assert set(slices["axis"]) == {"group", "dancer", "genre"}  # style, setting, camera: one value or none
    indexed = slices.set_index(["axis", "value", "model"])
    for model, base in BASE.items():
        for group, delta in GROUP_DELTA.items():
            row = indexed.loc[("group", group, model)]
            assert row["mean"] == pytest.approx(base + delta) and row["n_videos"] == 6
        for genre, delta in GENRE_DELTA.items():
            assert indexed.loc[("genre", genre, model), "mean"] == pytest.approx(base + delta)
            assert indexed.loc[("genre", genre, model), "clustering"] == "video"  # one track: 4 prompts once each
        assert indexed.loc[("dancer", "male", model), "mean"] == pytest.approx(base)
    assert set(slices["key"]) == {"overall"}
    page = (run / "report" / "index.html").read_text(encoding="utf-8")
    assert "Slices: which kind of prompt or music a model fails on" in page and "By genre" in page


def _html_board(page: str) -> dict[str, list[tuple[str, str]]]:
    table = page[page.index('id="leaderboard"'):]
    table = table[:table.index("</table>")]
    rows = {}
    for model, body in re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', table, re.S):
        cells = re.findall(r'<span class="v">([^<]*)</span>(?:<span class="ci">([^<]*)</span>)?', body)
        rows[model] = [(value, ci) for value, ci in cells]
    return rows


def _md_board(text: str, columns: int) -> dict[str, list[tuple[str, str]]]:
    section = text[text.index("## Leaderboard"):]
    rows = {}
    for line in section.splitlines()[4:]:
        if not line.startswith("| "):
            break
        parts = [p.strip() for p in line.strip("| ").split(" | ")]
        if "not measured" in parts[0]:
            continue
        cells = []
        for part in parts[2:]:
            match = re.fullmatch(r"\**([^*\s]+)\**(?: (\[.*\]))?", part)
            if match and not part.isdigit():
                cells.append((match.group(1), match.group(2) or ""))
        rows[parts[0]] = cells[:columns]
    return rows


def test_html_csv_json_and_markdown_show_the_same_numbers(run):
    document = json.loads((run / "report" / "leaderboard.json").read_text(encoding="utf-8"))
    csv = pd.read_csv(run / "report" / "leaderboard.csv").set_index("model")
    board_keys = ["overall", "dance_quality", "video_quality", "prompt_alignment",
                  "objective.pose_bas_fact", "objective.pose_bas_bailando"]
    html = _html_board((run / "report" / "index.html").read_text(encoding="utf-8"))
    markdown = _md_board((run / "report" / "leaderboard.md").read_text(encoding="utf-8"), len(board_keys))
    assert document["ranking"] == ["A", "C-variant", "B"] == list(html) == list(markdown)
    for record in document["leaderboard"]:
        model = record["model"]
        expected = []
        for key in board_keys:
            assert csv.at[model, key] == pytest.approx(record[key], rel=1e-12)
            assert csv.at[model, f"{key}_ci_low"] == pytest.approx(record[f"{key}_ci_low"], rel=1e-12)
            ci = f"[{fmt(record[key + '_ci_low'])}, {fmt(record[key + '_ci_high'])}]"
            expected.append((fmt(record[key]), ci))
        assert html[model] == expected, model
        assert markdown[model] == expected, model
    assert document["leaderboard"][0]["clustering"] == "music track x prompt"
    assert len(document["slices"]) == len(pd.read_csv(run / "report" / "slices.csv"))


def test_reference_documents_are_labelled_and_unverified_ones_show_no_number(run):
    from mibench.report.references import load_references

    documents = {d["name"]: d for d in load_references()}
    assert list(documents)[0] == "paper_reported"
    assert {"paper_reported", "singdance", "wan_dancer"} <= set(documents)
    for document in documents.values():
        assert document["label"].endswith("not measured") and document["source"]
        if not document["verified"]:
            assert document["left_out"]
    assert documents["singdance"].get("judge_card") is None  # no judge: never under a judge's rows
    page = (run / "report" / "index.html").read_text(encoding="utf-8")
    wan = page[page.index('id="reference-wan_dancer"'):]
    wan = wan[:wan.index("</article>")]
    assert "no: no number is shown" in wan and "<table" not in wan
    assert "reported in SingDance (arXiv 2608.16220), not measured" in page and "0.2356" in page


def test_two_judges_show_their_agreement_in_every_format(run, tmp_path):
    import shutil

    copy = tmp_path / "two-judges"
    shutil.copytree(run, copy)
    store = Store.open(copy)
    swapped = {"A": "A", "B": "C-variant", "C-variant": "B"}  # the second judge swaps B and C-variant
    rows = [{"job_id": j["job_id"], "judge": "qwen2.5-omni", "question_set": "paper", "question_id": q.id,
             "mode": "greedy", "run_index": 0, "question": q.text, "raw": "", "distribution": None, "options": {},
             "score": score(swapped[j["model"]], j["music_id"], j["prompt_id"])}
            for j in store.jobs() for q in QUESTIONS]
    store_answers(store, rows)
    store.close()
    render_report(copy, seed=1)
    page = (copy / "report" / "index.html").read_text(encoding="utf-8")
    assert "Cross-judge agreement" in page and "qwen2.5-omni · greedy vs videollama2 · greedy" in page
    assert "judges disagree on the ranking: B and C-variant swap" in page
    document = json.loads((copy / "report" / "leaderboard.json").read_text(encoding="utf-8"))
    overall = next(r for r in document["agreement"] if r["key"] == "overall")
    assert overall["n_models"] == 3 and overall["pair_agreement"] == pytest.approx(2 / 3)
    assert overall["kendall_models"] == pytest.approx(1 / 3)
    markdown = (copy / "report" / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Cross-judge agreement" in markdown and "B and C-variant swap" in markdown
