"""A rater's study page in headless Debian Chromium (Playwright), served by uvicorn in a thread: both videos
and the one music track play together and follow pause and seeking, every question is answered by mouse
or keyboard, a reload mid-way resumes at the first unanswered question, and the store then holds exactly
the votes given. Screenshots: `test-artifacts/study-page.png` and `test-artifacts/study-page-mid.png`.

Launched as tests/test_report_browser.py launches Chromium (MIBENCH_SKIP_BROWSER=1 skips it).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import uvicorn
from study_run import build_run, free_port, make_study
from test_report_browser import ARTIFACTS, chromium_launcher, new_page

from mibench.store import Store
from mibench.study.model import rater_links
from mibench.study.server import make_app

pytestmark = pytest.mark.browser
# (side, how): mouse clicks and both key bindings of every side
PLAN = [("left", "#vote-left"), ("right", "2"), ("tie", "#vote-tie"), ("left", "ArrowLeft"), ("right", "#vote-right"),
        ("tie", "t"), ("left", "1"), ("right", "ArrowRight"), ("tie", "0")]
PLAYBACK = """() => {
    const [left, right, music] = ['left', 'right', 'music'].map((id) => document.getElementById(id));
    return {left: left.currentTime, right: right.currentTime, music: music.currentTime, paused: music.paused,
            videos_paused: left.paused && right.paused, muted: left.muted && right.muted,
            audio: music.webkitAudioDecodedByteCount, error: [left, right, music].map((m) => m.error && m.error.code)};
}"""
# wait_for_function predicates are always functions: Playwright polls a bare expression with eval, which the
# page's Content-Security-Policy (rightly) forbids
CURRENT = "() => [document.getElementById('study').dataset.pair, document.getElementById('study').dataset.question]"


@pytest.fixture
def served(tmp_path):
    """Playwright, and a run with a study (2 raters x (2 pairs + 2 checks) x 4 questions) served on a free port."""
    sync_playwright = chromium_launcher()
    run_dir = tmp_path / "run"
    build_run(run_dir)
    study_id = make_study(run_dir, per_rater=2)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(run_dir, study_id), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield sync_playwright, run_dir, study_id, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def vote(page, side: str, how: str) -> tuple[str, str, str]:
    """Answer the current question by clicking `how` (a selector) or pressing it (a key); waits for the next."""
    pair, question = page.evaluate(CURRENT)
    if how.startswith("#"):
        page.click(how)
    else:
        page.keyboard.press(how)
    page.wait_for_function(f"([p, q]) => String(({CURRENT})()) !== String([p, q])", arg=[pair, question])
    return pair, question, side


def test_rating_a_study_in_chromium(served):
    sync_playwright, run_dir, study_id, base = served
    store = Store.open(run_dir)
    [link, _] = rater_links(store, study_id, base)
    sequence = json.loads(store.db.execute("SELECT sequence FROM study_raters WHERE token=?",
                                           (link["token"],)).fetchone()[0])
    store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    given: list[tuple[str, str, str]] = []
    with sync_playwright() as p:
        browser, page, problems = new_page(p)
        statuses: list[tuple[int, str]] = []
        page.on("response", lambda r: statuses.append((r.status, r.url)))
        page.goto(link["url"])
        page.wait_for_function(f"() => ({CURRENT})()[0] !== ''")
        assert page.locator("#progress").inner_text() == "pair 1 of 4"
        assert page.evaluate(CURRENT) == [sequence[0]["pair_id"], "visual_quality"]

        page.click("#play")  # the mouse, then the keyboard
        page.wait_for_timeout(700)
        first = page.evaluate(PLAYBACK)
        page.wait_for_timeout(400)
        second = page.evaluate(PLAYBACK)
        for now in (first, second):
            assert now["error"] == [None, None, None] and now["muted"] and not now["paused"], now
            assert abs(now["left"] - now["music"]) < 0.25 and abs(now["right"] - now["music"]) < 0.25, now
        assert second["left"] > first["left"] > 0.2 and second["right"] > first["right"] > 0.2, (first, second)
        assert second["audio"] > 0, second  # the music is decoded and played
        page.screenshot(path=str(ARTIFACTS / "study-page.png"), full_page=True)
        page.keyboard.press(" ")
        page.wait_for_function("() => document.getElementById('music').paused")
        page.evaluate("() => { const s = document.getElementById('seek'); s.value = '300'; "
                      "s.dispatchEvent(new Event('input')); }")
        page.wait_for_timeout(300)
        paused = page.evaluate(PLAYBACK)
        assert paused["paused"] and paused["videos_paused"], paused
        assert abs(paused["music"] - 0.6) < 0.05 and abs(paused["left"] - 0.6) < 0.15 \
            and abs(paused["right"] - 0.6) < 0.15, paused  # seeking moves both videos

        for side, how in PLAN[:6]:  # pair 1 (4 questions), then 2 of pair 2
            given.append(vote(page, side, how))
        assert page.locator("#progress").inner_text() == "pair 2 of 4"
        page.screenshot(path=str(ARTIFACTS / "study-page-mid.png"), full_page=True)
        page.reload()
        page.wait_for_function(f"() => ({CURRENT})()[0] !== ''")
        assert page.evaluate(CURRENT) == [sequence[1]["pair_id"], "motion_realism"]  # resumed, nothing lost
        assert page.locator("#question-count").inner_text() == "question 3 of 4"
        assert page.locator("#question").inner_text() == "Whose motion is more realistic?"
        for n in range(16 - len(given)):
            given.append(vote(page, *PLAN[n % len(PLAN)]))
        assert page.locator("#finished").is_visible() and not page.locator("#stage").is_visible()
        assert page.locator("#progress").inner_text() == "All 4 pairs rated."
        page.keyboard.press("1")  # nothing left to answer: no request, no error
        page.wait_for_timeout(200)
        browser.close()
    assert not problems, problems
    assert all(status < 400 for status, _ in statuses), statuses
    assert any(status == 206 and "/media/" in url for status, url in statuses), statuses  # Range requests

    store = Store.open(run_dir)
    votes = [dict(r) for r in store.db.execute("SELECT * FROM study_votes")]
    store.close()
    assert {(v["pair_id"], v["question_id"], v["side"]) for v in votes} == set(given) and len(votes) == 16
    assert {v["token"] for v in votes} == {link["token"]}
    lefts = {e["pair_id"]: e["left"] for e in sequence}
    for v in votes:
        expected = {"left": lefts[v["pair_id"]], "right": "ab"[lefts[v["pair_id"]] == "a"], "tie": "tie"}
        assert v["choice"] == expected[v["side"]]
