"""The report's judge-reliability section: repeated runs, modes, judge rating vs BAS, per model."""

from __future__ import annotations

import re

from conftest import store_answers

from mibench.report import render_report
from mibench.report.reliability import reliability_tables
from mibench.store import Store
from mibench.suite.jobs import Job


def _store(tmp_path) -> Store:
    store = Store.open(tmp_path)
    jobs = [Job(model=m, suite="aist", music_id=f"t{i}", music_path=None, prompt_id="b", prompt="p", seed=0,
                num_frames=16) for m in ("a", "b") for i in range(4)]
    store.add_jobs(jobs)
    rows = []
    for n, job in enumerate(jobs):
        store.record_video(job.job_id, tmp_path / f"{n}.mp4", fingerprint="fp")
        store.record_metrics(job.job_id, "fp", {"bas_bailando": (0.1 * n, {}, None),
                                          "pose_bas_fact": (1 - 0.1 * n, {}, None)})
        for mode, run_index, score in (("greedy", 0, n % 4), ("greedy", 1, n % 4), ("expected", 0, n % 4 + 0.5)):
            rows.append({"job_id": job.job_id, "judge": "j", "question_set": "paper",
                         "question_id": "beat_alignment", "mode": mode, "run_index": run_index, "question": "q",
                         "raw": str(score), "score": float(score), "distribution": None, "options": {}})
    store_answers(store, rows)
    return store


def test_reliability_tables(tmp_path):
    tables = {t["id"]: t for t in reliability_tables(_store(tmp_path))}
    assert set(tables) == {"reliability-runs", "reliability-modes", "reliability-bas"}
    runs = {r[0]: r for r in tables["reliability-runs"]["rows"] if r[2] == "greedy"}
    assert set(runs) == {"a", "b", "all"}
    assert runs["a"][3:] == ["4", "2", "1.00", "1.00", "0.00", "1.00"]  # identical repeats agree perfectly
    modes = {r[0]: r for r in tables["reliability-modes"]["rows"]}
    assert modes["all"][2:] == ["8", "1.00", "1.00", "0.50", "0.50"]
    bas = {(r[0], r[3]): r for r in tables["reliability-bas"]["rows"] if r[2] == "greedy"}
    assert bas["a", "bas_bailando"][4:7] == ["4", "1.00", "1.00"]  # rating 0,1,2,3 vs BAS 0,.1,.2,.3
    assert bas["a", "pose_bas_fact"][4:7] == ["4", "-1.00", "-1.00"]  # vs pose BAS 1,.9,.8,.7


def test_reliability_section_renders(tmp_path):
    _store(tmp_path).close()
    html = render_report(tmp_path).read_text()
    assert 'id="reliability"' in html and len(re.findall(r'id="reliability-\w+"', html)) == 3
