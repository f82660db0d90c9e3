"""Human preference studies in a run's store: blinded A/B pairs of two models' videos, raters and votes.

Tables, created on first use in the run's `mibench.sqlite` (`_SCHEMA`):
- `studies`      one row per study: id, created, model_a, model_b, `settings` (JSON: `questions`, a list of
                 {id, text, judge}; `allow_tie`; `per_rater`, model pairs per rater, None = all; `checks`,
                 attention checks per rater; `seed`);
- `study_items`  one row per pair of videos: `pair_id` (12 hex digits of a SHA-1 of study, kind, index
                 and jobs), `item_id`, `job_a`, `job_b`, `kind` and `expected` (see `expected_choice`):
                   'pair'  model_a's and model_b's video of one item (same music window, prompt, seed);
                   'same'  one video of the study beside itself (job_a == job_b): expected 'tie' for
                           every question when ties are allowed, else NULL (no right answer);
                   'beat'  the synthetic dancers of `checks` (job_a on the beat, job_b off it): expected
                           'a', for the questions whose judge is `beat_alignment` only;
- `study_raters` one row per rater: the secret `token` of the rater's link, `label`, `sequence` (JSON list
                 of {pair_id, left: 'a'|'b'}: the rater's pairs in showing order, and which video shows
                 on the left). Each rater sees `per_rater` model pairs (taken in turn from one seeded
                 shuffle, so the pairs are covered evenly) plus every check item, shuffled, with seeded
                 left/right sides (random.Random of "<seed>:<rater index>");
- `study_votes`  one row per (token, pair, question): `side` as clicked ('left'|'right'|'tie') and `choice`
                 resolved through the sequence ('a'|'b'|'tie'). Written once: a second vote on the same
                 question is refused and the first one stays.

A study's id is `<model_a>-vs-<model_b>-<6 random hex digits>` (slugs: safe as a folder name). Votes are
written and read through `votes`; the raters' web app is `server`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mibench.errors import MibenchError
from mibench.store import Store
from mibench.study.checks import BEAT_ITEM, write_beat_checks
from mibench.suite.jobs import slug

QUESTIONS_DIR = Path(__file__).resolve().parent / "questions"
BEAT_JUDGE = "beat_alignment"  # the judge key of the question a 'beat' check expects an answer to
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (id TEXT PRIMARY KEY, created REAL, model_a TEXT, model_b TEXT, settings TEXT);
CREATE TABLE IF NOT EXISTS study_items (study TEXT, pair_id TEXT, item_id TEXT, job_a TEXT, job_b TEXT,
    kind TEXT, expected TEXT, PRIMARY KEY (study, pair_id));
CREATE TABLE IF NOT EXISTS study_raters (study TEXT, token TEXT PRIMARY KEY, label TEXT, created REAL,
    sequence TEXT);
CREATE TABLE IF NOT EXISTS study_votes (study TEXT, token TEXT, pair_id TEXT, question_id TEXT, choice TEXT,
    side TEXT, created REAL, PRIMARY KEY (token, pair_id, question_id));
"""


class StudyError(MibenchError):
    """A bad study setting, or a request a study refuses; `status` is the HTTP status the server answers."""

    def __init__(self, cause: str, fix: str | None = None, *, status: int = 400):
        super().__init__(cause, fix)
        self.status = status


@dataclass(frozen=True)
class Study:
    id: str
    created: float
    model_a: str
    model_b: str
    questions: list[dict]
    allow_tie: bool
    per_rater: int | None
    checks: int
    seed: int

    @property
    def sides(self) -> tuple[str, ...]:
        return ("left", "right", "tie") if self.allow_tie else ("left", "right")


def ensure_tables(store: Store) -> None:
    """Create the study tables where missing (inside the caller's transaction, if any)."""
    for statement in filter(str.strip, _SCHEMA.split(";")):
        store.db.execute(statement)


def load_questions(name_or_path: str | Path = "paper") -> tuple[list[dict], bool]:
    """The questions ({id, text, judge}) and `allow_tie` of a packaged question file or a YAML path."""
    packaged = QUESTIONS_DIR / f"{name_or_path}.yaml"
    path = packaged if packaged.is_file() else Path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StudyError(f"cannot read study questions {path}: {exc}",
                         f"use 'paper' or a YAML file laid out like {QUESTIONS_DIR / 'paper.yaml'}") from exc
    entries = data.get("questions") if isinstance(data, dict) else None
    if not entries or not isinstance(entries, list) or not isinstance(data.get("allow_tie", True), bool):
        raise StudyError(f"study questions {path} need a list `questions` and a true/false `allow_tie`")
    questions = []
    for entry in entries:
        if not isinstance(entry, dict) or not _ID.fullmatch(str(entry.get("id", ""))) \
                or not str(entry.get("text", "")).strip() or not isinstance(entry.get("judge"), (str, type(None))):
            raise StudyError(f"malformed question {entry!r} in {path}",
                             "each needs an id (letters, digits, _ - .), a text and a judge key (or null)")
        questions.append({"id": entry["id"], "text": str(entry["text"]), "judge": entry.get("judge")})
    if len({q["id"] for q in questions}) != len(questions):
        raise StudyError(f"study questions {path} repeat an id")
    return questions, data.get("allow_tie", True)


def load_study(store: Store, study_id: str) -> Study:
    ensure_tables(store)
    row = store.db.execute("SELECT * FROM studies WHERE id=?", (study_id,)).fetchone()
    if row is None:
        known = [r[0] for r in store.db.execute("SELECT id FROM studies ORDER BY created")]
        raise StudyError(f"no study {study_id!r} in {store.root}", f"studies of this run: {known or 'none'}",
                         status=404)
    return Study(id=row["id"], created=row["created"], model_a=row["model_a"], model_b=row["model_b"],
                 **json.loads(row["settings"]))


def _pair_id(study_id: str, kind: str, index: int, job_a: str, job_b: str) -> str:
    return hashlib.sha1(json.dumps([study_id, kind, index, job_a, job_b]).encode()).hexdigest()[:12]


def _pairs(store: Store, model_a: str, model_b: str) -> list[tuple]:
    """(item, job_a, job_b, 'pair', None) per item both models have a done video of (their first, in job order)."""
    first_b: dict[str, str] = {}
    for video in store.videos(model_b):
        first_b.setdefault(video["item_id"], video["job_id"])
    pairs: dict[str, tuple] = {}
    for video in store.videos(model_a):
        if video["item_id"] in first_b and video["item_id"] not in pairs:
            pairs[video["item_id"]] = (video["item_id"], video["job_id"], first_b[video["item_id"]], "pair", None)
    if not pairs:
        raise StudyError(f"models {model_a!r} and {model_b!r} have no item with a done video of both",
                         "generate both models on the same suite, music and seeds first")
    return list(pairs.values())


def _checks(store: Store, study_id: str, pairs: list[tuple], questions: list[dict], allow_tie: bool,
            checks: int, seed: int, beat_checks: bool) -> list[tuple]:
    """`checks` check items: the 'beat' pair first (when asked for and a question's judge is beat_alignment),
    then 'same' pairs of the study's videos in a seeded order."""
    extra = []
    if checks and beat_checks and any(q["judge"] == BEAT_JUDGE for q in questions):
        extra.append((BEAT_ITEM, *write_beat_checks(store, study_id), "beat", "a"))
    shown = [(item, job) for item, a, b, _, _ in pairs for job in (a, b)]
    random.Random(f"{seed}:checks").shuffle(shown)
    for n in range(checks - len(extra)):
        item, job = shown[n % len(shown)]
        extra.append((item, job, job, "same", "tie" if allow_tie else None))
    return extra


def _sequences(pair_ids: list[str], check_ids: list[str], raters: int, per_rater: int, seed: int) -> list[list]:
    order = list(pair_ids)
    random.Random(seed).shuffle(order)
    sequences = []
    for index in range(raters):
        rng = random.Random(f"{seed}:{index}")
        shown = [order[(index * per_rater + i) % len(order)] for i in range(per_rater)] + check_ids
        rng.shuffle(shown)
        sequences.append([{"pair_id": p, "left": rng.choice("ab")} for p in shown])
    return sequences


def create_study(store: Store, model_a: str, model_b: str, *, questions: str | Path = "paper", raters: int,
                 per_rater: int | None = None, checks: int = 1, seed: int = 0, beat_checks: bool = True) -> Study:
    """A new study of model_a vs model_b with `raters` rater links (see the module docstring); `beat_checks`
    makes one of the `checks` the synthetic on-beat/off-beat pair when a question's judge is beat_alignment."""
    ensure_tables(store)
    question_list, allow_tie = load_questions(questions)
    if model_a == model_b or raters < 1 or checks < 0 or (per_rater is not None and per_rater < 1):
        raise StudyError("a study needs two different models, raters >= 1, per_rater >= 1 and checks >= 0")
    pairs = _pairs(store, model_a, model_b)
    if per_rater is not None and per_rater > len(pairs):
        raise StudyError(f"per_rater {per_rater} exceeds the {len(pairs)} pairs of {model_a} and {model_b}")
    study_id = f"{slug(model_a, 16)}-vs-{slug(model_b, 16)}-{secrets.token_hex(3)}"
    extra = _checks(store, study_id, pairs, question_list, allow_tie, checks, seed, beat_checks)
    items = [(study_id, _pair_id(study_id, kind, n, a, b), item, a, b, kind, expected)
             for n, (item, a, b, kind, expected) in enumerate(pairs + extra)]
    sequences = _sequences([row[1] for row in items[:len(pairs)]], [row[1] for row in items[len(pairs):]],
                           raters, per_rater or len(pairs), seed)
    study = Study(study_id, time.time(), model_a, model_b, question_list, allow_tie, per_rater, checks, seed)
    settings = {"questions": question_list, "allow_tie": allow_tie, "per_rater": per_rater, "checks": checks,
                "seed": seed}
    with store.transaction():
        store.db.execute("INSERT INTO studies VALUES (?, ?, ?, ?, ?)",
                         (study_id, study.created, model_a, model_b, json.dumps(settings)))
        store.db.executemany("INSERT INTO study_items VALUES (?, ?, ?, ?, ?, ?, ?)", items)
        store.db.executemany("INSERT INTO study_raters VALUES (?, ?, ?, ?, ?)",
                             [(study_id, secrets.token_urlsafe(24), f"rater-{i + 1}", study.created,
                               json.dumps(sequence)) for i, sequence in enumerate(sequences)])
    return study


def rater_links(store: Store, study_id: str, base_url: str) -> list[dict]:
    """{label, token, url} of every rater of a study, in creation order; url = `<base_url>/r/<token>`."""
    load_study(store, study_id)
    rows = store.db.execute("SELECT label, token FROM study_raters WHERE study=? ORDER BY rowid", (study_id,))
    return [{"label": r["label"], "token": r["token"], "url": f"{base_url.rstrip('/')}/r/{r['token']}"} for r in rows]


def expected_choice(kind: str, expected: str | None, judge: str | None) -> str | None:
    """The right answer ('a'|'b'|'tie') of a study item's question with judge key `judge`, or None."""
    return None if kind == "beat" and judge != BEAT_JUDGE else expected  # 'pair' items expect nothing (NULL)
