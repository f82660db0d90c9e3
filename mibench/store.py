"""The results store of a run: one SQLite file, `<run>/mibench.sqlite`.

Tables (schema version `SCHEMA_VERSION`, kept in `meta`):
- `jobs`        one row per job (model, music, prompt, seed, frames, tempo, and the prompt's tags as JSON:
                style, dancer, setting, group, camera, for the report's slices), keyed by `job_id`;
- `models`      one row per model name of the run: the generator (card) behind it, the fingerprint of its
                settings and the settings themselves. A name means one set of settings: a variant made
                with other settings gets its own name (`generate --as NAME`);
- `videos`      one row per job that was generated or registered: path (relative to the run folder when
                inside it), status (`done`/`failed`), error, seconds taken, the generator's metadata
                (JSON), the settings fingerprint it was made under and `content`, the SHA-256 of the file's
                bytes when it was recorded (its first 16 hex digits). A job's answers and metric values
                describe that file: recording another file for the job deletes them (`record_video`), and
                the score and metrics stages record a file changed since as failed (`changed_videos`);
- `evaluations` one row per judge evaluation: its fingerprint (judge, weights, preset, mode, modal,
                decoding, question texts, seed), the judge, the mode and the settings;
- `answers`     one row per (job, evaluation, question, run index): raw text, parsed score (NULL when
                the answer could not be parsed: missing, never 0), score distribution, the probability
                mass the judge put on the valid answers 0..10 (`valid_mass`, expected mode) and options;
- `metrics`     one row per (job, metric name, fingerprint of the stage options): value (NULL with a
                note when undefined) and parameters;
- `claims`      work in progress: a job (or a judge run of it) claimed by a process (host, pid) until a
                lease expires (`CLAIM_LEASE_S`), so several processes on one run share the work instead
                of repeating it. A claim of a process that is gone (same host, pid not running) or whose
                lease has run out is taken over;
- `sessions`    one row per command that touched the run: stage, options, versions, start and end.

Every write is an upsert inside a transaction, so re-running a stage replaces rows instead of adding
duplicates, and a killed run loses at most the row in flight. Results are keyed by their settings
fingerprint: work made under other settings is never reused, and never overwritten (it stays, under
its own fingerprint). An older store (schema 2 or 3) is upgraded in place when opened (columns added: its
jobs have no tags, its answers no valid mass, its videos no content digest: shown as unknown, and a video
without a digest is never reported as changed). WAL mode lets several local processes write to
one store. Paths are stored relative to the run folder, so a run folder can be moved or copied and used
from any directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from mibench.errors import StoreError
from mibench.suite.jobs import Job

SCHEMA_VERSION = 4
STORE_NAME = "mibench.sqlite"
CLAIM_LEASE_S = 3600.0  # a claim of a process on another host is trusted this long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, item_id TEXT NOT NULL, model TEXT NOT NULL, suite TEXT NOT NULL,
    music_id TEXT NOT NULL, music_path TEXT, prompt_id TEXT NOT NULL, prompt TEXT NOT NULL,
    seed INTEGER NOT NULL, num_frames INTEGER NOT NULL, tempo REAL NOT NULL, bpm REAL, genre TEXT,
    created REAL NOT NULL, tags TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS jobs_model ON jobs(model);
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY, generator TEXT NOT NULL, fingerprint TEXT NOT NULL, settings TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    job_id TEXT PRIMARY KEY REFERENCES jobs(job_id), path TEXT, status TEXT NOT NULL,
    error TEXT, seconds REAL, info TEXT NOT NULL DEFAULT '{}', fingerprint TEXT NOT NULL, created REAL NOT NULL,
    content TEXT);
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY, judge TEXT NOT NULL, mode TEXT NOT NULL, settings TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    job_id TEXT NOT NULL REFERENCES jobs(job_id), evaluation TEXT NOT NULL REFERENCES evaluations(id),
    judge TEXT NOT NULL, question_set TEXT NOT NULL, question_id TEXT NOT NULL, mode TEXT NOT NULL,
    run_index INTEGER NOT NULL, question TEXT NOT NULL, raw TEXT, score REAL, distribution TEXT,
    options TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL, valid_mass REAL,
    PRIMARY KEY (job_id, evaluation, question_id, run_index));
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL REFERENCES jobs(job_id), name TEXT NOT NULL, fingerprint TEXT NOT NULL, value REAL,
    params TEXT NOT NULL DEFAULT '{}', note TEXT, created REAL NOT NULL, PRIMARY KEY (job_id, name, fingerprint));
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stage TEXT NOT NULL, options TEXT NOT NULL,
    versions TEXT NOT NULL, started REAL NOT NULL, finished REAL);
"""

_JOB_COLUMNS = ("job_id", "item_id", "model", "suite", "music_id", "music_path", "prompt_id", "prompt",
                "seed", "num_frames", "tempo", "bpm", "genre", "tags")
CHANGED_VIDEO = ("its file changed after it was recorded, so scores and metrics would describe another file (restore "
                 "it, or delete it and run `mibench generate` again; registered videos: register the folder under "
                 "another --name)")
_UPGRADES = {2: ("ALTER TABLE jobs ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
                 "ALTER TABLE answers ADD COLUMN valid_mass REAL"),
             3: ("ALTER TABLE videos ADD COLUMN content TEXT",)}  # from version -> to the next


class Store:
    """A run's SQLite store. Open one per process; it is safe to share the file between processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.root = self.path.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.transaction():
                self._upgrade()
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self.db.execute(statement)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open results store {self.path}: {exc}",
                             "is it a mibench run folder? use another --run-dir") from exc

    @classmethod
    def open(cls, run_dir: Path) -> Store:
        return cls(Path(run_dir) / STORE_NAME)

    def _upgrade(self) -> None:
        """Bring an older store to `SCHEMA_VERSION` (`_UPGRADES`), or refuse one that cannot be."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
            return
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = SCHEMA_VERSION if row is None else int(row["value"])
        while version in _UPGRADES:
            for statement in _UPGRADES[version]:
                self.db.execute(statement)
            version += 1
            self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
        if version != SCHEMA_VERSION:
            why = "its results carry no settings fingerprints" if version < 2 else "a newer mibench wrote it"
            raise StoreError(f"store {self.path} has schema version {row['value']}, this mibench reads "
                             f"{SCHEMA_VERSION} ({why})",
                             "start a new run with --run NAME or --run-dir DIR, or use the mibench version "
                             "that wrote it")

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

    # -- paths -----------------------------------------------------------------------------------
    def relative(self, path: Path) -> str:
        """`path` relative to the run folder when it lies inside it, else absolute."""
        absolute = Path(os.path.abspath(path))
        root = Path(os.path.abspath(self.root))
        return absolute.relative_to(root).as_posix() if absolute.is_relative_to(root) else str(absolute)

    def resolve(self, stored: str | None) -> str | None:
        """A stored path as an absolute path (relative paths are relative to the run folder)."""
        if not stored:
            return None
        path = Path(stored)
        return str(path if path.is_absolute() else Path(os.path.abspath(self.root)) / path)

    # -- models ----------------------------------------------------------------------------------
    def model_settings(self, name: str) -> dict | None:
        """The generator, fingerprint and settings a model name of this run stands for (None: unknown)."""
        row = self.db.execute("SELECT * FROM models WHERE name=?", (name,)).fetchone()
        return None if row is None else {**dict(row), "settings": json.loads(row["settings"])}

    def claim_model(self, name: str, generator: str, fingerprint: str, settings: dict) -> dict | None:
        """Register `name` for these settings; returns the existing row when the name stands for others."""
        with self.transaction():
            current = self.model_settings(name)
            if current is None:
                self.db.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?)",
                                (name, generator, fingerprint, json.dumps(settings, sort_keys=True, default=str),
                                 time.time()))
                return None
        return None if current["fingerprint"] == fingerprint else current

    # -- jobs and videos -------------------------------------------------------------------------
    def add_jobs(self, jobs: Iterable[Job]) -> None:
        """Register jobs; a job already present keeps its row (and its results)."""
        now = time.time()
        rows = [tuple(_job_value(job.to_dict()[c]) for c in _JOB_COLUMNS) + (now,) for job in jobs]
        marks = ", ".join("?" * (len(_JOB_COLUMNS) + 1))
        with self.transaction():
            self.db.executemany(f"INSERT OR IGNORE INTO jobs ({', '.join(_JOB_COLUMNS)}, created) VALUES ({marks})",
                                rows)

    def jobs(self, model: str | None = None) -> list[dict]:
        """Job rows in creation order; `tags` as a dict."""
        query, args = "SELECT * FROM jobs", ()
        if model is not None:
            query, args = query + " WHERE model = ?", (model,)
        return [{**dict(r), "tags": json.loads(r["tags"])} for r in self.db.execute(query + " ORDER BY rowid", args)]

    def models(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT model FROM jobs ORDER BY model")]

    def record_video(self, job_id: str, path: Path | None, *, fingerprint: str, status: str = "done",
                     error: str | None = None, seconds: float | None = None, info: dict | None = None) -> int:
        """Record a job's video (or its failure). When it replaces a 'done' video with other bytes (or one whose
        bytes were not recorded), the job's judge answers and metric values, which describe the old file, are
        deleted; returns how many rows were."""
        content = file_digest(Path(path)) if path is not None and status == "done" and Path(path).is_file() else None
        with self.transaction():
            old = self.db.execute("SELECT status, content FROM videos WHERE job_id=?", (job_id,)).fetchone()
            dropped = 0
            if old is not None and old["status"] == "done" and (old["content"] is None or old["content"] != content):
                dropped += self.db.execute("DELETE FROM answers WHERE job_id=?", (job_id,)).rowcount
                dropped += self.db.execute("DELETE FROM metrics WHERE job_id=?", (job_id,)).rowcount
            self.db.execute(
                "INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET "
                "path=excluded.path, status=excluded.status, error=excluded.error, seconds=excluded.seconds, "
                "info=excluded.info, fingerprint=excluded.fingerprint, created=excluded.created, "
                "content=excluded.content",
                (job_id, self.relative(path) if path else None, status, error, seconds,
                 json.dumps(info or {}, default=str), fingerprint, time.time(), content),
            )
        return dropped

    def changed_videos(self, rows: Iterable[dict]) -> set[str]:
        """The job ids of the `videos()` rows whose file no longer has the bytes recorded (`CHANGED_VIDEO`);
        rows without a recorded digest (older stores) are not checked."""
        return {row["job_id"] for row in rows if row.get("content") and row["path"] and Path(row["path"]).is_file()
                and file_digest(Path(row["path"])) != row["content"]}

    def videos(self, model: str | None = None, status: str | None = "done") -> list[dict]:
        """Videos joined with their jobs, in job order; `path` is absolute."""
        query = ("SELECT j.*, v.path, v.status, v.error, v.seconds, v.info, v.fingerprint, v.content "
                 "FROM jobs j JOIN videos v USING (job_id)")
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
            row["path"] = self.resolve(row["path"])
        return rows

    def video(self, job_id: str) -> dict | None:
        """The video row of a job (path absolute), or None."""
        row = self.db.execute("SELECT * FROM videos WHERE job_id=?", (job_id,)).fetchone()
        return None if row is None else {**dict(row), "path": self.resolve(row["path"])}

    # -- claims ----------------------------------------------------------------------------------
    def claim(self, key: str, lease_s: float = CLAIM_LEASE_S) -> bool:
        """Claim `key` for this process; False while another live process holds it (see `claims`)."""
        host, pid, now = socket.gethostname(), os.getpid(), time.time()
        with self.transaction():
            row = self.db.execute("SELECT * FROM claims WHERE key=?", (key,)).fetchone()
            if row is not None and (row["host"], row["pid"]) != (host, pid) and row["expires"] > now \
                    and _alive(row["host"], row["pid"]):
                return False
            self.db.execute("INSERT INTO claims VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET host=excluded.host, "
                            "pid=excluded.pid, expires=excluded.expires", (key, host, pid, now + lease_s))
        return True

    def release(self, key: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM claims WHERE key=? AND host=? AND pid=?", (key, socket.gethostname(),
                                                                                    os.getpid()))

    # -- judge evaluations and answers -----------------------------------------------------------
    def add_evaluation(self, evaluation: str, judge: str, mode: str, settings: dict) -> None:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO evaluations VALUES (?, ?, ?, ?, ?)",
                            (evaluation, judge, mode, json.dumps(settings, sort_keys=True, default=str),
                             time.time()))

    def evaluations(self) -> list[dict]:
        rows = [dict(r) for r in self.db.execute("SELECT * FROM evaluations ORDER BY created, id")]
        for row in rows:
            row["settings"] = json.loads(row["settings"])
        return rows

    def record_answers(self, rows: Iterable[dict]) -> None:
        """Upsert answers: dicts with job_id, evaluation, judge, question_set, question_id, mode, run_index,
        question, raw, score (None = missing), distribution (dict or None), valid_mass (None: not
        measured) and options (dict)."""
        now = time.time()
        values = [
            (r["job_id"], r["evaluation"], r["judge"], r["question_set"], r["question_id"], r["mode"],
             r["run_index"], r["question"], r["raw"], r["score"],
             json.dumps(r.get("distribution")) if r.get("distribution") is not None else None,
             json.dumps(r.get("options") or {}, default=str), now, r.get("valid_mass"))
            for r in rows
        ]
        with self.transaction():
            self.db.executemany(
                "INSERT INTO answers (job_id, evaluation, judge, question_set, question_id, mode, run_index, "
                "question, raw, score, distribution, options, created, valid_mass) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(job_id, evaluation, question_id, run_index) DO UPDATE SET "
                "question_set=excluded.question_set, question=excluded.question, raw=excluded.raw, "
                "score=excluded.score, distribution=excluded.distribution, options=excluded.options, "
                "created=excluded.created, valid_mass=excluded.valid_mass",
                values,
            )

    def answered(self, job_id: str, evaluation: str, run_index: int) -> set[str]:
        rows = self.db.execute("SELECT question_id FROM answers WHERE job_id=? AND evaluation=? AND run_index=?",
                               (job_id, evaluation, run_index))
        return {r[0] for r in rows}

    def answers(self, evaluation: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM answers", ()
        if evaluation is not None:
            query, args = query + " WHERE evaluation = ?", (evaluation,)
        return [dict(r) for r in self.db.execute(query + " ORDER BY rowid", args)]

    # -- metrics ---------------------------------------------------------------------------------
    def record_metrics(self, job_id: str, fingerprint: str,
                       values: dict[str, tuple[float | None, dict, str | None]]) -> None:
        """Upsert metrics of one job made under stage options `fingerprint`: name -> (value or None,
        parameters, note)."""
        now = time.time()
        rows = [(job_id, name, fingerprint, value, json.dumps(params, default=str), note, now)
                for name, (value, params, note) in values.items()]
        with self.transaction():
            self.db.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id, name, fingerprint) DO UPDATE "
                "SET value=excluded.value, params=excluded.params, note=excluded.note, created=excluded.created",
                rows,
            )

    def metric_names(self, job_id: str, fingerprint: str) -> set[str]:
        rows = self.db.execute("SELECT name FROM metrics WHERE job_id=? AND fingerprint=?", (job_id, fingerprint))
        return {r[0] for r in rows}

    def metrics(self, latest: bool = True) -> list[dict]:
        """Metric rows; with `latest`, per metric name only those of the fingerprint recorded last (so one
        aggregate never mixes values made under different options)."""
        rows = [dict(r) for r in self.db.execute("SELECT * FROM metrics ORDER BY rowid")]
        if not latest:
            return rows
        newest: dict[str, tuple[float, str]] = {}
        for row in rows:
            if row["created"] >= newest.get(row["name"], (-1.0, ""))[0]:
                newest[row["name"]] = (row["created"], row["fingerprint"])
        return [row for row in rows if row["fingerprint"] == newest[row["name"]][1]]

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


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _job_value(value: object) -> object:
    """A job field as stored: dicts (the tags) as sorted JSON."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if isinstance(value, dict) else value


def _alive(host: str, pid: int) -> bool:
    """Whether the process holding a claim still runs (known only on this host; elsewhere the lease rules)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
