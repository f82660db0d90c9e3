"""Votes of a study's raters (tables in `model`): validated writes, progress, media lookup, CSV export.

Every vote is checked and written in one SQLite transaction (`record_vote`), so a killed server loses
nothing recorded and a refused vote leaves nothing behind. A rater is known by the token of their link
only; `media_path` maps (token, pair id, side) to a file through the store, never through a path taken
from a request.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from mibench.spreadsheet import inert
from mibench.store import Store
from mibench.study.checks import check_video
from mibench.study.model import Study, StudyError, ensure_tables, expected_choice, load_study


def _rater(store: Store, token: str, study_id: str | None) -> tuple[dict, Study]:
    """The rater row of `token` (sequence parsed) and its study; 404 for an unknown token (or another study's)."""
    ensure_tables(store)
    row = store.db.execute("SELECT * FROM study_raters WHERE token=?", (token,)).fetchone()
    if row is None or study_id not in (None, row["study"]):
        raise StudyError("unknown rater link", "ask the study's organiser for your link", status=404)
    return {**dict(row), "sequence": json.loads(row["sequence"])}, load_study(store, row["study"])


def _entry(rater: dict, pair_id: str, status: int = 400) -> dict:
    entry = next((e for e in rater["sequence"] if e["pair_id"] == pair_id), None)
    if entry is None:
        raise StudyError(f"pair {pair_id[:40]!r} is not one of this rater's pairs", status=status)
    return entry


def record_vote(store: Store, token: str, pair_id: str, question_id: str, side: str, *,
                study_id: str | None = None) -> dict:
    """Validate and store one vote in one transaction; the stored row. Nothing is written when it raises
    StudyError: unknown token (404), a pair not in the rater's sequence, an unknown question, a side not
    allowed (400), or a question of that pair already answered (409: the first vote stays)."""
    with store.transaction():
        rater, study = _rater(store, token, study_id)
        entry = _entry(rater, pair_id)
        if question_id not in [q["id"] for q in study.questions]:
            raise StudyError(f"unknown question {question_id[:40]!r}")
        if side not in study.sides:
            raise StudyError(f"side must be one of {', '.join(study.sides)}, not {side[:20]!r}")
        if store.db.execute("SELECT 1 FROM study_votes WHERE token=? AND pair_id=? AND question_id=?",
                            (token, pair_id, question_id)).fetchone():
            raise StudyError("this question of this pair is already answered", status=409)
        right = "b" if entry["left"] == "a" else "a"
        choice = {"left": entry["left"], "right": right, "tie": "tie"}[side]
        row = {"study": study.id, "token": token, "pair_id": pair_id, "question_id": question_id, "choice": choice,
               "side": side, "created": time.time()}
        store.db.execute("INSERT INTO study_votes VALUES (:study, :token, :pair_id, :question_id, :choice, :side, "
                         ":created)", row)
    return row


def progress(store: Store, token: str, *, study_id: str | None = None) -> dict:
    """Where a rater stands: `total` pairs, `done` (pairs with every question answered) and the first pair
    in the rater's order with an unanswered question (`index` from 0, `pair_id`, `answered` question ids,
    `question_id` to ask next); those are None when all are done."""
    rater, study = _rater(store, token, study_id)
    answered: dict[str, set[str]] = {}
    for r in store.db.execute("SELECT pair_id, question_id FROM study_votes WHERE token=?", (token,)):
        answered.setdefault(r["pair_id"], set()).add(r["question_id"])
    ids = [q["id"] for q in study.questions]
    open_pairs = [(i, e["pair_id"]) for i, e in enumerate(rater["sequence"])
                  if not set(ids) <= answered.get(e["pair_id"], set())]
    out = {"study": study.id, "label": rater["label"], "total": len(rater["sequence"]),
           "done": len(rater["sequence"]) - len(open_pairs), "index": None, "pair_id": None, "answered": [],
           "question_id": None}
    if open_pairs:
        index, pair_id = open_pairs[0]
        done = answered.get(pair_id, set())
        out.update(index=index, pair_id=pair_id, answered=[q for q in ids if q in done],
                   question_id=next(q for q in ids if q not in done))
    return out


def media_path(store: Store, token: str, pair_id: str, side: str, *, study_id: str | None = None) -> Path:
    """The video file shown on `side` ('left'|'right') of a rater's pair; StudyError 404 for anything else."""
    rater, study = _rater(store, token, study_id)
    entry = _entry(rater, pair_id, status=404)
    item = store.db.execute("SELECT job_a, job_b FROM study_items WHERE study=? AND pair_id=?",
                            (study.id, pair_id)).fetchone()
    if side not in ("left", "right") or item is None:
        raise StudyError("no such video", status=404)
    job = item["job_a"] if (side == "left") == (entry["left"] == "a") else item["job_b"]
    video = store.video(job) or {}
    path = check_video(store, study.id, job) or (Path(video["path"]) if video.get("path") else None)
    if path is None or not path.is_file():
        raise StudyError("video file missing", status=404)
    return path


def votes_csv(store: Store, study_id: str) -> str:
    """Every vote of a study as CSV (rater labels, never tokens), with the models chosen and expected answers;
    cells a spreadsheet would run as formulas are quoted (`mibench.spreadsheet`)."""
    study = load_study(store, study_id)
    judges = {q["id"]: q["judge"] for q in study.questions}
    rows = store.db.execute(
        "SELECT r.label, v.pair_id, i.kind, i.item_id, i.job_a, i.job_b, v.question_id, v.side, v.choice, "
        "i.expected, v.created FROM study_votes v JOIN study_raters r USING (token) "
        "JOIN study_items i ON i.study = v.study AND i.pair_id = v.pair_id WHERE v.study=? "
        "ORDER BY r.rowid, v.created", (study_id,))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["study", "rater", "pair_id", "kind", "item_id", "job_a", "job_b", "question_id", "judge",
                     "side", "choice", "chosen_model", "expected", "created"])
    names = {"a": study.model_a, "b": study.model_b, "tie": "tie"}
    for r in rows:
        judge = judges.get(r["question_id"])
        chosen = names[r["choice"]] if r["kind"] == "pair" else r["choice"]
        cells = [study.id, r["label"], r["pair_id"], r["kind"], r["item_id"], r["job_a"], r["job_b"],
                 r["question_id"], judge, r["side"], r["choice"], chosen,
                 expected_choice(r["kind"], r["expected"], judge) or "", f"{r['created']:.3f}"]
        writer.writerow([inert(cell) for cell in cells])
    return out.getvalue()
