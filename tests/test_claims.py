"""Job claims: processes working on one run share the jobs; claims of a killed process or past their lease
are taken over."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys

from mibench.store import Store


def _hold(path: str, key: str, ready, stop) -> None:
    store = Store.open(path)
    assert store.claim(key)
    ready.set()
    stop.wait(60)


def test_a_claim_blocks_other_processes_until_its_owner_is_gone(tmp_path):
    Store.open(tmp_path).close()
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), "generate:job-1", ready, stop))
    holder.start()
    assert ready.wait(60)
    store = Store.open(tmp_path)
    assert not store.claim("generate:job-1")  # held by a live process
    assert store.claim("generate:job-2")  # other keys are free
    assert store.claim("generate:job-2")  # a process may renew its own claim
    stop.set()
    holder.join(60)
    assert store.claim("generate:job-1")  # the holder is gone: taken over
    store.release("generate:job-1")
    assert store.db.execute("SELECT key FROM claims").fetchall()[0][0] == "generate:job-2"


def test_an_expired_lease_is_taken_over(tmp_path):
    store = Store.open(tmp_path)
    store.db.execute("INSERT INTO claims VALUES ('generate:j', 'another-host', 1, 0.0)")
    assert store.claim("generate:j")
    store.db.execute("UPDATE claims SET host='another-host', pid=1, expires=9e18 WHERE key='generate:j'")
    assert not store.claim("generate:j")  # another host, lease running: trusted


def test_two_generate_processes_share_the_jobs(tmp_path, music_dir):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "mibench", "generate", "--model", "synthetic-onbeat", "--preset", "full",
           "--suite", "prompts", "--limit", "6", "--frames", "60", "--music", str(music_dir), "--run-dir",
           str(run_dir), "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    Store.open(run_dir).close()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["done"] for r in results) == 6, results  # every job made exactly once
    assert all(r["done"] + r["skipped"] + r["claimed_elsewhere"] == 6 for r in results)
    store = Store.open(run_dir)
    assert len(store.videos()) == 6 and store.db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
