"""Merge runs into one: `mibench merge RUN... --into DIR`, for shards made apart (`generate --shard` on
machines without a shared file system).

Rules:
- Every source is a mibench run (an older store is upgraded as `Store.open` does). `into` is a new (absent
  or empty) folder or an existing run, which the sources may overlap; a source that is `into`, or is
  given twice, is skipped.
- Rows merge table by table, by key. A key met again must agree with the row kept (the first met:
  `into`'s, then the sources' in the order given), else the merge stops with a conflict:
  jobs (job_id: every field but `music_path`, where that machine found the audio), models (name: the
  generator and its settings fingerprint, the store's rule that a name stands for one set of settings),
  evaluations (id: judge, mode, settings), videos (job_id: the settings fingerprint; a 'done' row wins
  over a 'failed' one, and two 'done' ones must have the same file bytes), answers (job, evaluation,
  question, run index: raw text and score), metrics (job, name, fingerprint: value). Timestamps
  (`created`) are kept as made.
- Sessions are appended, each tagged in its options with the folder name of its source
  (`{"merged_from": NAME}`, unless it carries one from an earlier merge); one already in `into` is not
  added again. Claims (work in progress) are not copied.
- The files of the videos taken (the mp4 and its `.json` sidecar) are copied to the same path inside
  `into`, atomically (temp + rename); a file already there with the same bytes is left, one with other
  bytes is a conflict. A path outside its run (registered videos) is kept as is and reported.
- Everything is checked before anything is written, so a conflict leaves `into` as it was. Then, in one
  transaction, the files are copied, the rows inserted and (when anything was added) a `merge` session
  recorded; a failure leaves `into` without the new rows. Merging the same sources again adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

from mibench.errors import StoreError
from mibench.media.audio import atomic_output
from mibench.provenance import versions
from mibench.stages.generate import differences
from mibench.store import STORE_NAME, Store

# table -> (key columns, columns that must agree), in the order rows are inserted (references first)
RULES = {
    "jobs": (("job_id",), ("item_id", "model", "suite", "music_id", "prompt_id", "prompt", "seed", "num_frames",
                           "tempo", "bpm", "genre", "tags")),
    "models": (("name",), ("generator", "fingerprint")),
    "evaluations": (("id",), ("judge", "mode", "settings")),
    "videos": (("job_id",), ("fingerprint",)),
    "answers": (("job_id", "evaluation", "question_id", "run_index"), ("raw", "score")),
    "metrics": (("job_id", "name", "fingerprint"), ("value",)),
}
_MODEL_FIX = "a model name stands for one set of settings: make one run's videos under another name (generate --as)"
_FIX = "drop those rows from one of the two runs, or redo them there with the same settings, and merge again"


@dataclass
class MergeSummary:
    into: Path
    sources: list[str]
    added: dict[str, int] = field(default_factory=dict)  # rows added per table (videos: also a failed one replaced)
    copied: int = 0  # files copied
    present: int = 0  # files already in `into` with the same bytes
    external: list[str] = field(default_factory=list)  # video paths outside their run, kept as is

    def as_dict(self) -> dict:
        return {"into": str(self.into), "sources": self.sources, "added": self.added, "files_copied": self.copied,
                "files_present": self.present, "external": self.external}


@dataclass
class _Run:
    folder: Path
    store: Store


def merge_runs(sources: list[Path], into: Path, *, log: Callable[[str], None] = lambda _: None) -> MergeSummary:
    """Merge the runs `sources` into the run `into` (see the module docstring)."""
    into = Path(into)
    is_run = (into / STORE_NAME).is_file()
    if not is_run and into.exists() and any(into.iterdir()):
        raise StoreError(f"{into} is neither a mibench run nor an empty folder", "pass a new folder or a run to --into")
    with ExitStack() as stack:
        runs, seen = [], {into.resolve()}
        for folder in map(Path, sources):
            if folder.resolve() in seen:
                log(f"merge: skipped {folder}: " + ("it is the target" if folder.resolve() == into.resolve()
                                                    else "given twice"))
                continue
            if not (folder / STORE_NAME).is_file():
                raise StoreError(f"{folder} is not a mibench run (no {STORE_NAME})",
                                 "pass run folders made by `mibench generate`")
            seen.add(folder.resolve())
            runs.append(_Run(folder, stack.enter_context(closing(Store.open(folder)))))
        target = _Run(into, stack.enter_context(closing(Store.open(into)))) if is_run else None
        summary = MergeSummary(into, [str(run.folder) for run in runs])
        kept = _kept_rows(([target] if target else []) + runs)
        taken = {table: [row for run, row in rows.values() if run is not target] for table, rows in kept.items()}
        copies = _files(kept["videos"].values(), target, into, summary, log)
        sessions = _new_sessions(runs, target)
        summary.added = {table: len(rows) for table, rows in taken.items()} | {"sessions": len(sessions)}
        if any(summary.added.values()):
            now = time.time()
            sessions.append(("merge", json.dumps({"sources": summary.sources, "into": str(into)}),
                             json.dumps(versions()), now, now))
        store = target.store if target else stack.enter_context(closing(Store.open(into)))
        with store.transaction() as db:
            for source, dest in copies:
                with atomic_output(dest) as tmp:
                    shutil.copyfile(source, tmp)
            for table, rows in taken.items():
                for row in rows:
                    db.execute(f"INSERT {'OR REPLACE ' if table == 'videos' else ''}INTO {table} ({', '.join(row)}) "
                               f"VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
            db.executemany("INSERT INTO sessions (stage, options, versions, started, finished) VALUES (?, ?, ?, ?, ?)",
                           sessions)
        summary.copied = len(copies)
    return summary


def _kept_rows(runs: list[_Run]) -> dict[str, dict[tuple, tuple[_Run, dict]]]:
    """Per table, key -> (run, row) of the row kept; raises on the first conflict."""
    kept: dict[str, dict[tuple, tuple[_Run, dict]]] = {table: {} for table in RULES}
    for run in runs:
        for table, (key_columns, same) in RULES.items():
            for row in map(dict, run.store.db.execute(f"SELECT * FROM {table} ORDER BY rowid")):
                key = tuple(row[c] for c in key_columns)
                if key not in kept[table]:
                    kept[table][key] = (run, row)
                    continue
                held, old = kept[table][key]
                changed = [f"{c}: {_short(old[c])} -> {_short(row[c])}" for c in same if old[c] != row[c]]
                if changed and table == "models":
                    changed = differences(json.loads(old["settings"]), json.loads(row["settings"])) or changed
                if not changed and table == "videos":
                    changed = _video_difference(held, old, run, row)
                    if row["status"] == "done" and old["status"] != "done":
                        kept[table][key] = (run, row)
                if changed:
                    raise StoreError(f"cannot merge: {table[:-1]} {', '.join(map(str, key))} differs between "
                                     f"{held.folder} and {run.folder} ({'; '.join(changed[:3])})",
                                     _MODEL_FIX if table == "models" else _FIX)
    return kept


def _video_difference(held: _Run, old: dict, run: _Run, row: dict) -> list[str]:
    """Two 'done' videos of one job under one fingerprint must be the same file (when both can be read)."""
    if old["status"] != "done" or row["status"] != "done":
        return []
    first, second = _digest(held.store.resolve(old["path"])), _digest(run.store.resolve(row["path"]))
    if not first or not second or first == second:
        return []
    return [f"the video files differ: {old['path']}" + ("" if old["path"] == row["path"] else f" vs {row['path']}")]


def _files(videos, target: _Run | None, into: Path, summary: MergeSummary,
           log: Callable[[str], None]) -> list[tuple[Path, Path]]:
    """(source, destination) of the files to copy for the video rows taken from the sources."""
    copies = []
    for run, row in videos:
        if run is target or row["status"] != "done" or not row["path"]:
            continue
        if Path(row["path"]).is_absolute():
            summary.external.append(row["path"])
            log(f"merge: video of {row['job_id']} lies outside {run.folder}, kept as is: {row['path']}")
            continue
        video = run.folder / row["path"]
        if not video.is_file():
            raise StoreError(f"cannot merge: {run.folder} records the video of {row['job_id']} as done but "
                             f"{video} is missing", "restore the file, or generate the job again in that run")
        for source in (video, video.with_suffix(".json")):
            dest = into / source.relative_to(run.folder)
            if not source.is_file():
                continue
            if not dest.is_file():
                copies.append((source, dest))
            elif _digest(dest) == _digest(source):
                summary.present += 1
            else:
                raise StoreError(f"cannot merge: video {row['job_id']}: {dest} differs from {source}", _FIX)
    return copies


def _new_sessions(runs: list[_Run], target: _Run | None) -> list[tuple]:
    """The sources' sessions not yet in `into`, each tagged with its source's folder name."""
    known = set() if target is None else {_identity(row) for row in target.store.db.execute("SELECT * FROM sessions")}
    found = []
    for run in runs:
        for row in map(dict, run.store.db.execute("SELECT * FROM sessions ORDER BY id")):
            options = json.loads(row["options"])
            options.setdefault("merged_from", Path(os.path.abspath(run.folder)).name)
            row["options"] = json.dumps(options, default=str)
            if _identity(row) not in known:
                known.add(_identity(row))
                found.append((row["stage"], row["options"], row["versions"], row["started"], row["finished"]))
    return found


def _identity(row) -> tuple:
    return (row["stage"], json.dumps(json.loads(row["options"]), sort_keys=True), row["versions"], row["started"])


def _digest(path: str | Path | None) -> str | None:
    """SHA-256 of a file's bytes (None when there is none)."""
    if not path or not Path(path).is_file():
        return None
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _short(value: object, size: int = 40) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= size else text[:size] + "..."
