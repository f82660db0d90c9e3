"""`mibench demo` end to end: every generator, the judge, the metrics and the report, then the demo's
report (plus one registered video whose prompt holds a `<script>`) opened in headless Chromium.
The screenshots are saved to test-artifacts/demo-report-first-screen.png (the first screen: the ranking)
and test-artifacts/demo-report.png (the whole page)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console
from test_report_browser import ARTIFACTS, chromium_launcher, new_page

from mibench.cards import cards
from mibench.demo import run_demo
from mibench.report import render_report
from mibench.stages.register import register_videos
from mibench.store import Store
from mibench.suite.prompts import load_question_set

HOSTILE = "<script>window.__pwned = 1</script> a dancer \"quoted\" & 'more'"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    summary = run_demo(run_dir, console=Console(stderr=True))
    return run_dir, summary


def test_demo_runs_every_stage(demo):
    run_dir, summary = demo
    assert summary["not_built"] == []
    generators = {c.name for c in cards("generator")}
    assert set(summary["generators"]) == generators
    store = Store.open(run_dir)
    videos = store.videos()
    assert {v["model"] for v in videos} == generators
    assert all(len(store.videos(m)) == 2 for m in generators)  # two synthetic music clips each
    assert all(Path(v["path"]).is_file() for v in videos)
    answers = store.answers()
    judges = {c.name for c in cards("judge")}
    assert set(summary["judges"]) == judges == {a["judge"] for a in answers}  # videollama2 and both Qwen-Omni
    assert len(answers) == len(judges) * len(videos) * len(load_question_set("paper").questions)
    assert {m["job_id"] for m in store.metrics()} == {v["job_id"] for v in videos}
    assert Path(summary["report"]).is_file()


def test_demo_report_in_chromium(demo, tmp_path):
    run_dir, _ = demo
    mine = tmp_path / "mine"
    mine.mkdir()
    first = Store.open(run_dir).videos("synthetic-onbeat")[0]
    shutil.copy(first["path"], mine / "clip.mp4")
    (mine / "clip.txt").write_text(HOSTILE)
    store = Store.open(run_dir)
    register_videos(store, mine, "own-videos")
    store.close()
    index = render_report(run_dir)

    sync_playwright = chromium_launcher()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser, page, _ = new_page(p)
        page.goto(index.as_uri())
        assert page.locator("table.leaderboard").count() >= 4
        # the first screen is the ranking: the leaderboard's header and first rows lie inside the viewport
        board = page.locator("#leaderboard")
        assert board.bounding_box()["y"] < 400
        first_rows = board.locator("tbody.measured tr")
        assert first_rows.count() == len(cards("generator")) + 1
        assert first_rows.nth(2).bounding_box()["y"] + first_rows.nth(2).bounding_box()["height"] < 900
        assert page.locator("h2").first.inner_text() == "Leaderboard"
        assert page.locator("#agreement table.agreement").count() >= 3  # three judges: three pairs compared
        page.screenshot(path=str(ARTIFACTS / "demo-report-first-screen.png"))
        page.screenshot(path=str(ARTIFACTS / "demo-report.png"), full_page=True)
        links = page.locator("a[href^='model-']")
        hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
        own = next(h for h in hrefs if "own-videos" in h)
        page.goto((index.parent / own).as_uri())
        assert page.locator("video").count() == 1
        duration = page.evaluate("""async () => {
            const video = document.querySelector('video');
            if (video.readyState < 1) {
                await new Promise((ok) => { video.onloadedmetadata = ok; video.onerror = ok; });
            }
            return video.error ? -1 : video.duration;
        }""")
        assert duration > 1.0
        assert page.get_by_text("<script>window.__pwned = 1</script>", exact=False).count() >= 1
        assert page.evaluate("window.__pwned === undefined")
        browser.close()
