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
from mibench.report.views import fmt, fmt_significant
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


def _html_board_counts(page: str) -> dict[str, list[str]]:
    """Per model the plain number cells of the board: videos generated, then per judge group videos scored
    and missing answers."""
    table = page[page.index('id="leaderboard"'):]
    table = table[:table.index("</table>")]
    return {model: re.findall(r'<td class="num">(\d+)</td>', body)
            for model, body in re.findall(r'<tr data-model="([^"]+)">(.*?)</tr>', table, re.S)}


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
    counts = _html_board_counts((run / "report" / "index.html").read_text(encoding="utf-8"))
    board_md = (run / "report" / "leaderboard.md").read_text(encoding="utf-8").split("## Leaderboard")[1]
    md_lines = {}
    for line in board_md.splitlines()[4:]:
        if not line.startswith("| "):
            break
        parts = [p.strip() for p in line.strip("| ").split(" | ")]
        md_lines[parts[0]] = parts
    for record in document["leaderboard"]:
        model = record["model"]
        expected = []
        for key in board_keys:
            assert csv.at[model, key] == pytest.approx(record[key], rel=1e-12)
            assert csv.at[model, f"{key}_ci_low"] == pytest.approx(record[f"{key}_ci_low"], rel=1e-12)
            show = fmt_significant if key.startswith("objective.") else fmt  # judge scores: 2 decimals
            ci = f"[{show(record[key + '_ci_low'])}, {show(record[key + '_ci_high'])}]"
            expected.append((show(record[key]), ci))
        assert html[model] == expected, model
        assert markdown[model] == expected, model
        numbers = [str(record[k]) for k in ("n_videos_done", "n_videos", "n_missing")]
        assert counts[model] == numbers == [csv.at[model, k].astype(str) for k in ("n_videos_done", "n_videos",
                                                                                    "n_missing")]
        assert [md_lines[model][1], *md_lines[model][6:8]] == numbers, model
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


def two_designs_run(run_dir: Path) -> Path:
    """`AV-model`: 6 tracks, one prompt (each video its own unit); `T-model`: 4 tracks x 4 prompts (clustered
    by both). Judge `ja` scores every video, judge `jb` only those of tracks m0 and m1."""
    store = Store.open(run_dir)
    designs = {"AV-model": ([f"m{i}" for i in range(6)], ["p0"]), "T-model": (["m0", "m1", "m2", "m3"],
                                                                              ["p0", "p1", "p2", "p3"])}
    rows = []
    for model, (tracks, prompts) in designs.items():
        jobs = [Job(model=model, suite="paper", music_id=m, music_path=None, prompt_id=p, prompt=f"prompt {p}",
                    seed=0, num_frames=49) for m in tracks for p in prompts]
        store.add_jobs(jobs)
        for n, job in enumerate(jobs):
            store.record_video(job.job_id, run_dir / "videos" / f"{job.job_id}.mp4", fingerprint="fp")
            for judge in ("ja", "jb") if job.music_id in ("m0", "m1") else ("ja",):
                rows += [{"job_id": job.job_id, "judge": judge, "question_set": "paper", "question_id": q.id,
                          "mode": "greedy", "run_index": 0, "question": q.text, "raw": "", "distribution": None,
                          "options": {}, "score": float(3 + (n + i) % 5)} for i, q in enumerate(QUESTIONS)]
    store_answers(store, rows)
    store.close()
    render_report(run_dir, seed=0)
    return run_dir


def test_the_board_names_each_models_clustering(tmp_path):
    run_dir = two_designs_run(tmp_path / "designs")
    store = Store.open(run_dir)
    data = collect(store, run_dir.name)
    store.close()
    listed = "music track x prompt (T-model); video (AV-model)"
    assert [g.clustering for g in data.board.groups] == [listed, listed]
    assert [s.clustering for s in data.sections] == [listed, listed]
    page = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    text = (run_dir / "report" / "leaderboard.md").read_text(encoding="utf-8")
    judges = page[page.index('id="board-judges"'):]
    assert f"bootstrap clustering: {listed}." in judges[:judges.index("</ul>")]
    assert f"bootstrap clustering: {listed}" in text
    for output in (page, text):
        assert "clustered by music track and prompt" not in output
    records = {r["model"]: r["clustering"] for r in json.loads(
        (run_dir / "report" / "leaderboard.json").read_text(encoding="utf-8"))["leaderboard"]}
    assert records == {"AV-model": "video", "T-model": "music track x prompt"}


def test_videos_scored_are_counted_per_judge_group(tmp_path):
    run_dir = two_designs_run(tmp_path / "designs")
    store = Store.open(run_dir)
    board = collect(store, run_dir.name).board
    store.close()
    counts = _html_board_counts((run_dir / "report" / "index.html").read_text(encoding="utf-8"))
    assert counts == {"AV-model": ["6", "6", "0", "2", "0"], "T-model": ["16", "16", "0", "8", "0"]}
    assert [g.title for g in board.groups] == ["ja · greedy", "jb · greedy"]
    rows = {r.model: (r.generated, r.scored) for r in board.rows}
    assert rows == {"AV-model": (6, [6, 2]), "T-model": (16, [16, 8])}
    text = (run_dir / "report" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| Model | Videos generated |" in text and "| videos scored (jb · greedy) |" in text


def test_slice_cells_show_mean_interval_and_videos_in_html_and_markdown(run):
    page = (run / "report" / "index.html").read_text(encoding="utf-8")
    section = page[page.index('id="slices"'):]
    section = section[:section.index("</section>")]
    cells = re.findall(r'<td class="num[^"]*"[^>]*>(.*?)</td>', section, re.S)
    assert len(cells) == 3 * (2 + 2 + 3)  # 3 models x (group: 2 values, dancer: 2, genre: 3)
    for cell in cells:
        assert re.fullmatch(r'<span class="v">\d\.\d\d</span><span class="ci">\[\d\.\d\d, \d\.\d\d\]</span>'
                            r'<span class="n">n = [46]</span>', cell), cell
    text = (run / "report" / "leaderboard.md").read_text(encoding="utf-8")
    slices = text[text.index("## Slices"):]
    md_cells = [c.strip() for line in slices.splitlines() if re.match(r"\| (solo|trio|male|female|Break|Pop|Krump) ",
                                                                       line)
                for c in line.strip("| ").split(" | ")[1:]]
    assert len(md_cells) == len(cells)
    for cell in md_cells:
        assert re.fullmatch(r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\] \(n=[46]\)", cell), cell
    html_values = [re.sub(r"<[^>]+>", " ", c).split() for c in cells]
    md_values = [c.replace("(n=", "n = ").rstrip(")").split() for c in md_cells]
    assert [[v[0], " ".join(v[1:3])] for v in html_values] == [[v[0], " ".join(v[1:3])] for v in md_values]


def test_unverified_reference_numbers_reach_no_output(run):
    from mibench.report.board import build_board
    from mibench.report.references import load_references
    from mibench.report.text import leaderboard_json, markdown
    from mibench.report.views import sections

    paper = load_references()[0]
    assert paper["verified"] is True and paper["tables"]["video_quality"]["rows"]
    unverified = {**paper, "name": "unverified", "label": "reported in X, not measured", "verified": False}
    store = Store.open(run)
    data = collect(store, run.name, seed=1)
    store.close()
    assert build_board(data.agg, {}, {}, [unverified]).reference == []
    assert all(not t.reference for s in sections(data.agg, [unverified], {}) for t in s.tables)
    assert build_board(data.agg, {}, {}, [paper]).reference  # the verified document's rows are shown
    data.references = [unverified]
    document = json.loads(leaderboard_json(data))
    assert document["references"][0]["tables"] == {} and document["references"][0]["label"] == unverified["label"]
    assert "8.95" not in markdown(data).split("## Reported by papers")[1]


def test_objective_metrics_show_four_significant_digits(tmp_path):
    run_dir = tmp_path / "bas"
    store = Store.open(run_dir)
    values = {"A": (0.2712, 0.2712), "B": (0.2748, 0.2748)}  # equal at 2 decimals
    for model, bas in values.items():
        jobs = [Job(model=model, suite="paper", music_id=m, music_path=None, prompt_id="p0", prompt="prompt",
                    seed=0, num_frames=49) for m in ("m0", "m1")]
        store.add_jobs(jobs)
        for job, value in zip(jobs, bas, strict=True):
            store.record_video(job.job_id, run_dir / f"{job.job_id}.mp4", fingerprint="fp")
            store.record_metrics(job.job_id, "fp", {"pose_bas_fact": (value, {}, None)})
    store_answers(store, [{"job_id": j["job_id"], "judge": "j", "question_set": "paper",
                           "question_id": "imaging_quality", "mode": "greedy", "run_index": 0, "question": "q",
                           "raw": "5", "score": 5.0, "distribution": None, "options": {}} for j in store.jobs()])
    data = collect(store, run_dir.name)
    store.close()
    render_report(run_dir)
    assert [(r.model, r.cells[0].text, r.cells[0].best) for r in data.objective.rows] == [
        ("A", "0.2712", False), ("B", "0.2748", True)]
    assert {r.model: r.objective[0].text for r in data.board.rows} == {"A": "0.2712", "B": "0.2748"}
    assert {r.model: r.cells[0][0].text for r in data.board.rows} == {"A": "5.00", "B": "5.00"}  # 2 decimals
    page = _html_board((run_dir / "report" / "index.html").read_text(encoding="utf-8"))
    board_md = _md_board((run_dir / "report" / "leaderboard.md").read_text(encoding="utf-8"), 3)
    assert page["B"][-1][0] == board_md["B"][-1][0] == "0.2748" and page["A"][-1][0] == "0.2712"
    text = (run_dir / "report" / "leaderboard.md").read_text(encoding="utf-8")
    assert "| A | 0.2712 [0.2712, 0.2712] | 0 |" in text.split("## Objective metrics")[1]
    csv = pd.read_csv(run_dir / "report" / "leaderboard.csv").set_index("model")
    assert csv.at["B", "objective.pose_bas_fact"] == pytest.approx(0.2748, abs=1e-12)  # full precision
    assert [fmt_significant(v) for v in (0.0004321, 12.3456, 12345.6, 0.0, math.nan)] == [
        "0.0004321", "12.35", "12346", "0.000", "—"]
