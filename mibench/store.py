"""The results store of a run: one SQLite file, `runs/<run>/mibench.sqlite`.

Tables (schema version `SCHEMA_VERSION`, kept in `meta`):
- `jobs`     one row per job (model, music, prompt, seed, frames, tempo), keyed by `job_id`;
- `videos`   one row per job that was generated or registered: path, status (`done`/`failed`), error,
             seconds taken and the generator's metadata (JSON);
- `answers`  one row per (job, judge, question, mode, run index): raw text, parsed score (NULL when the
             answer could not be parsed: missing, never 0), score distribution and options (JSON);
- `metrics`  one row per (job, metric name): value (NULL with a note when undefined) and parameters;
- `sessions` one row per command that touched the run: stage, options, versions, start and end.

Every write is an upsert inside a transaction, so re-running a stage replaces rows instead of adding
duplicates, and a killed run loses at most the row in flight. WAL mode lets several local worker
processes write to one store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from mibench.errors import StoreError
from mibench.suite.jobs import Job

SCHEMA_VERSION = 1
STORE_NAME = "mibench.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, item_id TEXT NOT NULL, model TEXT NOT NULL, suite TEXT NOT NULL,
    music_id TEXT NOT NULL, music_path TEXT, prompt_id TEXT NOT NULL, prompt TEXT NOT NULL,
    seed INTEGER NOT NULL, num_frames INTEGER NOT NULL, tempo REAL NOT NULL, bpm REAL, genre TEXT,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_model ON jobs(model);
CREATE TABLE IF NOT EXISTS videos (
    job_id TEXT PRIMARY KEY REFERENCES jobs(job_id), path TEXT, status TEXT NOT NULL,
    error TEXT, seconds REAL, info TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    job_id TEXT NOT NULL REFERENCES jobs(job_id), judge TEXT NOT NULL, question_set TEXT NOT NULL,
    question_id TEXT NOT NULL, mode TEXT NOT NULL, run_index INTEGER NOT NULL, question TEXT NOT NULL,
    raw TEXT, score REAL, distribution TEXT, options TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL,
    PRIMARY KEY (job_id, judge, question_id, mode, run_index));
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL REFERENCES jobs(job_id), name TEXT NOT NULL, value REAL, params TEXT NOT NULL
    DEFAULT '{}', note TEXT, created REAL NOT NULL, PRIMARY KEY (job_id, name));
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stage TEXT NOT NULL, options TEXT NOT NULL,
    versions TEXT NOT NULL, started REAL NOT NULL, finished REAL);
"""

_JOB_COLUMNS = ("job_id", "item_id", "model", "suite", "music_id", "music_path", "prompt_id", "prompt",
                "seed", "num_frames", "tempo", "bpm", "genre")


class Store:
    """A run's SQLite store. Open one per process; it is safe to share the file between processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self.db.execute(statement)
                self._check_version()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open results store {self.path}: {exc}",
                             "is it a mibench run folder? use another --run-dir") from exc

    @classmethod
    def open(cls, run_dir: Path) -> Store:
        return cls(Path(run_dir) / STORE_NAME)

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row["value"]) != SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema version {row['value']}, this mibench reads "
                             f"{SCHEMA_VERSION}", "use a new --run-dir or the mibench version that wrote it")

    @contextmanager
    def transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # -- jobs and videos -------------------------------------------------------------------------
    def add_jobs(self, jobs: Iterable[Job]) -> None:
        """Register jobs; a job already present keeps its row (and its results)."""
        now = time.time()
        rows = [tuple(job.to_dict()[c] for c in _JOB_COLUMNS) + (now,) for job in jobs]
        marks = ", ".join("?" * (len(_JOB_COLUMNS) + 1))
        with self.transaction():
            self.db.executemany(f"INSERT OR IGNORE INTO jobs VALUES ({marks})", rows)

    def jobs(self, model: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM jobs", ()
        if model is not None:
            query, args = query + " WHERE model = ?", (model,)
        return [dict(r) for r in self.db.execute(query + " ORDER BY rowid", args)]

    def models(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT model FROM jobs ORDER BY model")]

    def record_video(self, job_id: str, path: Path | None, *, status: str = "done", error: str | None = None,
                     seconds: float | None = None, info: dict | None = None) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET "
                "path=excluded.path, status=excluded.status, error=excluded.error, seconds=excluded.seconds, "
                "info=excluded.info, created=excluded.created",
                (job_id, str(path) if path else None, status, error, seconds, json.dumps(info or {}), time.time()),
            )

    def videos(self, model: str | None = None, status: str | None = "done") -> list[dict]:
        """Videos joined with their jobs, in job order."""
        query = "SELECT j.*, v.path, v.status, v.error, v.seconds, v.info FROM jobs j JOIN videos v USING (job_id)"
        conds, args = [], []
        if model is not None:
            conds.append("j.model = ?")
            args.append(model)
        if status is not None:
            conds.append("v.status = ?")
            args.append(status)
        if conds:
            query += " WHERE " + " AND ".join(conds)
        rows = [dict(r) for r in self.db.execute(query + " ORDER BY j.rowid", args)]
        for row in rows:
            row["info"] = json.loads(row["info"])
        return rows

    def done_video_ids(self, model: str | None = None) -> set[str]:
        return {v["job_id"] for v in self.videos(model)}

    # -- judge answers ---------------------------------------------------------------------------
    def record_answers(self, rows: Iterable[dict]) -> None:
        """Upsert answers: dicts with job_id, judge, question_set, question_id, mode, run_index, question,
        raw, score (None = missing), distribution (dict or None) and options (dict)."""
        now = time.time()
        values = [
            (r["job_id"], r["judge"], r["question_set"], r["question_id"], r["mode"], r["run_index"], r["question"],
             r["raw"], r["score"], json.dumps(r.get("distribution")) if r.get("distribution") is not None else None,
             json.dumps(r.get("options") or {}), now)
            for r in rows
        ]
        with self.transaction():
            self.db.executemany(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(job_id, judge, question_id, mode, run_index) DO UPDATE SET "
                "question_set=excluded.question_set, question=excluded.question, raw=excluded.raw, "
                "score=excluded.score, distribution=excluded.distribution, options=excluded.options, "
                "created=excluded.created",
                values,
            )

    def answered(self, job_id: str, judge: str, mode: str, run_index: int) -> set[str]:
        rows = self.db.execute(
            "SELECT question_id FROM answers WHERE job_id=? AND judge=? AND mode=? AND run_index=?",
            (job_id, judge, mode, run_index),
        )
        return {r[0] for r in rows}

    def answers(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM answers ORDER BY rowid")]

    # -- metrics ---------------------------------------------------------------------------------
    def record_metrics(self, job_id: str, values: dict[str, tuple[float | None, dict, str | None]]) -> None:
        """Upsert metrics of one job: name -> (value or None, parameters, note)."""
        now = time.time()
        rows = [(job_id, name, value, json.dumps(params), note, now) for name, (value, params, note) in values.items()]
        with self.transaction():
            self.db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(job_id, name) DO UPDATE SET "
                "value=excluded.value, params=excluded.params, note=excluded.note, created=excluded.created",
                rows,
            )

    def metric_names(self, job_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM metrics WHERE job_id=?", (job_id,))}

    def metrics(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM metrics ORDER BY rowid")]

    # -- sessions --------------------------------------------------------------------------------
    def begin_session(self, stage: str, options: dict, versions: dict) -> int:
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO sessions (stage, options, versions, started) VALUES (?, ?, ?, ?)",
                (stage, json.dumps(options, default=str), json.dumps(versions), time.time()),
            )
        return int(cur.lastrowid)

    def end_session(self, session_id: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE sessions SET finished=? WHERE id=?", (time.time(), session_id))

    def sessions(self) -> list[dict]:
        rows = [dict(r) for r in self.db.execute("SELECT * FROM sessions ORDER BY id")]
        for row in rows:
            row["options"] = json.loads(row["options"])
            row["versions"] = json.loads(row["versions"])
        return rows
