"""The report's text outputs: the leaderboard JSON document (`leaderboard.json`, `report --json`), the
spreadsheet-safe CSV (`leaderboard.csv`) and the Markdown tables (`report --format md`), built from the
same views as the HTML pages."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from mibench.errors import StoreError
from mibench.report.aggregate import OVERALL, Aggregate, aggregate, labelled_answers, leaderboard
from mibench.report.views import DEFINITIONS, Table, evaluation_settings_by_label, objective_table, sections
from mibench.resources import data_dir
from mibench.store import STORE_NAME, Store


def load_reference() -> dict:
    """The paper's reported numbers (reports/paper_reported.yaml)."""
    return yaml.safe_load((data_dir("reports") / "paper_reported.yaml").read_text(encoding="utf-8"))


def open_run(run_dir: Path) -> Store:
    if not (run_dir / STORE_NAME).is_file():
        raise StoreError(f"{run_dir} has no results store ({STORE_NAME})",
                         "pass the folder of a run made by `mibench generate`")
    return Store.open(run_dir)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_csv(table: pd.DataFrame) -> str:
    """`table` as CSV with every text cell that a spreadsheet would run as a formula (starting with =, +,
    -, @, tab or carriage return) prefixed with a quote, so it is shown as text (OWASP CSV injection)."""
    def safe(value: object) -> object:
        return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value

    return table.map(safe).to_csv(index=False)


def leaderboard_json(agg: Aggregate, run_dir: Path, reference: dict | None) -> str:
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
    store = open_run(Path(run_dir))
    try:
        agg = aggregate(store, seed=seed, dist_reference=dist_reference)
    finally:
        store.close()
    return json.loads(leaderboard_json(agg, Path(run_dir), load_reference() if reference else None))


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(run_dir: Path, *, reference: bool = True, seed: int = 0, dist_reference: str | None = None) -> str:
    """The report as Markdown: per judge evaluation and mode, the paper-style tables with 95% CIs (and the
    paper's rows with `reference`), then the objective metrics (Dist_k normalised as `dist_reference`)."""
    store = open_run(Path(run_dir))
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
    for section in sections(agg, ref, settings):
        lines += ["", f"## {_md(section.judge)} · {section.mode} ({section.protocol})", "", _md(section.settings)]
        for table in section.tables:
            lines += ["", *_md_table(table, ["Model", "Videos", *table.headers, "Missing answers"],
                                     lambda row: [row.videos], lambda row: [str(row.missing)])]
            if table.reference:
                lines += ["", f"Reported, not measured: {_md(table.reference_caption)}", "",
                          *_md_table(Table(table.id, "", table.headers, table.reference), ["Model", *table.headers],
                                     lambda row: [], lambda row: [], title=False)]
    objective = objective_table(agg)
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
