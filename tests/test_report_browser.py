"""The rendered report in headless Debian Chromium (Playwright): tables, sorting, playable videos with
sound, a `<script>` prompt shown as text and never run, long prompts wrapped; screenshots saved to
`test-artifacts/report.png` and `test-artifacts/report-model.png`.

Needs `apt-get install -y chromium` and `pip install playwright` (never `playwright install`). Without
them the test fails; set MIBENCH_SKIP_BROWSER=1 to skip it on purpose. MIBENCH_CHROMIUM overrides the
browser path (default /usr/bin/chromium).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import store_answers

from mibench.media.video import write_mp4
from mibench.report import render_report
from mibench.report.views import model_page
from mibench.store import Store
from mibench.suite.jobs import Job

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = Path(os.environ.get("MIBENCH_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
HOSTILE = "<script>window.__pwned = 1</script> a dancer \"in quotes\" & 'apostrophes'"
LONG = "a female dancer wearing a Renaissance gown " * 40 + "y" * 400
QUESTIONS = ("imaging_quality", "aesthetic_quality", "overall_consistency", "style_alignment",
             "beat_alignment", "body_representation", "movement_realism", "choreography_complexity",
             "style_capture", "creative_interpretation", "overall_prompt_satisfaction")


def chromium_launcher():
    """Playwright's sync API, or a failure that says what to install (skip only when asked to)."""
    if os.environ.get("MIBENCH_SKIP_BROWSER") == "1":
        pytest.skip("MIBENCH_SKIP_BROWSER=1")
    if not CHROMIUM.is_file():
        pytest.fail(f"browser test needs Debian chromium at {CHROMIUM}: `apt-get install -y chromium` "
                    "(or set MIBENCH_CHROMIUM; MIBENCH_SKIP_BROWSER=1 skips this test)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("browser test needs the playwright package: `pip install playwright` "
                    "(do not run `playwright install`; MIBENCH_SKIP_BROWSER=1 skips this test)")
    return sync_playwright


def new_page(playwright) -> tuple:
    """(browser, a 1280x900 page, the list its console errors and page errors go to) in Chromium."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return browser, page, problems


def clip(path: Path, hue: int, seconds: float = 2.0, fps: int = 8) -> None:
    """A short clip: a moving bar over a coloured background, with a 440 Hz tone."""
    t = int(seconds * fps)
    frames = np.zeros((t, 96, 128, 3), dtype=np.uint8)
    frames[..., hue % 3] = 120
    for i in range(t):
        frames[i, 30:66, (i * 12) % 112: (i * 12) % 112 + 16] = 255
    audio = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)
    write_mp4(path, frames, fps, audio=audio, audio_sr=16000)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "browser"
    store = Store.open(run_dir)
    prompts = [HOSTILE, LONG]
    jobs = [Job(model=model, suite="paper", music_id=f"mBR{i}", music_path=None, prompt_id=f"p{i}",
                prompt=prompt, seed=0, num_frames=16) for model in ("musicinfuser", "mochi")
            for i, prompt in enumerate(prompts)]
    store.add_jobs(jobs)
    session = store.begin_session("score", {"judge": "videollama2", "mode": "greedy"}, {"mibench": "0.1.0"})
    for n, job in enumerate(jobs):
        path = run_dir / "videos" / job.model / f"{job.job_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        clip(path, n)
        store.record_video(job.job_id, path, info={"fps": 8, "num_frames": 16}, fingerprint="fp")
        store_answers(store, [
            {"job_id": job.job_id, "judge": "videollama2", "question_set": "paper", "question_id": qid,
             "mode": "greedy", "run_index": 0, "question": f"Rate {qid} <0-10>",
             "raw": "<img src=x onerror='window.__pwned=2'>" if q == n else str((n * 3 + q) % 5 + 5),
             "score": None if q == n else float((n * 3 + q) % 5 + 5), "distribution": None, "options": {}}
            for q, qid in enumerate(QUESTIONS)])
    store.end_session(session)
    store.close()
    return render_report(run_dir)


def test_report_in_chromium(report):
    sync_playwright = chromium_launcher()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser, page, problems = new_page(p)

        page.goto(report.as_uri())
        # the ranking first, then dance, video, prompt alignment and summary tables
        assert page.locator("table.leaderboard").count() == 5
        assert page.locator("table.leaderboard").first.get_attribute("id") == "leaderboard"
        assert page.locator("table.leaderboard tbody.reference").count() == 4  # the paper's rows, labelled
        assert "reported in the musicinfuser paper, not measured" in \
            page.locator("tbody.reference").first.inner_text().lower()
        assert page.locator("svg.chart").count() == 3  # the ranking's scores; the judge section's two
        assert page.evaluate("window.__pwned === undefined")
        board = page.locator("#leaderboard")
        rows = lambda: board.locator("tbody.measured tr").evaluate_all("rs => rs.map(r => r.dataset.model)")  # noqa: E731
        assert len(rows()) == 2
        before = rows()
        header = board.locator("thead tr").last.locator("th").nth(0)  # Model
        header.click()
        assert header.get_attribute("aria-sort") == "descending"  # the inline script ran (CSP hash ok)
        assert rows() == sorted(before, reverse=True)
        assert not page.locator("details#summary").evaluate("d => d.open")  # run details start collapsed
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

        page.goto((report.parent / model_page("musicinfuser")).as_uri())
        assert page.locator("video").count() == 2
        media = page.evaluate("""async () => {
            const video = document.querySelector('video');
            if (video.readyState < 1) {
                await new Promise((ok) => { video.onloadedmetadata = ok; video.onerror = ok; });
            }
            if (!video.error) { await video.play(); await new Promise((ok) => setTimeout(ok, 600)); }
            return {error: video.error && video.error.code, duration: video.duration,
                    time: video.currentTime, audio: video.webkitAudioDecodedByteCount};
        }""")
        assert media["error"] is None and media["duration"] > 1.5, media
        assert media["time"] > 0 and media["audio"] > 0, media  # plays, with its music
        prompt = page.locator("dd.prompt").first.inner_text()
        assert prompt.startswith("<script>window.__pwned = 1</script>")
        assert page.get_by_text("<img src=x onerror='window.__pwned=2'>").count() == 2
        assert page.get_by_text("missing", exact=True).count() == 2  # shown as missing, not 0
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # long prompt wraps
        page.screenshot(path=str(ARTIFACTS / "report-model.png"), full_page=True)
        assert page.evaluate("window.__pwned === undefined")
        browser.close()
    assert not problems, problems
