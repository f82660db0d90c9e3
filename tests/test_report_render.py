"""Rendering: escaping of hostile prompts, long prompts, empty and partly scored runs, CSV/JSON files."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import store_answers

from mibench.errors import StoreError
from mibench.report import render_report
from mibench.report.aggregate import aggregate, leaderboard
from mibench.report.text import collect, markdown
from mibench.report.views import model_page
from mibench.store import Store
from mibench.suite.jobs import Job

HOSTILE = "<script>window.__pwned=1</script> \"quoted\" 'single' & <b>bold</b>"
LONG = "a dancer " + "in an ever longer scene " * 150 + "x" * 600
EVIL_MODEL = 'model<"&>'
QUESTIONS = ("imaging_quality", "aesthetic_quality", "overall_consistency", "style_alignment",
             "beat_alignment", "body_representation", "movement_realism", "choreography_complexity",
             "style_capture", "creative_interpretation", "overall_prompt_satisfaction")


def make_job(model: str, music: str, prompt: str) -> Job:
    return Job(model=model, suite="paper", music_id=music, music_path=None, prompt_id="p", prompt=prompt,
               seed=0, num_frames=49)


def markdown_table(run_dir: Path, seed: int = 0) -> str:
    store = Store.open(run_dir)
    try:
        return markdown(collect(store, run_dir.name, seed=seed))
    finally:
        store.close()


def build_run(run_dir: Path, *, scored: bool = True) -> None:
    """Models `good` (3 videos, all scored), EVIL_MODEL (3 videos, 2 scored) and `idle` (no videos)."""
    store = Store.open(run_dir)
    prompts = [HOSTILE, LONG, "a plain prompt"]
    jobs = [make_job(m, f"m{i}", p) for m in ("good", EVIL_MODEL) for i, p in enumerate(prompts)]
    store.add_jobs([*jobs, make_job("idle", "m0", "a plain prompt")])
    session = store.begin_session("generate", {"models": ["good"], "note": HOSTILE}, {"mibench": "0.1.0"})
    store.end_session(session)
    for job in jobs:
        store.record_video(job.job_id, run_dir / "videos" / job.model / f"{job.job_id}.mp4", info={"fps": 8},
                           fingerprint="fp")
    if scored:
        rows = []
        for n, job in enumerate(jobs[:5]):
            for q, qid in enumerate(QUESTIONS):
                score = None if (n, q) == (1, 0) else float((n + q) % 7 + 2)
                raw = "<img src=x onerror=window.__pwned=2> no idea" if score is None else f"{score:g}"
                rows.append({"job_id": job.job_id, "judge": "videollama2", "question_set": "paper",
                             "question_id": qid, "mode": "greedy", "run_index": 0, "question": f"q {qid}",
                             "raw": raw, "score": score, "distribution": None, "options": {"runs": 1}})
        store_answers(store, rows)
        store.record_metrics(jobs[0].job_id, "fp", {"bas": (0.25, {"sigma_s": 0.05, "fps": 8}, None)})
        store.record_metrics(jobs[1].job_id, "fp", {"bas": (None, {"sigma_s": 0.05, "fps": 8}, "no motion <beats>")})
    store.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "demo"
    build_run(run_dir)
    render_report(run_dir, seed=3)
    return run_dir


def read(run: Path, name: str) -> str:
    return (run / "report" / name).read_text(encoding="utf-8")


def test_files_written(run):
    names = {p.name for p in (run / "report").iterdir()}
    assert {"index.html", "leaderboard.csv", "leaderboard.json", model_page("good"), model_page(EVIL_MODEL),
            model_page("idle")} <= names
    assert re.fullmatch(r"model-model-[0-9a-f]{8}\.html", model_page(EVIL_MODEL))
    assert not any(p.suffix == ".tmp" for p in (run / "report").iterdir())


def test_element_ids_are_unique(run):
    for page in (run / "report").glob("*.html"):
        ids = re.findall(r'\sid="([^"]+)"', page.read_text(encoding="utf-8"))
        assert ids and len(ids) == len(set(ids)), (page.name, sorted(i for i in ids if ids.count(i) > 1))


def test_hostile_text_is_escaped(run):
    for name in ("index.html", model_page("good"), model_page(EVIL_MODEL)):
        page = read(run, name)
        assert page.count("<script") == 1, name  # only the report's own sorting script
        assert "window.__pwned=1</script>" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
        assert 'model<"&>' not in page
    page = read(run, model_page("good"))
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt; &#34;quoted&#34; &#39;single&#39; &amp;" in page
    assert "&lt;img src=x onerror=window.__pwned=2&gt; no idea" in page
    assert "no motion &lt;beats&gt;" in page
    assert "model&lt;&#34;&amp;&gt;" in read(run, "index.html")
    assert "Content-Security-Policy" in page and "'sha256-" in page


def test_long_prompt_is_complete_and_wrapped(run):
    page = read(run, model_page("good"))
    assert '<dd class="prompt">' + LONG + "</dd>" in page
    assert "overflow-wrap: anywhere" in page


def test_leaderboards_like_the_paper_with_reference_rows(run):
    page = read(run, "index.html")
    for title in ("Dance Quality", "Video Quality", "Prompt Alignment", "Summary", "Objective metrics"):
        assert f"<h3>{title}</h3>" in page or f"<h2>{title}</h2>" in page, title
    assert page.count('class="sortable leaderboard"') == 5 and page.count('class="sortable leaderboard board"') == 1
    assert "reported in the MusicInfuser paper, not measured" in page and "MusicInfuser (Ours)" in page
    assert "7.95" in page
    assert "0.2448" in page  # Table 8, objective metrics
    assert 'class="num best"' in page and "<svg" in page and "Paired comparisons" in page
    assert "2 / 3" in page  # EVIL_MODEL: two of three videos scored

def test_reference_rows_are_optional(run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    plain = render_report(copy, reference=False, seed=3).read_text(encoding="utf-8")
    assert "not measured" not in plain and "MusicInfuser (Ours)" not in plain


def test_model_page_shows_videos_answers_and_metrics(run):
    page = read(run, model_page(EVIL_MODEL))
    assert page.count("<video controls") == 0  # no files on disk: said so instead
    assert page.count("video file not found") == 3
    assert "No judge answers yet." in page  # the unscored third video
    good = read(run, model_page("good"))
    assert '<span class="miss">missing</span>' in good
    assert "sigma_s = 0.05" in good and "0.2500" in good and "undefined" in good
    assert "m0" in good and "<dt>Seed</dt><dd>0</dd>" in good


def test_csv_and_json_match_the_aggregate(run):
    store = Store.open(run)
    expected = leaderboard(aggregate(store, seed=3))
    store.close()
    csv = pd.read_csv(run / "report" / "leaderboard.csv", keep_default_na=False, na_values=[""])
    document = json.loads(read(run, "leaderboard.json"))
    from_json = pd.DataFrame(document["leaderboard"])
    assert list(csv.columns) == list(expected.columns) == list(from_json.columns)
    for frame in (csv, from_json):
        for column in expected.columns:
            left, right = frame[column], expected[column]
            if pd.api.types.is_numeric_dtype(right):
                assert ((left.astype(float) - right.astype(float)).abs().fillna(0) < 1e-9).all(), column
                assert (left.isna() == right.isna()).all(), column
            else:
                assert left.astype(str).tolist() == right.astype(str).tolist(), column
    good = csv.set_index("model").loc["good"]
    assert good["n_videos"] == 3 and good["n_missing"] == 1 and good["objective.bas_missing"] == 1
    assert document["seed"] == 3 and "paper" not in document["definitions"]
    assert document["references"][0]["tables"]["dance_quality"]["rows"][3]["dance_quality"] == 7.95


def test_same_seed_same_bytes(run):
    before = {n: read(run, n) for n in ("index.html", "leaderboard.csv", "leaderboard.json", "leaderboard.md")}
    render_report(run, seed=3)
    assert before == {n: read(run, n) for n in before}


def test_markdown_table(run):
    text = markdown_table(run, seed=3)
    assert "### Dance Quality" in text and "| Model | Videos |" in text
    assert "model<\"&>" in text and "2 / 3" in text
    assert re.search(r"\| good \| 3 / 3 \| \*?\*?\d\.\d\d", text)


@pytest.mark.parametrize("with_videos", [False, True])
def test_run_without_scores(tmp_path, with_videos):
    run_dir = tmp_path / "empty"
    if with_videos:
        build_run(run_dir, scored=False)
    else:
        Store.open(run_dir).close()
    page = render_report(run_dir).read_text(encoding="utf-8")
    assert "No scores yet" in page and 'class="sortable leaderboard"' not in page
    assert json.loads(read(run_dir, "leaderboard.json"))["leaderboard"] == []
    assert "No scores yet" in markdown_table(run_dir)
    if with_videos:
        assert "No scores yet for this model." in read(run_dir, model_page("good"))


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no results store"):
        render_report(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_expected_mode_answers_show_their_spread(tmp_path):
    import json

    from mibench.report import render_report
    from mibench.report.render import distribution_sd
    from mibench.report.views import model_page
    from mibench.store import Store
    from mibench.suite.jobs import Job

    store = Store.open(tmp_path)
    job = Job(model="m", suite="aist", music_id="t", music_path=None, prompt_id="b", prompt="p", seed=0,
              num_frames=16)
    store.add_jobs([job])
    store.record_video(job.job_id, tmp_path / "v.mp4", fingerprint="fp")
    dist = {str(k): 0.0 for k in range(11)} | {"4": 0.5, "8": 0.5}
    store_answers(store, [{"job_id": job.job_id, "judge": "j", "question_set": "paper",
                           "question_id": "imaging_quality", "mode": "expected", "run_index": 0,
                           "question": "q", "raw": "6", "score": 6.0,
                           "distribution": dist, "options": {}}])
    store.close()
    assert distribution_sd(json.dumps(dist)) == 2.0 and distribution_sd(None) is None
    page = (render_report(tmp_path).parent / model_page("m")).read_text()
    assert "± 2.00" in page


def test_csv_cells_are_never_spreadsheet_formulas(tmp_path):
    import csv

    store = Store.open(tmp_path)
    formula = '=HYPERLINK("http://evil","click")'
    job = make_job(formula, "m0", "a plain prompt")
    store.add_jobs([job])
    store.record_video(job.job_id, tmp_path / "v.mp4", fingerprint="fp")
    store_answers(store, [{"job_id": job.job_id, "judge": "@cmd", "question_set": "paper",
                           "question_id": "imaging_quality", "mode": "greedy", "run_index": 0, "question": "q",
                           "raw": "-3", "score": -3.0, "distribution": None, "options": {}}])
    store.close()
    render_report(tmp_path)
    with (tmp_path / "report" / "leaderboard.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["model"] == "'" + formula and rows[0]["judge"] == "'@cmd"
    assert float(rows[0]["imaging_quality"]) == -3.0  # numbers stay numbers
    assert not any(str(v).startswith(("=", "+", "@")) for row in rows for v in row.values())


def test_answers_excluded_for_low_valid_mass_are_marked_on_model_pages(tmp_path):
    store = Store.open(tmp_path)
    jobs = [make_job("m", f"t{i}", "p") for i in range(3)]
    store.add_jobs(jobs)
    for job, mass, score in zip(jobs, (0.9, 0.2, None), (6.0, 3.25, 5.0), strict=True):
        store.record_video(job.job_id, tmp_path / f"{job.job_id}.mp4", fingerprint="fp")
        store_answers(store, [{"job_id": job.job_id, "judge": "j", "question_set": "paper",
                               "question_id": "imaging_quality", "mode": "expected", "run_index": 0,
                               "question": "q", "raw": "", "score": score, "distribution": None,
                               "valid_mass": mass, "options": {}}])
    store.close()
    page = (render_report(tmp_path, min_valid_mass=0.5).parent / model_page("m")).read_text()
    assert page.count("excluded (valid mass &lt; 0.5)") == 1  # the 0.2 answer only (none recorded: kept)
    marked = page[page.index("excluded (valid mass"):]
    assert "3.25" in marked[:marked.index("</td>")]  # its parsed score, shown apart, not as the score
    assert '<span class="v">5.50</span>' in page  # the model's score: (6 + 5) / 2, the excluded answer left out
    flagged = (render_report(tmp_path).parent / model_page("m")).read_text()
    assert "excluded (valid mass" not in flagged and "3.25" in flagged  # without the threshold: only flagged
