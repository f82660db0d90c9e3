"""Render a run's report: HTML leaderboard + drill-down pages (Jinja2, autoescape on), CSV and JSON.

Layout written by `render_report(run_dir)` (every file written to a temporary name, then renamed):

    runs/<run>/report/index.html              the leaderboard first (`board`: ranking, CIs, best marks,
                                              charts, judges and settings), then how the numbers are
                                              made, the paper-style tables per judge and mode with paired
                                              comparisons, slices, objective metrics, reliability, the
                                              numbers reported by papers, and the run's details (collapsed)
    runs/<run>/report/model-<slug>-<hash>.html one page per model: every video playable (relative path),
                                              its prompt, music, seed, judge answers and metric values
    runs/<run>/report/leaderboard.csv         `aggregate.leaderboard` (one row per judge, mode, model)
    runs/<run>/report/slices.csv              the headline score per prompt tag and music genre
    runs/<run>/report/leaderboard.json        the same rows plus definitions, columns, ranking,
                                              comparisons, slices, valid mass and the references
    runs/<run>/report/leaderboard.md          the same tables as Markdown

The pages work offline: no CDN, inline CSS, one inline sorting script allowed by its hash in the
page's Content-Security-Policy (so injected scripts would not run even if escaping failed). Untrusted
text (prompts, judge answers, model names) reaches HTML only through Jinja autoescape or
`markupsafe.escape`, and file names only through a slug + hash. The pages are made of `views`; the
same leaderboards as Markdown and JSON come from `text`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from mibench.report.aggregate import Aggregate, leaderboard
from mibench.report.board import board_charts
from mibench.report.references import reported_number, shown, verified
from mibench.report.reliability import reliability_tables
from mibench.report.text import (
    AGREEMENT_COLUMNS,
    ReportData,
    agreement_cells,
    ci_text,
    collect,
    leaderboard_json,
    markdown,
    mass_text,
    open_run,
    spreadsheet_csv,
)
from mibench.report.views import (
    DEFINITIONS,
    MODE_LABELS,
    Cell,
    evaluation_settings_by_label,
    fmt,
    fmt_significant,
    librosa_versions,
    model_page,
    objective_definitions,
    slice_tables,
)
from mibench.store import Store
from mibench.study.votes import votes_csv

TEMPLATES = Path(__file__).resolve().parent / "templates"
REPORT_DIR = "report"


# -- run summary ------------------------------------------------------------------------------------
def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "unfinished"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _judging(answers: list[dict], evaluations: list[dict], agg: Aggregate) -> list[dict]:
    """Per judge evaluation and mode: question sets, runs, answers, missing, the settings used and, in
    expected mode, the valid mass."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for answer in answers:
        groups.setdefault((answer["judge"], answer["mode"]), []).append(answer)
    settings = evaluation_settings_by_label(answers, evaluations)
    mass = {(r["judge"], r["mode"]): r for r in agg.valid_mass.to_dict("records")}
    return [{"judge": judge, "mode": mode, "protocol": MODE_LABELS.get(mode, mode),
             "valid_mass": mass_text(mass.get((judge, mode))),
             "question_sets": sorted({r["question_set"] for r in rows}),
             "runs": len({r["run_index"] for r in rows}), "answers": len(rows),
             "missing": sum(r["score"] is None for r in rows), "settings": settings.get((judge, mode), "")}
            for (judge, mode), rows in sorted(groups.items())]


def _summary(store: Store, data: ReportData) -> dict:
    agg, answers, evaluations = data.agg, data.answers, data.evaluations
    jobs = store.jobs()
    failed = store.videos(status="failed")
    scored = agg.per_video.groupby("model")["job_id"].nunique()
    models = [{"name": m, "href": model_page(m), "jobs": sum(j["model"] == m for j in jobs),
               "done": agg.done.get(m, 0), "failed": sum(v["model"] == m for v in failed),
               "scored": int(scored.get(m, 0)), "settings": data.generators.get(m, "")} for m in store.models()]
    sessions = [{"stage": s["stage"], "started": when(s["started"]), "finished": when(s["finished"]),
                 "options": json.dumps(s["options"], sort_keys=True),
                 "versions": json.dumps(s["versions"], sort_keys=True)} for s in store.sessions()]
    return {"models": models, "judging": _judging(answers, evaluations, agg), "sessions": sessions,
            "seeds": sorted({j["seed"] for j in jobs}), "suites": sorted({j["suite"] for j in jobs}),
            "frames": sorted({j["num_frames"] for j in jobs})}


# -- model pages ------------------------------------------------------------------------------------
def video_src(path: str | None, report_dir: Path) -> tuple[str | None, bool]:
    """The video's URL relative to the report folder, and whether the file exists (`path` is absolute,
    as the store hands it out)."""
    if not path:
        return None, False
    found = Path(path)
    relative = os.path.relpath(found.resolve(), report_dir.resolve())
    return quote(Path(relative).as_posix()), found.is_file()


def _videos(store: Store, model: str, agg: Aggregate, report_dir: Path, all_answers: list[dict],
            metric_rows: list[dict]) -> list[dict]:
    order = {c.key: i for i, c in enumerate(agg.columns)}
    labels = {c.key: c.label for c in agg.columns}
    videos = {v["job_id"]: v for v in store.videos(model, status=None)}
    answers: dict[str, dict[tuple[str, str], list[dict]]] = {}
    for a in sorted(all_answers, key=lambda a: (a["judge"], a["mode"], order.get(a["question_id"], 99),
                                                a["run_index"])):
        group = answers.setdefault(a["job_id"], {}).setdefault((a["judge"], a["mode"]), [])
        group.append({**a, "label": labels.get(a["question_id"], a["question_id"]),
                      "spread": distribution_sd(a["distribution"]), "excluded": excluded(a, agg.min_valid_mass)})
    metrics: dict[str, list[dict]] = {}
    for m in metric_rows:
        metrics.setdefault(m["job_id"], []).append({**m, "params": _shown_params(m["params"])})
    out = []
    for job in store.jobs(model):
        video = videos.get(job["job_id"], {})
        src, exists = video_src(video.get("path"), report_dir)
        info = {k: v for k, v in (video.get("info") or {}).items() if isinstance(v, (int, float, str, bool))}
        out.append({**job, "path": video.get("path"), "status": video.get("status", "not generated"),
                    "error": video.get("error"),
                    "src": src, "exists": exists, "info": info, "answers": [{"judge": judge, "mode": mode, "rows": rows}
                                 for (judge, mode), rows in answers.get(job["job_id"], {}).items()],
                    "metrics": metrics.get(job["job_id"], [])})
    return out


def excluded(answer: dict, min_valid_mass: float | None) -> bool:
    """Whether an answer was left out of the scores for its low valid mass (`report --min-valid-mass`; the
    rule of `aggregate.per_video_scores`)."""
    mass = answer.get("valid_mass")
    return (min_valid_mass is not None and answer["mode"] == "expected" and mass is not None
            and float(mass) < min_valid_mass)


def _shown_params(params: str | None) -> str:
    """A metric's stored parameters as shown on a model page, one `key = value` per line: nested keys
    joined with dots, floats to 4 significant digits, feature vectors summarised by their length."""
    lines = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif prefix.endswith("features") and isinstance(value, list):
            lines.append(f"{prefix} = {len(value)} values (for Dist_k)")
        elif isinstance(value, float):
            lines.append(f"{prefix} = {value:.4g}")
        else:
            lines.append(f"{prefix} = {value if isinstance(value, str) else json.dumps(value)}")

    walk("", json.loads(params or "{}"))
    return "\n".join(lines)


def distribution_sd(distribution: str | None) -> float | None:
    """The standard deviation of an expected-mode answer's score distribution (JSON {"0": p, ...})."""
    if not distribution:
        return None
    probs = {float(k): float(p) for k, p in json.loads(distribution).items()}
    mean = sum(k * p for k, p in probs.items())
    return math.sqrt(sum(p * (k - mean) ** 2 for k, p in probs.items()))


def _model_scores(agg: Aggregate, model: str) -> list[dict]:
    labels = {c.key: c.label for c in agg.columns}
    part = agg.scores[agg.scores["model"] == model]
    return [{"judge": judge, "mode": mode,
             "rows": [{"metric": labels[r["key"]], "cell": Cell(r["mean"], r["ci_low"], r["ci_high"],
                                                                 int(r["n_missing"])),
                       "n_videos": int(r["n_videos"]), "n_answers": int(r["n_answers"])}
                      for r in sub.to_dict("records")]}
            for (judge, mode), sub in part.groupby(["judge", "mode"], sort=True)]


# -- output -----------------------------------------------------------------------------------------
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    script = (TEMPLATES / "sort.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    env.globals.update(script=Markup(script), script_hash=f"sha256-{digest}", fmt=fmt, fmt_significant=fmt_significant,
                       reported=reported_number,
                       style=Markup((TEMPLATES / "style.css").read_text(encoding="utf-8")))
    return env


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_report(run_dir: Path, *, reference: bool = True, seed: int = 0, dist_reference: str | None = None,
                  min_valid_mass: float | None = None, exclude_failed_raters: bool = False) -> Path:
    """Write the run's report folder (see the module docstring); returns the path of index.html."""
    run_dir = Path(run_dir)
    store = open_run(run_dir)
    report_dir = run_dir / REPORT_DIR
    report_dir.mkdir(exist_ok=True)
    env = _environment()
    try:
        data = collect(store, run_dir.name, reference=reference, seed=seed, dist_reference=dist_reference,
                       min_valid_mass=min_valid_mass, exclude_failed_raters=exclude_failed_raters)
        votes = {r.study.id: votes_csv(store, r.study.id) for r in data.studies}
        agg = data.agg
        common = {"run": run_dir.name, "definitions": DEFINITIONS, "seed": seed, "n_boot": agg.n_boot,
                  "min_valid_mass": agg.min_valid_mass}
        for model in store.models():
            page = env.get_template("model.html").render(
                **common, model=model, scores=_model_scores(agg, model),
                videos=_videos(store, model, agg, report_dir, data.answers, data.metric_rows))
            _write(report_dir / model_page(model), page)
        index = env.get_template("index.html").render(**common, **_index_context(store, data))
    finally:
        store.close()
    _write(report_dir / "leaderboard.csv", spreadsheet_csv(leaderboard(agg)))
    _write(report_dir / "slices.csv", spreadsheet_csv(agg.slices))
    _write(report_dir / "leaderboard.json", leaderboard_json(data))
    _write(report_dir / "leaderboard.md", markdown(data))
    for study_id, text in votes.items():
        _write(report_dir / f"study-{study_id}-votes.csv", text)
    _write(report_dir / "index.html", index)
    return report_dir / "index.html"


def _index_context(store: Store, data: ReportData) -> dict:
    agg = data.agg
    return {"empty": agg.empty, "summary": _summary(store, data),
            "board": data.board, "board_charts": board_charts(data.board), "sections": data.sections,
            "agreement": _agreement_tables(data),
            "slices": slice_tables(agg), "objective": data.objective,
            "objective_definitions": objective_definitions(agg), "librosa": librosa_versions(data.metric_rows),
            "dist_reference": agg.dist_reference, "reliability": reliability_tables(store),
            "references": [{**shown(d), "verified": verified(d)} for d in data.references],
            "studies": _study_views(data)}


def _study_views(data: ReportData) -> list[dict]:
    """Per human study: the win-rate rows (with alpha), the checks, the judge agreement, the votes file."""
    views = []
    for results in data.studies:
        alpha = results.agreement.set_index("question_id")
        rows = [{**r, "win": ci_text(r, "win_rate_a"), "tie": ci_text(r, "tie_rate"),
                 "alpha": fmt(alpha.at[r["question_id"], "alpha"])} for r in results.win_rates.to_dict("records")]
        views.append({"study": results.study, "rows": rows, "checks": results.checks.to_dict("records"),
                      "judges": results.judges.to_dict("records"), "failing": results.failing_raters,
                      "excluded": results.excluded, "votes": f"study-{results.study.id}-votes.csv"})
    return views


def _agreement_row(row: dict, labels: dict[str, str]) -> dict:
    return {"metric": labels.get(row["key"], row["key"]), "cells": agreement_cells(row), "verdict": row["verdict"],
            "note": row["note"] or ""}


def _agreement_tables(data: ReportData) -> list[dict]:
    """Per pair of judge groups: the statement on the overall ranking, a row per summary column (overall and
    categories), and one per question (shown collapsed)."""
    labels = {c.key: c.label for c in data.agg.columns}
    summary = {c.key for c in data.agg.columns if c.kind != "question"}
    tables = []
    for (ja, ma, jb, mb), part in data.agreement.groupby(["judge_a", "mode_a", "judge_b", "mode_b"], sort=False):
        rows = part.to_dict("records")
        headline = next((r for r in rows if r["key"] == "overall"), rows[0])
        tables.append({"title": f"{ja} · {ma} vs {jb} · {mb}", "id": f"agreement-{len(tables)}",
                       "headline": headline, "headline_label": labels.get(headline["key"], headline["key"]),
                       "headers": [label for _, label in AGREEMENT_COLUMNS],
                       "rows": [_agreement_row(r, labels) for r in rows if r["key"] in summary],
                       "questions": [_agreement_row(r, labels) for r in rows if r["key"] not in summary]})
    return tables
