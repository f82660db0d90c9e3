"""The views the report pages and the Markdown tables are made of: cells with confidence intervals,
leaderboard rows and tables laid out like the paper's Tables 1-3, one section per judge evaluation and
mode (with the settings behind it), charts, paired comparisons, the slice tables, the objective metrics
table; the labels and definitions every output shares. Judge scores (0-10) are shown with 2 decimals,
objective metrics with 4 significant digits (`objective_cell`; their scales differ and BAS values close
to each other must not print alike); CSV and JSON keep full precision."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import pandas as pd
from markupsafe import Markup

from mibench.metrics.registry import METRICS, better
from mibench.report.aggregate import CATEGORY_KEYS, OVERALL, Aggregate, Column
from mibench.report.charts import Bar, category_chart, metric_chart
from mibench.report.references import judge_rows
from mibench.suite.jobs import slug

MODE_LABELS = {"greedy": "greedy text answers (the paper's protocol)",
         "expected": "expected score over 0-10 (mibench option, not the paper's protocol)"}
DEFINITIONS = {
    "video_score": "per video, the mean over the judge's runs of the parsed scores",
    "model_score": "the mean over the model's videos that have a score",
    "missing": "an unparseable answer is missing: counted, never averaged in as 0",
    "category": "the mean of the category's metric scores (the paper's Avg columns), each metric's score the "
                "mean over the videos that have one; every category or overall number (comparisons, slices, "
                "cross-judge agreement) is made the same way",
    OVERALL: "the mean of the quality metrics (Dance Quality + Video Quality: 8 in the paper's question set), "
             "as the paper's Table 4; prompt alignment is not part of it",
    "ci": "95% percentile bootstrap that draws music tracks and prompts, not videos, wherever they group a "
          "model's videos (videos sharing a track or a prompt are not independent); where a suite crosses "
          "both, both are drawn and a video weighs the product of its track's and prompt's draws (two-way "
          "bootstrap); a factor whose every level holds one video is not a cluster, and with none the videos "
          "are drawn. The clustering is decided per model and named with each table",
    "comparison": "paired over items (same music window, prompt, seed): per metric the mean difference A - B over "
                  "the items both models have a score for (for a category or overall, the mean of those over its "
                  "metrics), with its clustered bootstrap CI and p-value (twice the share of resamples beyond 0, "
                  "never below 2^(1 - n) for n pairs, what an exact sign-flip test could show; none with fewer "
                  "than 2 pairs); p adjusted with Holm's method within each metric of a judge evaluation (the "
                  "family: every pair of models)",
    "valid_mass": "expected mode only: the probability the judge put on the answers 0..10; answers below the "
                  "threshold are flagged, and left out (counted as missing) when `report --min-valid-mass` is "
                  "given",
}


@dataclass
class Cell:
    value: float
    low: float = math.nan
    high: float = math.nan
    n_missing: int = 0
    best: bool = False
    significant: int | None = None  # show this many significant digits (objective metrics), else 2 decimals

    def _fmt(self, value: float) -> str:
        return fmt(value) if self.significant is None else fmt_significant(value, self.significant)

    @property
    def text(self) -> str:
        return self._fmt(self.value)

    @property
    def ci(self) -> str:
        return "" if math.isnan(self.low) else f"[{self._fmt(self.low)}, {self._fmt(self.high)}]"

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
    clustering: str = ""

    @property
    def protocol(self) -> str:
        return MODE_LABELS.get(self.mode, self.mode)


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


OBJECTIVE_DIGITS = 4  # significant digits of an objective metric's value


def fmt_significant(value: float | None, digits: int = OBJECTIVE_DIGITS) -> str:
    """`value` with `digits` significant digits, never in exponent form (0.0004321, 0.2712, 12.35, 12346)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0 or not math.isfinite(value):
        return f"{value:.{digits - 1}f}" if value == 0 else str(value)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def objective_cell(value: float, low: float = math.nan, high: float = math.nan, n_missing: int = 0) -> Cell:
    """A cell of an objective metric: shown with `OBJECTIVE_DIGITS` significant digits."""
    return Cell(value, low, high, n_missing, significant=OBJECTIVE_DIGITS)


def clustering_text(scores: pd.DataFrame) -> str:
    """The bootstrap clustering of the models of a judge group's score rows (model, clustering; it is
    decided per model, by its design): the clustering when all share one, else each clustering followed
    by its models, "music track x prompt (A, B); video (C)"."""
    per_model = scores.drop_duplicates("model").sort_values("model")
    models: dict[str, list[str]] = {}
    for model, clustering in zip(per_model["model"], per_model["clustering"], strict=True):
        models.setdefault(clustering, []).append(model)
    if len(models) == 1:
        return next(iter(models))
    return "; ".join(f"{clustering} ({', '.join(names)})" for clustering, names in sorted(models.items()))


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


def _reference(table: Table, documents: list[dict], judge: str, mode: str, key: str, keys: list[str]) -> None:
    """Add the rows papers report for this table with the same judge card (greedy groups only)."""
    if mode != "greedy":
        return
    found = judge_rows(documents, judge.split(" @")[0], key)
    table.reference = [Row(model=r["model"], cells=[Cell(float(r.get(k, math.nan))) for k in keys],
                           note=", ".join(filter(None, [r.get("modality", ""), d["label"]]))) for d, r in found]
    table.reference_caption = "; ".join(dict.fromkeys(d["tables"][key]["caption"] for d, _ in found))


def _tables(agg: Aggregate, judge: str, mode: str, references: list[dict]) -> list[Table]:
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
        _reference(table, references, judge, mode, key, [c.key for c in columns])
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
             "diff": Cell(r["mean_diff"], r["ci_low"], r["ci_high"]), "p": fmt_p(r["p_value"]),
             "p_holm": fmt_p(r["p_holm"]), "significant": r["p_holm"] < 0.05, "clustering": r["clustering"]}
            for r in part.to_dict("records")]


def fmt_p(value: float) -> str:
    return "—" if value is None or math.isnan(value) else "< 0.001" if value < 0.001 else f"{value:.3f}"


def sections(agg: Aggregate, references: list[dict], settings: dict[tuple[str, str], str]) -> list[Section]:
    """One section per judge evaluation and mode, with its settings; the paper's protocol (greedy) first."""
    pairs = sorted(set(agg.scores[["judge", "mode"]].itertuples(index=False, name=None)),
                   key=lambda p: (p[0], p[1] != "greedy", p[1]))
    scores = agg.scores
    return [Section(judge, mode, _tables(agg, judge, mode, references), _charts(agg, judge, mode),
                    _comparisons(agg, judge, mode), settings.get((judge, mode), ""),
                    clustering_text(scores[(scores["judge"] == judge) & (scores["mode"] == mode)]))
            for judge, mode in pairs]


def objective_table(agg: Aggregate) -> Table | None:
    """The objective metrics per model, in the registry's order, the best value of each metric whose
    direction is known marked, and the direction shown in the header (higher is better: ↑)."""
    if agg.objective.empty:
        return None
    found = set(agg.objective["key"])
    keys = [name for name in METRICS if name in found] + sorted(found - set(METRICS))
    indexed = agg.objective.set_index(["model", "key"])
    rows = []
    for model in sorted(set(agg.objective["model"])):
        cells = [objective_cell(*indexed.loc[(model, k), ["mean", "ci_low", "ci_high"]].astype(float),
                                int(indexed.at[(model, k), "n_missing"])) if (model, k) in indexed.index
                 else objective_cell(math.nan) for k in keys]
        rows.append(Row(model, cells, href=model_page(model), missing=sum(c.n_missing for c in cells)))
    for i, key in enumerate(keys):
        direction = better(key)
        values = [r.cells[i].value for r in rows if not math.isnan(r.cells[i].value)]
        if direction and len(rows) > 1 and values:
            best = max(values) if direction == "higher" else min(values)
            for row in rows:
                row.cells[i].best = row.cells[i].value == best
    headers = [f"{k} {'↑' if better(k) == 'higher' else '↓' if better(k) == 'lower' else ''}".strip() for k in keys]
    return Table(id="objective-table", title="Objective metrics", headers=headers, rows=rows)


def objective_definitions(agg: Aggregate) -> list[tuple[str, str]]:
    """(name, description) of every objective metric shown (from the registry)."""
    found = set(agg.objective["key"]) if not agg.objective.empty else set()
    return [(name, m.description) for name, m in METRICS.items() if name in found]


def librosa_versions(metric_rows: list[dict]) -> list[str]:
    """The librosa versions that tracked the music beats behind the stored BAS values."""
    versions = set()
    for row in metric_rows:
        if "bas_" in row["name"]:
            version = (json.loads(row["params"] or "{}").get("music") or {}).get("librosa")
            if version:
                versions.add(version)
    return sorted(versions)


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


def slice_tables(agg: Aggregate) -> list[dict]:
    """Per judge evaluation, mode and axis: rows of tag values, a cell per model (mean, CI, n)."""
    tables = []
    for (judge, mode, axis), part in agg.slices.groupby(["judge", "mode", "axis"], sort=False):
        models = sorted(set(part["model"]))
        indexed = part.set_index(["value", "model"])
        rows = [{"value": value, "cells": [
            (Cell(*indexed.loc[(value, m), ["mean", "ci_low", "ci_high"]].astype(float)),
             int(indexed.at[(value, m), "n_videos"])) if (value, m) in indexed.index else (Cell(float("nan")), 0)
            for m in models]} for value in dict.fromkeys(part["value"])]
        tables.append({"judge": judge, "mode": mode, "axis": axis, "key": part["key"].iloc[0], "models": models,
                       "rows": rows, "id": f"slice-{len(tables)}"})
    return tables
