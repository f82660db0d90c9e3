"""Human preference studies: the store tables, the raters' web app (FastAPI TestClient) and a served study
killed with SIGKILL mid-way (a subprocess): forged or replayed votes are refused with nothing written,
media are served by token + pair + side only (Range -> 206), no recorded vote is lost."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from study_run import COMMON, build_run, clip, free_port, make_study

from mibench.store import Store
from mibench.study import server
from mibench.study.model import StudyError, create_study, load_questions, load_study, rater_links
from mibench.study.server import make_app, serve
from mibench.study.votes import progress, record_vote, votes_csv

QUESTIONS = ("visual_quality", "music_alignment", "motion_realism", "dance_complexity")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("study") / "run"
    build_run(run_dir)
    return run_dir, make_study(run_dir, per_rater=2)


@pytest.fixture
def run(template, tmp_path) -> tuple[Path, str]:
    """A fresh copy of the run with its study (alpha vs beta, 2 raters x (2 pairs + 2 checks))."""
    shutil.copytree(template[0], tmp_path / "run")
    return tmp_path / "run", template[1]


def rows(run_dir: Path, query: str, args: tuple = ()) -> list[dict]:
    store = Store.open(run_dir)
    try:
        return [dict(r) for r in store.db.execute(query, args)]
    finally:
        store.close()


def sequences(run_dir: Path, study_id: str) -> list[tuple[str, list[dict]]]:
    return [(r["token"], json.loads(r["sequence"]))
            for r in rows(run_dir, "SELECT * FROM study_raters WHERE study=? ORDER BY rowid", (study_id,))]


def count_votes(run_dir: Path) -> int:
    return rows(run_dir, "SELECT COUNT(*) AS n FROM study_votes")[0]["n"]


def test_study_tables(run):
    run_dir, study_id = run
    [study] = rows(run_dir, "SELECT * FROM studies")
    assert (study["id"], study["model_a"], study["model_b"]) == (study_id, "alpha", "beta")
    settings = json.loads(study["settings"])
    assert [q["id"] for q in settings["questions"]] == list(QUESTIONS)
    assert [q["judge"] for q in settings["questions"]] == ["video_quality", "beat_alignment", "movement_realism",
                                                           "choreography_complexity"]
    assert {k: settings[k] for k in ("allow_tie", "per_rater", "checks", "seed")} == \
        {"allow_tie": True, "per_rater": 2, "checks": 2, "seed": 7}
    items = rows(run_dir, "SELECT * FROM study_items WHERE study=?", (study_id,))
    jobs = {j["job_id"]: j for j in rows(run_dir, "SELECT * FROM jobs")}
    pairs = [i for i in items if i["kind"] == "pair"]
    assert len(pairs) == COMMON  # the item only alpha has and the failed beta video are left out
    for item in pairs:
        assert jobs[item["job_a"]]["model"] == "alpha" and jobs[item["job_b"]]["model"] == "beta"
        assert jobs[item["job_a"]]["item_id"] == jobs[item["job_b"]]["item_id"] == item["item_id"]
        assert item["expected"] is None and re.fullmatch(r"[0-9a-f]{12}", item["pair_id"])
    [beat] = [i for i in items if i["kind"] == "beat"]
    assert (beat["job_a"], beat["job_b"], beat["expected"]) == ("_check-onbeat", "_check-offbeat", "a")
    assert (run_dir / "study" / study_id / "checks" / "onbeat.mp4").is_file()
    [same] = [i for i in items if i["kind"] == "same"]
    assert same["job_a"] == same["job_b"] and same["expected"] == "tie" and same["job_a"] in jobs
    assert not rows(run_dir, "SELECT * FROM jobs WHERE model LIKE '\\_%' ESCAPE '\\'")  # checks are not jobs
    (token_1, seq_1), (token_2, seq_2) = sequences(run_dir, study_id)
    assert token_1 != token_2 and len(token_1) >= 32
    checks = {beat["pair_id"], same["pair_id"]}
    for seq in (seq_1, seq_2):
        assert len(seq) == 4 and checks <= {e["pair_id"] for e in seq} and {e["left"] for e in seq} <= {"a", "b"}
    shown = [e["pair_id"] for seq in (seq_1, seq_2) for e in seq if e["pair_id"] not in checks]
    assert set(shown) == {p["pair_id"] for p in pairs}  # per_rater 2 of 3: raters take pairs in turn


def test_sequences_follow_the_seed(run):
    run_dir, study_id = run
    again = make_study(run_dir, per_rater=2, beat_checks=False)
    items = {r["pair_id"]: (r["kind"], r["item_id"], r["job_a"]) for r in rows(run_dir, "SELECT * FROM study_items")}
    shown = [[(items[e["pair_id"]], e["left"]) for e in seq if items[e["pair_id"]][0] == "pair"]
             for _, seq in sequences(run_dir, study_id)]
    shown_again = [[(items[e["pair_id"]], e["left"]) for e in seq if items[e["pair_id"]][0] == "pair"]
                   for _, seq in sequences(run_dir, again)]
    assert [{p for p, _ in s} for s in shown] == [{p for p, _ in s} for s in shown_again]
    kinds = [items[e["pair_id"]][0] for _, seq in sequences(run_dir, again) for e in seq]
    assert kinds.count("same") == 4 and "beat" not in kinds  # without beat checks, both checks are 'same'


def test_bad_settings_refused(run, tmp_path):
    run_dir, _ = run
    store = Store.open(run_dir)
    try:
        for options in ({"raters": 0}, {"raters": 1, "per_rater": 4}, {"raters": 1, "checks": -1}):
            with pytest.raises(StudyError):
                create_study(store, "alpha", "beta", **options)
        with pytest.raises(StudyError, match="no item"):
            create_study(store, "alpha", "nobody", raters=1)
        bad = tmp_path / "bad.yaml"
        bad.write_text("questions:\n  - {id: 'a/b', text: x, judge: null}\n")
        with pytest.raises(StudyError, match="malformed question"):
            load_questions(bad)
        with pytest.raises(StudyError, match="no study"):
            load_study(store, "nope")
    finally:
        store.close()


def test_forged_votes_refused_with_nothing_written(run, tmp_path):
    run_dir, study_id = run
    (token, seq), (other, other_seq) = sequences(run_dir, study_id)
    foreign = next(e["pair_id"] for e in other_seq if e["pair_id"] not in {x["pair_id"] for x in seq})
    pair = seq[0]["pair_id"]
    with TestClient(make_app(run_dir, study_id)) as client:
        ok = client.post(f"/r/{token}/vote", json={"pair_id": pair, "question_id": QUESTIONS[0], "side": "left"})
        assert ok.status_code == 200 and ok.json()["question"]["id"] == QUESTIONS[1]
        forged = [
            ("x" + token[1:], {"pair_id": pair, "question_id": QUESTIONS[1], "side": "left"}, 404),
            (token, {"pair_id": foreign, "question_id": QUESTIONS[1], "side": "left"}, 400),
            (token, {"pair_id": "0123456789ab", "question_id": QUESTIONS[1], "side": "left"}, 400),
            (token, {"pair_id": pair, "question_id": QUESTIONS[1], "side": "up"}, 400),
            (token, {"pair_id": pair, "question_id": QUESTIONS[1], "side": "a"}, 400),  # a choice, not a side
            (token, {"pair_id": pair, "question_id": "nope", "side": "left"}, 400),
            (token, {"pair_id": pair, "question_id": QUESTIONS[0], "side": "right"}, 409),  # replay
            (token, {"pair_id": pair, "question_id": QUESTIONS[1]}, 422),
        ]
        for who, body, status in forged:
            response = client.post(f"/r/{who}/vote", json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["detail"]
        assert client.post(f"/r/{token}/vote", content=b"not json",
                           headers={"content-type": "application/json"}).status_code == 422
    votes = rows(run_dir, "SELECT * FROM study_votes")
    assert [(v["token"], v["pair_id"], v["question_id"], v["side"]) for v in votes] == \
        [(token, pair, QUESTIONS[0], "left")]  # the first vote stays, nothing else was written
    assert votes[0]["choice"] == seq[0]["left"] and votes[0]["study"] == study_id

    no_tie = tmp_path / "no-tie.yaml"
    no_tie.write_text("allow_tie: false\nquestions:\n  - {id: q1, text: 'Which one?', judge: null}\n")
    strict = make_study(run_dir, questions=no_tie, raters=1, checks=1)
    [(strict_token, strict_seq)] = sequences(run_dir, strict)
    store = Store.open(run_dir)
    try:
        with pytest.raises(StudyError, match="left, right"):
            record_vote(store, strict_token, strict_seq[0]["pair_id"], "q1", "tie")
        with pytest.raises(StudyError, match="unknown rater link"):  # a token of another study of the run
            record_vote(store, strict_token, strict_seq[0]["pair_id"], "q1", "left", study_id=study_id)
        items = {r["pair_id"]: r for r in store.db.execute("SELECT * FROM study_items WHERE study=?", (strict,))}
        assert [i["expected"] for i in items.values() if i["kind"] == "same"] == [None]  # no tie, no right answer
    finally:
        store.close()
    assert count_votes(run_dir) == 1


def test_media_by_token_pair_and_side_only(run):
    run_dir, study_id = run
    (token, seq), (_, other_seq) = sequences(run_dir, study_id)
    items = {r["pair_id"]: r for r in rows(run_dir, "SELECT * FROM study_items")}
    videos = {r["job_id"]: r["path"] for r in rows(run_dir, "SELECT * FROM videos")}
    entry = next(e for e in seq if items[e["pair_id"]]["kind"] == "pair")
    left_job = items[entry["pair_id"]]["job_a" if entry["left"] == "a" else "job_b"]
    foreign = next(e["pair_id"] for e in other_seq if e["pair_id"] not in {x["pair_id"] for x in seq})
    with TestClient(make_app(run_dir, study_id)) as client:
        url = f"/media/{token}/{entry['pair_id']}"
        whole = client.get(f"{url}/left")
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.content == (run_dir / videos[left_job]).read_bytes()
        assert whole.headers["accept-ranges"] == "bytes"
        assert "last-modified" not in whole.headers and "etag" not in whole.headers  # file times are no clue
        part = client.get(f"{url}/right", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and len(part.content) == 100
        assert re.fullmatch(r"bytes 100-199/\d+", part.headers["content-range"])
        beat = next(e for e in seq if items[e["pair_id"]]["kind"] == "beat")
        assert client.get(f"/media/{token}/{beat['pair_id']}/left").content[4:8] == b"ftyp"
        for bad in (f"/media/{token}/..%2F..%2Fetc%2Fpasswd/left", f"/media/{token}/../../etc/passwd",
                    f"/media/{token}/{entry['pair_id']}/music", f"/media/{token}/{entry['pair_id']}/..%2Fleft",
                    f"/media/{token}/{foreign}/left", f"/media/{'y' * 32}/{entry['pair_id']}/left",
                    f"/media/{token}/{items[entry['pair_id']]['job_a']}/left"):
            response = client.get(bad)
            assert response.status_code == 404, bad
            assert b"ftyp" not in response.content


def test_the_music_comes_from_the_longer_video(run):
    run_dir, study_id = run
    for video in rows(run_dir, "SELECT v.path, j.model FROM videos v JOIN jobs j USING (job_id) "
                               "WHERE v.status = 'done' AND j.model = 'beta'"):
        clip(run_dir / video["path"], 1, seconds=1.0)  # beta's videos now last 1 s, alpha's 2 s
    items = {r["pair_id"]: r for r in rows(run_dir, "SELECT * FROM study_items")}
    seen = set()
    with TestClient(make_app(run_dir, study_id)) as client:
        for token, seq in sequences(run_dir, study_id):
            sides = {e["pair_id"]: e["left"] for e in seq}
            state = client.get(f"/r/{token}/state").json()
            while not state["finished"]:
                pair = state["pair"]["id"]
                if items[pair]["kind"] == "pair":
                    alpha = "left" if sides[pair] == "a" else "right"
                    assert state["pair"]["music"] == f"/media/{token}/{pair}/{alpha}"
                    seen.add(alpha)
                state = client.post(f"/r/{token}/vote", json={"pair_id": pair, "question_id":
                                                              state["question"]["id"], "side": "tie"}).json()
    assert seen == {"left", "right"}  # alpha was on both sides, and its music played each time


def test_page_state_and_resume(run):
    run_dir, study_id = run
    (token, seq), _ = sequences(run_dir, study_id)
    with TestClient(make_app(run_dir, study_id)) as client:
        page = client.get(f"/r/{token}")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        script = re.search(r"<script>(.*)</script>", page.text, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"script-src 'sha256-{digest}'" in csp and "media-src 'self'" in csp and "default-src 'none'" in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        unknown = client.get(f"/r/{'z' * 32}")
        assert (unknown.status_code, unknown.text) == (404, "not found")
        state = client.get(f"/r/{token}/state").json()
        assert (state["total"], state["done"], state["finished"], state["allow_tie"]) == (4, 0, False, True)
        assert state["pair"]["index"] == 1 and state["pair"]["id"] == seq[0]["pair_id"]
        assert state["pair"]["left"] == state["pair"]["music"] == f"/media/{token}/{seq[0]['pair_id']}/left"
        text = json.dumps(state)
        assert not any(secret in text for secret in ("alpha", "beta", study_id, "_check", "mBR"))  # blinded
        for question in QUESTIONS[:3]:
            client.post(f"/r/{token}/vote", json={"pair_id": seq[0]["pair_id"], "question_id": question,
                                                  "side": "tie"})
        state = client.get(f"/r/{token}/state").json()
        assert (state["pair"]["index"], state["question"]) == (1, {"id": QUESTIONS[3], "text":
                                                                   "Whose dance is more complex?", "index": 4})
        state = client.post(f"/r/{token}/vote", json={"pair_id": seq[0]["pair_id"], "question_id": QUESTIONS[3],
                                                       "side": "right"}).json()
        assert (state["done"], state["pair"]["index"], state["question"]["index"]) == (1, 2, 1)
        for entry in seq[1:]:
            for question in QUESTIONS:
                state = client.post(f"/r/{token}/vote", json={"pair_id": entry["pair_id"], "question_id": question,
                                                              "side": "left"}).json()
        assert state["finished"] and state["done"] == 4 and state["pair"] is None
    store = Store.open(run_dir)
    try:
        assert progress(store, token)["done"] == 4
        table = list(csv.DictReader(io.StringIO(votes_csv(store, study_id))))
        links = rater_links(store, study_id, "https://study.example/")
    finally:
        store.close()
    assert len(table) == 16 and token not in json.dumps(table)
    assert {r["rater"] for r in table} == {"rater-1"}
    pairs = [r for r in table if r["kind"] == "pair"]
    assert all(r["chosen_model"] in ("alpha", "beta", "tie") for r in pairs)
    assert {r["expected"] for r in table if r["kind"] == "beat" and r["question_id"] == "music_alignment"} == {"a"}
    assert {r["expected"] for r in table if r["kind"] == "beat" and r["question_id"] != "music_alignment"} == {""}
    assert {r["expected"] for r in table if r["kind"] == "same"} == {"tie"}
    assert [link["url"] for link in links] == [f"https://study.example/r/{t}" for t, _ in sequences(run_dir, study_id)]


def test_serve_binds_beyond_localhost_only_when_allowed(run, monkeypatch, capsys):
    run_dir, study_id = run
    calls = []
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **options: calls.append(options))
    with pytest.raises(StudyError, match="refusing to serve"):
        serve(run_dir, study_id, host="0.0.0.0")
    assert not calls
    serve(run_dir, study_id, host="0.0.0.0", port=8123, allow_remote=True)
    assert calls == [{"host": "0.0.0.0", "port": 8123, "log_level": "warning", "access_log": False}]
    assert capsys.readouterr().err.startswith("warning: serving study")
    with pytest.raises(StudyError, match="no study"):
        serve(run_dir, "nope")


def start_server(run_dir: Path, study_id: str, token: str) -> tuple[subprocess.Popen, str]:
    """`serve` in a subprocess on a free port; returns it and its base URL once it answers."""
    port = free_port()
    code = f"from mibench.study.server import serve; serve({str(run_dir)!r}, {study_id!r}, port={port})"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.stderr.read().decode()}")
        try:
            if httpx.get(f"{base}/r/{token}/state", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("server did not start in 30 s")


def test_killed_server_loses_no_vote(run):
    run_dir, study_id = run
    (token, seq), _ = sequences(run_dir, study_id)
    plan = [(e["pair_id"], q) for e in seq for q in QUESTIONS]
    process, base = start_server(run_dir, study_id, token)
    try:
        for n, (pair, question) in enumerate(plan[:7]):
            response = httpx.post(f"{base}/r/{token}/vote", json={"pair_id": pair, "question_id": question,
                                                                  "side": ("left", "right", "tie")[n % 3]})
            assert response.status_code == 200, response.text
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    stored = {(v["pair_id"], v["question_id"]) for v in rows(run_dir, "SELECT * FROM study_votes")}
    assert stored == set(plan[:7])

    process, base = start_server(run_dir, study_id, token)
    try:
        state = httpx.get(f"{base}/r/{token}/state").json()
        assert (state["pair"]["id"], state["question"]["id"]) == plan[7]  # resumes at the first unanswered
        replay = httpx.post(f"{base}/r/{token}/vote", json={"pair_id": plan[0][0], "question_id": plan[0][1],
                                                            "side": "right"})
        assert replay.status_code == 409
        for pair, question in plan[7:]:
            assert httpx.post(f"{base}/r/{token}/vote", json={"pair_id": pair, "question_id": question,
                                                              "side": "left"}).status_code == 200
        assert httpx.get(f"{base}/r/{token}/state").json()["finished"]
    finally:
        process.terminate()
        process.wait(timeout=10)
    votes = rows(run_dir, "SELECT * FROM study_votes")
    assert len(votes) == len(plan) and {(v["pair_id"], v["question_id"]) for v in votes} == set(plan)
    first = next(v for v in votes if (v["pair_id"], v["question_id"]) == plan[0])
    assert first["side"] == "left"  # the replay changed nothing


def test_votes_csv_quotes_names_a_spreadsheet_would_run(run):
    run_dir, study_id = run
    (token, seq), _ = sequences(run_dir, study_id)
    items = {r["pair_id"]: r for r in rows(run_dir, "SELECT * FROM study_items")}
    entry = next(e for e in seq if items[e["pair_id"]]["kind"] == "pair")
    store = Store.open(run_dir)
    try:
        store.db.execute("UPDATE studies SET model_a = ?, model_b = ? WHERE id = ?",
                         ('=HYPERLINK("http://evil","x")', "+beta", study_id))
        store.db.commit()
        record_vote(store, token, entry["pair_id"], QUESTIONS[0], "left", study_id=study_id)
        record_vote(store, token, entry["pair_id"], QUESTIONS[1], "right", study_id=study_id)
        table = list(csv.DictReader(io.StringIO(votes_csv(store, study_id))))
    finally:
        store.close()
    assert {r["chosen_model"] for r in table} == {"'=HYPERLINK(\"http://evil\",\"x\")", "'+beta"}
