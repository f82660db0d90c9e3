"""Render a run's report: HTML leaderboard + drill-down pages (Jinja2, autoescape on), CSV and JSON.

Layout written by `render_report(run_dir)` (every file written to a temporary name, then renamed):

    runs/<run>/report/index.html              run summary, leaderboards laid out like the paper's
                                              Tables 1-3 per judge and mode, charts, paired comparisons
    runs/<run>/report/model-<slug>-<hash>.html one page per model: every video playable (relative path),
                                              its prompt, music, seed, judge answers and metric values
    runs/<run>/report/leaderboard.csv         `aggregate.leaderboard` (one row per judge, mode, model)
    runs/<run>/report/leaderboard.json        the same rows plus definitions, columns, comparisons and
                                              the paper's reported numbers (when `reference`)

The pages work offline: no CDN, inline CSS, one inline sorting script allowed by its hash in the
page's Content-Security-Policy (so injected scripts would not run even if escaping failed). Untrusted
text (prompts, judge answers, model names) reaches HTML only through Jinja autoescape or
`markupsafe.escape`, and file names only through a slug + hash. `markdown_table` prints the same
leaderboards as Markdown (`mibench report --format md`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from mibench.errors import StoreError
from mibench.report.aggregate import (
    CATEGORY_KEYS,
    OVERALL,
    Aggregate,
    Column,
    aggregate,
    labelled_answers,
    leaderboard,
)
from mibench.report.charts import Bar, category_chart, metric_chart
from mibench.report.reliability import reliability_tables
from mibench.resources import data_dir
from mibench.store import STORE_NAME, Store
from mibench.suite.jobs import slug

TEMPLATES = Path(__file__).resolve().parent / "templates"
REPORT_DIR = "report"
MODE_LABELS = {"greedy": "greedy text answers (the paper's protocol)",
         "expected": "expected score over 0-10 (mibench option, not the paper's protocol)"}
DEFINITIONS = {
    "video_score": "per video, the mean over the judge's runs of the parsed scores",
    "model_score": "the mean over the model's videos that have a score",
    "missing": "an unparseable answer is missing: counted, never averaged in as 0",
    "category": "the mean of the category's metric scores (the paper's Avg columns)",
    OVERALL: "the mean of the quality metrics (Dance Quality + Video Quality: 8 in the paper's question set), "
             "as the paper's Table 4; prompt alignment is not part of it",
    "ci": "95% percentile bootstrap over videos",
    "comparison": "paired over items (same music window, prompt, seed): mean difference A - B, bootstrap CI, "
                  "Wilcoxon signed-rank p",
}


# -- views ------------------------------------------------------------------------------------------
@dataclass
class Cell:
    value: float
    low: float = math.nan
    high: float = math.nan
    n_missing: int = 0
    best: bool = False

    @property
    def text(self) -> str:
        return fmt(self.value)

    @property
    def ci(self) -> str:
        return "" if math.isnan(self.low) else f"[{fmt(self.low)}, {fmt(self.high)}]"

    @property
    def sort(self) -> str:
        return "" if math.isnan(self.value) else repr(self.value)


@dataclass
class Row:
    model: str
    cells: list[Cell]
    href: str | None = None
    videos: str = ""
    missing: int = 0
    note: str = ""


@dataclass
class Table:
    id: str
    title: str
    headers: list[str]
    rows: list[Row]
    reference: list[Row] = field(default_factory=list)
    reference_caption: str = ""


@dataclass
class Section:
    judge: str
    mode: str
    tables: list[Table]
    charts: list[Markup]
    comparisons: list[dict]
    settings: str = ""

    @property
    def protocol(self) -> str:
        return MODE_LABELS.get(self.mode, self.mode)


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def model_page(model: str) -> str:
    """The drill-down file name of a model: a safe slug plus a hash of the exact name."""
    return f"model-{slug(model)}-{hashlib.sha1(model.encode()).hexdigest()[:8]}.html"


def _mark_best(rows: list[Row]) -> None:
    if len(rows) < 2:
        return
    for i in range(len(rows[0].cells)):
        values = [r.cells[i].value for r in rows if not math.isnan(r.cells[i].value)]
        for row in rows:
            row.cells[i].best = bool(values) and row.cells[i].value == max(values)


def _reference_rows(table: dict, keys: list[str]) -> list[Row]:
    return [Row(model=r["model"], cells=[Cell(float(r.get(k, math.nan))) for k in keys],
                note=r.get("modality", "")) for r in table["rows"]]


def _tables(agg: Aggregate, judge: str, mode: str, reference: dict | None) -> list[Table]:
    scores = agg.scores[(agg.scores["judge"] == judge) & (agg.scores["mode"] == mode)]
    by_model = {m: part.set_index("key") for m, part in scores.groupby("model", sort=True)}
    scored = agg.per_video[(agg.per_video["judge"] == judge) & (agg.per_video["mode"] == mode)]
    n_scored = scored.groupby("model")["job_id"].nunique()
    n_missing = scored.groupby("model")["n_missing"].sum()

    def row(model: str, columns: list[Column], missing: int) -> Row:
        part = by_model[model]
        cells = [Cell(part.at[c.key, "mean"], part.at[c.key, "ci_low"], part.at[c.key, "ci_high"],
                      int(part.at[c.key, "n_missing"])) for c in columns]
        return Row(model, cells, href=model_page(model), videos=f"{n_scored[model]} / {agg.done.get(model, 0)}",
                   missing=missing)

    tables = []
    for category, key in CATEGORY_KEYS.items():
        columns = [c for c in agg.columns if c.category == category]
        if not columns:
            continue
        rows = [row(m, columns, int(by_model[m].at[key, "n_missing"])) for m in by_model]
        _mark_best(rows)
        table = Table(id=f"{key}-{slug(judge)}-{mode}", title=category, headers=[c.label for c in columns],
                      rows=rows)
        if reference and key in reference["tables"]:
            table.reference = _reference_rows(reference["tables"][key], [c.key for c in columns])
            table.reference_caption = reference["tables"][key]["caption"]
        tables.append(table)
    summary = sorted((c for c in agg.columns if c.kind != "question"), key=lambda c: c.kind != "overall")
    others = [c for c in agg.columns if c.kind == "question" and c.category is None]
    if summary or others:
        rows = [row(m, summary + others, int(n_missing[m])) for m in by_model]
        _mark_best(rows)
        tables.append(Table(id=f"summary-{slug(judge)}-{mode}", title="Summary",
                            headers=[c.label for c in summary + others], rows=rows))
    return tables


def _charts(agg: Aggregate, judge: str, mode: str) -> list[Markup]:
    scores = agg.scores[(agg.scores["judge"] == judge) & (agg.scores["mode"] == mode)]
    models = sorted(set(scores["model"]))
    indexed = scores.set_index(["key", "model"])

    def groups(columns: list[Column]) -> list[tuple[str, list[Bar]]]:
        return [((c.category or "Overall") if c.kind != "question" else c.label,
                 [Bar(m, *indexed.loc[(c.key, m), ["mean", "ci_low", "ci_high"]].astype(float)) for m in models])
                for c in columns]

    averages = [c for c in agg.columns if c.kind != "question"]
    questions = [c for c in agg.columns if c.kind == "question"]
    title = f"{judge} · {mode}"
    charts = [category_chart(f"Category averages with 95% CI ({title})", models, groups(averages))]
    if questions:
        charts.append(metric_chart(f"Per-metric scores with 95% CI ({title})", models, groups(questions)))
    return charts


def _comparisons(agg: Aggregate, judge: str, mode: str) -> list[dict]:
    labels = {c.key: c.label for c in agg.columns}
    part = agg.comparisons[(agg.comparisons["judge"] == judge) & (agg.comparisons["mode"] == mode)]
    return [{"a": r["model_a"], "b": r["model_b"], "metric": labels[r["key"]], "n": int(r["n_pairs"]),
             "diff": Cell(r["mean_diff"], r["ci_low"], r["ci_high"]), "p": fmt(r["p_value"], 3)}
            for r in part.to_dict("records")]


def _sections(agg: Aggregate, reference: dict | None, settings: dict[tuple[str, str], str]) -> list[Section]:
    """One section per judge evaluation and mode, with its settings; the paper's protocol (greedy) first."""
    pairs = sorted(set(agg.scores[["judge", "mode"]].itertuples(index=False, name=None)),
                   key=lambda p: (p[0], p[1] != "greedy", p[1]))
    return [Section(judge, mode, _tables(agg, judge, mode, reference), _charts(agg, judge, mode),
                    _comparisons(agg, judge, mode), settings.get((judge, mode), "")) for judge, mode in pairs]


def _objective(agg: Aggregate) -> Table | None:
    if agg.objective.empty:
        return None
    keys = list(dict.fromkeys(agg.objective["key"]))
    indexed = agg.objective.set_index(["model", "key"])
    rows = []
    for model in sorted(set(agg.objective["model"])):
        cells = [Cell(*indexed.loc[(model, k), ["mean", "ci_low", "ci_high"]].astype(float),
                      int(indexed.at[(model, k), "n_missing"])) if (model, k) in indexed.index else Cell(math.nan)
                 for k in keys]
        rows.append(Row(model, cells, href=model_page(model), missing=sum(c.n_missing for c in cells)))
    return Table(id="objective-table", title="Objective metrics", headers=keys, rows=rows)


# -- run summary ------------------------------------------------------------------------------------
def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "unfinished"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def settings_text(settings: dict) -> str:
    """A settings dict as one line of `key=value` (nested keys dotted; long values shortened)."""
    parts = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        else:
            text = json.dumps(value, default=str) if not isinstance(value, str) else value
            parts.append(f"{prefix[:-1]}={text if len(text) <= 60 else text[:57] + '...'}")

    walk("", settings)
    return "; ".join(parts)


def evaluation_settings_by_label(answers: list[dict], evaluations: list[dict]) -> dict[tuple[str, str], str]:
    """(label, mode) -> the evaluation's id and settings (judge settings, weights, seed, question set)."""
    by_id = {e["id"]: e for e in evaluations}
    out = {}
    for a in answers:
        e = by_id.get(a["evaluation"])
        if e is not None and (a["judge"], a["mode"]) not in out:
            shown = {k: v for k, v in e["settings"].items() if k not in ("questions", "judge", "mode")}
            out[(a["judge"], a["mode"])] = f"evaluation {e['id']}: {settings_text(shown)}"
    return out


def _judging(answers: list[dict], evaluations: list[dict]) -> list[dict]:
    """Per judge evaluation and mode: question sets, runs, answers, missing and the settings used."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for answer in answers:
        groups.setdefault((answer["judge"], answer["mode"]), []).append(answer)
    settings = evaluation_settings_by_label(answers, evaluations)
    return [{"judge": judge, "mode": mode, "protocol": MODE_LABELS.get(mode, mode),
             "question_sets": sorted({r["question_set"] for r in rows}),
             "runs": len({r["run_index"] for r in rows}), "answers": len(rows),
             "missing": sum(r["score"] is None for r in rows), "settings": settings.get((judge, mode), "")}
            for (judge, mode), rows in sorted(groups.items())]


def model_settings_text(store: Store, model: str) -> str:
    """The generator and settings a model name stands for in this run (see `generate --as`)."""
    held = store.model_settings(model)
    if held is None:
        return ""
    settings = held["settings"]
    shown = {"preset": settings.get("preset"), **(settings.get("settings") or {})}
    return f"{held['generator']} ({held['fingerprint']}): {settings_text(shown)}"


def _summary(store: Store, agg: Aggregate) -> dict:
    jobs = store.jobs()
    failed = store.videos(status="failed")
    scored = agg.per_video.groupby("model")["job_id"].nunique()
    models = [{"name": m, "href": model_page(m), "jobs": sum(j["model"] == m for j in jobs),
               "done": agg.done.get(m, 0), "failed": sum(v["model"] == m for v in failed),
               "scored": int(scored.get(m, 0)), "settings": model_settings_text(store, m)} for m in store.models()]
    sessions = [{"stage": s["stage"], "started": when(s["started"]), "finished": when(s["finished"]),
                 "options": json.dumps(s["options"], sort_keys=True),
                 "versions": json.dumps(s["versions"], sort_keys=True)} for s in store.sessions()]
    return {"models": models, "judging": _judging(labelled_answers(store), store.evaluations()), "sessions": sessions,
            "seeds": sorted({j["seed"] for j in jobs}), "suites": sorted({j["suite"] for j in jobs}),
            "frames": sorted({j["num_frames"] for j in jobs})}


# -- model pages ------------------------------------------------------------------------------------
def video_src(path: str | None, run_dir: Path, report_dir: Path) -> tuple[str | None, bool]:
    """The video's URL relative to the report folder, and whether the file exists."""
    if not path:
        return None, False
    given = Path(path)
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, run_dir / given]
    found = next((c for c in candidates if c.is_file()), candidates[0])
    relative = os.path.relpath(found.resolve(), report_dir.resolve())
    return quote(Path(relative).as_posix()), found.is_file()


def _videos(store: Store, model: str, agg: Aggregate, run_dir: Path, report_dir: Path) -> list[dict]:
    order = {c.key: i for i, c in enumerate(agg.columns)}
    labels = {c.key: c.label for c in agg.columns}
    videos = {v["job_id"]: v for v in store.videos(model, status=None)}
    answers: dict[str, dict[tuple[str, str], list[dict]]] = {}
    for a in sorted(labelled_answers(store), key=lambda a: (a["judge"], a["mode"], order.get(a["question_id"], 99),
                                                     a["run_index"])):
        group = answers.setdefault(a["job_id"], {}).setdefault((a["judge"], a["mode"]), [])
        group.append({**a, "label": labels.get(a["question_id"], a["question_id"]),
                      "spread": distribution_sd(a["distribution"])})
    metrics: dict[str, list[dict]] = {}
    for m in store.metrics():
        metrics.setdefault(m["job_id"], []).append({**m, "params": _shown_params(m["params"])})
    out = []
    for job in store.jobs(model):
        video = videos.get(job["job_id"], {})
        src, exists = video_src(video.get("path"), run_dir, report_dir)
        info = {k: v for k, v in (video.get("info") or {}).items() if isinstance(v, (int, float, str, bool))}
        out.append({**job, "path": video.get("path"), "status": video.get("status", "not generated"),
                    "error": video.get("error"),
                    "src": src, "exists": exists, "info": info, "answers": [{"judge": judge, "mode": mode, "rows": rows}
                                 for (judge, mode), rows in answers.get(job["job_id"], {}).items()],
                    "metrics": metrics.get(job["job_id"], [])})
    return out


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
def load_reference() -> dict:
    """The paper's reported numbers (reports/paper_reported.yaml)."""
    return yaml.safe_load((data_dir("reports") / "paper_reported.yaml").read_text(encoding="utf-8"))


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    script = (TEMPLATES / "sort.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    env.globals.update(script=Markup(script), script_hash=f"sha256-{digest}", fmt=fmt,
                       style=Markup((TEMPLATES / "style.css").read_text(encoding="utf-8")))
    return env


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _open(run_dir: Path) -> Store:
    if not (run_dir / STORE_NAME).is_file():
        raise StoreError(f"{run_dir} has no results store ({STORE_NAME})",
                         "pass the folder of a run made by `mibench generate`")
    return Store.open(run_dir)


def _json(agg: Aggregate, run_dir: Path, reference: dict | None) -> str:
    def records(df) -> list[dict]:
        return json.loads(df.to_json(orient="records", double_precision=15))

    columns = [{"key": c.key, "label": c.label, "kind": c.kind, "category": c.category,
                "members": list(c.members)} for c in agg.columns]
    document = {"run": run_dir.name, "seed": agg.seed, "n_boot": agg.n_boot, "dist_reference": agg.dist_reference,
                "definitions": DEFINITIONS,
                "columns": columns, "leaderboard": records(leaderboard(agg)),
                "comparisons": records(agg.comparisons), "reference": reference}
    return json.dumps(document, indent=1, ensure_ascii=False)


def leaderboard_document(run_dir: Path, *, reference: bool = True, seed: int = 0,
                         dist_reference: str | None = None) -> dict:
    """The numbers of `leaderboard.json` (see `render_report`) without writing anything."""
    store = _open(Path(run_dir))
    try:
        agg = aggregate(store, seed=seed, dist_reference=dist_reference)
    finally:
        store.close()
    return json.loads(_json(agg, Path(run_dir), load_reference() if reference else None))


def render_report(run_dir: Path, *, reference: bool = True, seed: int = 0, dist_reference: str | None = None) -> Path:
    """Write the run's report folder (see the module docstring); returns the path of index.html."""
    run_dir = Path(run_dir)
    store = _open(run_dir)
    report_dir = run_dir / REPORT_DIR
    report_dir.mkdir(exist_ok=True)
    env = _environment()
    ref = load_reference() if reference else None
    try:
        agg = aggregate(store, seed=seed, dist_reference=dist_reference)
        common = {"run": run_dir.name, "definitions": DEFINITIONS, "seed": seed, "n_boot": agg.n_boot}
        for model in store.models():
            page = env.get_template("model.html").render(
                **common, model=model, scores=_model_scores(agg, model),
                videos=_videos(store, model, agg, run_dir, report_dir))
            _write(report_dir / model_page(model), page)
        index = env.get_template("index.html").render(
            **common, empty=agg.empty, summary=_summary(store, agg),
            sections=_sections(agg, ref, evaluation_settings_by_label(labelled_answers(store), store.evaluations())),
            objective=_objective(agg), dist_reference=agg.dist_reference, reliability=reliability_tables(store),
            reference=ref)
    finally:
        store.close()
    _write(report_dir / "leaderboard.csv", leaderboard(agg).to_csv(index=False))
    _write(report_dir / "leaderboard.json", _json(agg, run_dir, ref))
    _write(report_dir / "index.html", index)
    return report_dir / "index.html"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(run_dir: Path, *, reference: bool = True, seed: int = 0, dist_reference: str | None = None) -> str:
    """The report as Markdown: per judge evaluation and mode, the paper-style tables with 95% CIs (and the
    paper's rows with `reference`), then the objective metrics (Dist_k normalised as `dist_reference`)."""
    store = _open(Path(run_dir))
    try:
        agg = aggregate(store, seed=seed, dist_reference=dist_reference)
        settings = evaluation_settings_by_label(labelled_answers(store), store.evaluations())
    finally:
        store.close()
    ref = load_reference() if reference else None
    lines = [f"Overall = {DEFINITIONS[OVERALL]}. Cells: mean [95% CI]; videos = scored / generated. "
             f"Bootstrap: {agg.n_boot} resamples, seed {seed}."]
    if agg.scores.empty:
        lines += ["", "No judge scores yet: run `mibench score` on this run."]
    for section in _sections(agg, ref, settings):
        lines += ["", f"## {_md(section.judge)} · {section.mode} ({section.protocol})", "", _md(section.settings)]
        for table in section.tables:
            lines += ["", *_md_table(table, ["Model", "Videos", *table.headers, "Missing answers"],
                                     lambda row: [row.videos], lambda row: [str(row.missing)])]
            if table.reference:
                lines += ["", f"Reported, not measured: {_md(table.reference_caption)}", "",
                          *_md_table(Table(table.id, "", table.headers, table.reference), ["Model", *table.headers],
                                     lambda row: [], lambda row: [], title=False)]
    objective = _objective(agg)
    if objective is not None:
        normalised = dist_reference or "all models of the run"
        lines += ["", f"## Objective metrics (pose_dist_k normalised with {_md(normalised)})", "",
                  *_md_table(objective, ["Model", *objective.headers, "Missing"], lambda row: [],
                             lambda row: [str(row.missing)], title=False)]
    return "\n".join(lines) + "\n"


def _md_table(table: Table, headers: list[str], before, after, *, title: bool = True) -> list[str]:
    lines = [f"### {table.title}", ""] if title else []
    lines += ["| " + " | ".join(map(_md, headers)) + " |", "|" + "---|" * len(headers)]
    for row in table.rows:
        cells = [f"{'**' + c.text + '**' if c.best else c.text} {c.ci}".strip() for c in row.cells]
        lines.append("| " + " | ".join([_md(row.model), *before(row), *cells, *after(row)]) + " |")
    return lines
