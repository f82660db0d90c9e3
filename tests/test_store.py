"""The results store: schema, idempotent upserts, resume bookkeeping, concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
from conftest import store_answers

from mibench.errors import StoreError
from mibench.store import Store
from mibench.suite.jobs import Job


def _jobs(n: int, model: str = "m") -> list[Job]:
    return [Job(model=model, suite="aist", music_id=f"t{i}", music_path=None, prompt_id="base", prompt="p", seed=0,
                num_frames=16) for i in range(n)]


def _answer(job_id: str, question_id: str, score, run_index: int = 0) -> dict:
    return {"job_id": job_id, "judge": "j", "question_set": "paper", "question_id": question_id, "mode": "greedy",
            "run_index": run_index, "question": "q?", "raw": str(score), "score": score, "distribution": None,
            "options": {"a": 1}}


def test_jobs_are_added_once_and_keep_their_results(tmp_path):
    store = Store.open(tmp_path)
    jobs = _jobs(3)
    store.add_jobs(jobs)
    store.record_video(jobs[0].job_id, tmp_path / "a.mp4", seconds=1.5, info={"fps": 30}, fingerprint="fp")
    store.add_jobs(jobs + _jobs(1, model="other"))
    assert len(store.jobs()) == 4 and len(store.jobs("m")) == 3
    assert store.models() == ["m", "other"]
    video = store.videos("m")[0]
    assert video["job_id"] == jobs[0].job_id and video["info"] == {"fps": 30} and video["seconds"] == 1.5


def test_video_upsert_replaces_a_failure(tmp_path):
    store = Store.open(tmp_path)
    job = _jobs(1)[0]
    store.add_jobs([job])
    store.record_video(job.job_id, None, status="failed", error="boom", fingerprint="fp")
    assert store.videos() == []
    assert store.videos(status="failed")[0]["error"] == "boom"
    store.record_video(job.job_id, tmp_path / "v.mp4", fingerprint="fp")
    assert [v["job_id"] for v in store.videos()] == [job.job_id]
    assert len(store.videos(status=None)) == 1


def test_paths_are_stored_relative_to_the_run_folder(tmp_path):
    store = Store.open(tmp_path / "run")
    jobs = _jobs(2)
    store.add_jobs(jobs)
    store.record_video(jobs[0].job_id, tmp_path / "run" / "videos" / "m" / "a.mp4", fingerprint="fp")
    store.record_video(jobs[1].job_id, tmp_path / "elsewhere" / "b.mp4", fingerprint="fp")
    stored = dict(store.db.execute("SELECT job_id, path FROM videos").fetchall())
    assert stored == {jobs[0].job_id: "videos/m/a.mp4", jobs[1].job_id: str(tmp_path / "elsewhere" / "b.mp4")}
    store.close()
    (tmp_path / "run").rename(tmp_path / "moved")
    moved = Store.open(tmp_path / "moved")
    assert moved.videos()[0]["path"] == str(tmp_path / "moved" / "videos" / "m" / "a.mp4")


def test_a_model_name_stands_for_one_set_of_settings(tmp_path):
    store = Store.open(tmp_path)
    assert store.claim_model("mi", "musicinfuser", "fp64", {"steps": 64}) is None
    assert store.claim_model("mi", "musicinfuser", "fp64", {"steps": 64}) is None
    held = store.claim_model("mi", "musicinfuser", "fp8", {"steps": 8})
    assert held["fingerprint"] == "fp64" and held["settings"] == {"steps": 64}
    assert store.model_settings("mi")["fingerprint"] == "fp64" and store.model_settings("other") is None


def test_answers_upsert_and_missing_scores_stay_null(tmp_path):
    store = Store.open(tmp_path)
    job = _jobs(1)[0]
    store.add_jobs([job])
    store_answers(store, [_answer(job.job_id, "q1", 7.0), _answer(job.job_id, "q2", None)])
    store_answers(store, [_answer(job.job_id, "q1", 8.0)])
    store_answers(store, [_answer(job.job_id, "q1", 6.0, run_index=1)])
    store_answers(store, [{**_answer(job.job_id, "q1", 3.0), "evaluation": "other-settings"}])
    rows = store.answers("eval-j-greedy")
    assert len(rows) == 3
    assert {(r["question_id"], r["run_index"]): r["score"] for r in rows} == {("q1", 0): 8.0, ("q2", 0): None,
                                                                             ("q1", 1): 6.0}
    assert store.answered(job.job_id, "eval-j-greedy", 0) == {"q1", "q2"}
    assert store.answered(job.job_id, "other-settings", 0) == {"q1"}
    assert store.answered(job.job_id, "eval-j-expected", 0) == set()
    assert len(store.answers()) == 4 and [e["id"] for e in store.evaluations()] == ["eval-j-greedy", "other-settings"]


def test_metrics_and_sessions(tmp_path):
    store = Store.open(tmp_path)
    job = _jobs(1)[0]
    store.add_jobs([job])
    store.record_metrics(job.job_id, "fp", {"bas": (0.5, {"sigma_s": 0.1}, None), "still": (None, {}, "no motion")})
    store.record_metrics(job.job_id, "fp", {"bas": (0.25, {"sigma_s": 0.1}, None)})
    assert store.metric_names(job.job_id, "fp") == {"bas", "still"} and store.metric_names(job.job_id, "x") == set()
    assert {m["name"]: m["value"] for m in store.metrics()} == {"bas": 0.25, "still": None}
    store.record_metrics(job.job_id, "other options", {"bas": (0.75, {"sigma_s": 0.2}, None)})
    assert {m["name"]: m["value"] for m in store.metrics()} == {"bas": 0.75, "still": None}
    assert len(store.metrics(latest=False)) == 3
    sid = store.begin_session("generate", {"model": "m"}, {"mibench": "0"})
    assert store.sessions()[0]["finished"] is None
    store.end_session(sid)
    assert store.sessions()[0]["finished"] is not None and store.sessions()[0]["options"] == {"model": "m"}


def test_schema_version_and_bad_files_give_clear_errors(tmp_path):
    store = Store.open(tmp_path)
    store.db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    store.close()
    with pytest.raises(StoreError, match="schema version 99.*start a new run"):
        Store.open(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "mibench.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot open results store"):
        Store.open(bad)


def test_jobs_keep_their_prompt_tags_and_a_schema_2_store_is_upgraded(tmp_path):
    store = Store.open(tmp_path)
    tagged = Job(model="m", suite="prompts", music_id="t0", music_path=None, prompt_id="s01", prompt="p", seed=0,
                 num_frames=16, tags={"style": "break", "group": "solo"})
    store.add_jobs([tagged])
    store_answers(store, [_answer(tagged.job_id, "q1", 5.0) | {"mode": "expected", "valid_mass": 0.25}])
    assert store.jobs()[0]["tags"] == {"style": "break", "group": "solo"}
    assert store.answers()[0]["valid_mass"] == 0.25
    # the same store as mibench 0.x (schema 2) wrote it: no tags, no valid mass
    store.db.execute("ALTER TABLE jobs DROP COLUMN tags")
    store.db.execute("ALTER TABLE answers DROP COLUMN valid_mass")
    store.db.execute("ALTER TABLE videos DROP COLUMN content")
    store.db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    store.close()
    upgraded = Store.open(tmp_path)
    assert upgraded.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"
    assert upgraded.jobs()[0]["tags"] == {} and upgraded.answers()[0]["valid_mass"] is None
    assert upgraded.answers()[0]["score"] == 5.0
    upgraded.add_jobs(_jobs(1))
    assert len(upgraded.jobs()) == 2


def test_failed_transaction_leaves_no_partial_rows(tmp_path):
    store = Store.open(tmp_path)
    job = _jobs(1)[0]
    store.add_jobs([job])
    with pytest.raises(sqlite3.IntegrityError):
        store_answers(store, [_answer(job.job_id, "q1", 1.0), _answer("no-such-job", "q1", 2.0)])
    assert store.answers() == []


def _writer(path: str, worker: int) -> None:
    store = Store.open(path)
    for i in range(20):
        job = Job(model=f"w{worker}", suite="aist", music_id=f"t{i}", music_path=None, prompt_id="b", prompt="p",
                  seed=0, num_frames=16)
        store.add_jobs([job])
        store.record_video(job.job_id, None, seconds=float(i), fingerprint="fp")
    store.close()


def test_several_processes_write_one_store(tmp_path):
    Store.open(tmp_path).close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    store = Store.open(tmp_path)
    assert len(store.jobs()) == 60 and len(store.videos()) == 60
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
