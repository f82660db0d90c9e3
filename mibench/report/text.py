"""One aggregate of a run (`collect`) and the report's text outputs made from it: the leaderboard JSON
document (`leaderboard.json`, `report --json`), the spreadsheet-safe CSV (`leaderboard.csv`) and the
Markdown (`leaderboard.md`, `report --format md`). The HTML pages (`render`) use the same `ReportData`,
so every format shows the same numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mibench.errors import StoreError
from mibench.report.aggregate import OVERALL, Aggregate, aggregate, labelled_answers, leaderboard
from mibench.report.agreement import agreement
from mibench.report.board import Board, BoardRow, build_board
from mibench.report.references import load_references, reported_number, shown, verified
from mibench.report.views import (
    DEFINITIONS,
    Section,
    Table,
    evaluation_settings_by_label,
    fmt,
    objective_table,
    sections,
    settings_text,
    slice_tables,
)
from mibench.spreadsheet import inert
from mibench.store import STORE_NAME, Store


@dataclass
class ReportData:
    """Everything a report shows, aggregated once."""

    run: str
    agg: Aggregate
    board: Board
    sections: list[Section]
    agreement: pd.DataFrame  # agreement.AGREEMENT_FIELDS: cross-judge agreement (empty with one judge)
    objective: Table | None
    references: list[dict]
    answers: list[dict]
    metric_rows: list[dict]
    evaluations: list[dict]
    generators: dict[str, str]  # model -> the generator and settings its name stands for
    studies: list  # study.analysis.StudyResults of every human study of the run


def open_run(run_dir: Path) -> Store:
    if not (run_dir / STORE_NAME).is_file():
        raise StoreError(f"{run_dir} has no results store ({STORE_NAME})",
                         "pass the folder of a run made by `mibench generate`")
    return Store.open(run_dir)


def model_settings_text(store: Store, model: str) -> str:
    """The generator and settings a model name stands for in this run (see `generate --as`)."""
    held = store.model_settings(model)
    if held is None:
        return ""
    settings = held["settings"]
    shown = {k: v for k, v in {"preset": settings.get("preset"), **(settings.get("settings") or {})}.items()
             if v is not None}
    return f"{held['generator']} ({held['fingerprint']}): {settings_text(shown)}"


def study_ids(store: Store) -> list[str]:
    """The human studies of a run, oldest first (none before `mibench study create` made the table)."""
    if not store.db.execute("SELECT 1 FROM sqlite_master WHERE name='studies'").fetchone():
        return []
    return [r[0] for r in store.db.execute("SELECT id FROM studies ORDER BY created, id")]


def collect(store: Store, run: str, *, reference: bool = True, seed: int = 0, dist_reference: str | None = None,
            min_valid_mass: float | None = None, exclude_failed_raters: bool = False) -> ReportData:
    """Aggregate a run's store once, with the views every format is rendered from."""
    from mibench.study.analysis import study_results

    agg = aggregate(store, seed=seed, dist_reference=dist_reference, min_valid_mass=min_valid_mass)
    answers, evaluations = labelled_answers(store), store.evaluations()
    settings = evaluation_settings_by_label(answers, evaluations)
    references = load_references() if reference else []
    generators = {model: model_settings_text(store, model) for model in store.models()}
    return ReportData(run, agg, build_board(agg, settings, generators, references), sections(agg, references, settings),
                      agreement(agg), objective_table(agg), references, answers, store.metrics(), evaluations,
                      generators, [study_results(store, sid, agg=agg, exclude_failed=exclude_failed_raters, seed=seed)
                       for sid in study_ids(store)])


def spreadsheet_csv(table: pd.DataFrame) -> str:
    """`table` as CSV with every text cell that a spreadsheet would run as a formula made inert
    (`mibench.spreadsheet`)."""
    return table.map(inert).to_csv(index=False)


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records", double_precision=15))


def leaderboard_json(data: ReportData) -> str:
    agg = data.agg
    columns = [{"key": c.key, "label": c.label, "kind": c.kind, "category": c.category,
                "members": list(c.members)} for c in agg.columns]
    document = {"run": data.run, "seed": agg.seed, "n_boot": agg.n_boot, "dist_reference": agg.dist_reference,
                "min_valid_mass": agg.min_valid_mass, "definitions": DEFINITIONS, "columns": columns,
                "ranking": [r.model for r in data.board.rows],
                "leaderboard": _records(leaderboard(agg)), "comparisons": _records(agg.comparisons),
                "slices": _records(agg.slices), "valid_mass": _records(agg.valid_mass),
                "agreement": _records(data.agreement),
                "studies": [_study_record(r) for r in data.studies],
                "references": [shown(d) for d in data.references]}
    return json.dumps(document, indent=1, ensure_ascii=False)


def mass_text(row: dict | None) -> str:
    """The valid mass of an expected-mode evaluation in words (empty for greedy)."""
    if row is None:
        return ""
    if not row["n_measured"]:
        return f"not recorded for its {row['n_answers']} answers (stored before mibench recorded it)"
    action = "excluded, counted as missing" if row["excluded"] else "flagged"
    return (f"median {row['median']:.3f}, min {row['min']:.3f} over {row['n_measured']} answers; "
            f"{row['n_below']} below {row['threshold']:g} ({action})")


def _study_record(results) -> dict:
    study = results.study
    return {"study": study.id, "model_a": study.model_a, "model_b": study.model_b,
            "win_rates": _records(results.win_rates), "agreement": _records(results.agreement),
            "checks": _records(results.checks), "judges": _records(results.judges),
            "failing_raters": results.failing_raters, "excluded": results.excluded}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_cell(cell) -> str:
    return f"{'**' + cell.text + '**' if cell.best else cell.text} {cell.ci}".strip()


def markdown(data: ReportData) -> str:
    """The report as Markdown: the leaderboard first, then per judge evaluation and mode the paper-style
    tables with 95% CIs (and reported rows of papers with the same judge), paired comparisons, slices and
    the objective metrics."""
    agg = data.agg
    lines = [f"# mibench report: {_md(data.run)}", "",
             f"Overall = {DEFINITIONS[OVERALL]}. Cells: mean [95% CI]; **bold** = best measured value. "
             f"Bootstrap: {agg.n_boot} resamples, seed {agg.seed}; its clustering per judge group is listed "
             "under the leaderboard and with each section."]
    if agg.empty:
        lines += ["", "No scores yet: run `mibench score` (and `mibench metrics`) on this run."]
    lines += _md_board(data.board)
    lines += _md_agreement(data.agreement, {c.key: c.label for c in agg.columns})
    for section in data.sections:
        lines += ["", f"## {_md(section.judge)} · {section.mode} ({section.protocol})", "", _md(section.settings),
                  "", f"Bootstrap clustering: {_md(section.clustering)}"]
        mass = agg.valid_mass[(agg.valid_mass["judge"] == section.judge) & (agg.valid_mass["mode"] == section.mode)]
        for row in mass.to_dict("records"):
            lines += ["", f"Valid mass: {mass_text(row)}"]
        for table in section.tables:
            lines += ["", *_md_table(table, ["Model", "Videos", *table.headers, "Missing answers"],
                                     lambda row: [row.videos], lambda row: [str(row.missing)])]
            if table.reference:
                lines += ["", f"Reported, not measured: {_md(table.reference_caption)}", "",
                          *_md_table(Table(table.id, "", table.headers, table.reference),
                                     ["Model", "Reported by", *table.headers],
                                     lambda row: [_md(row.note)], lambda row: [], title=False)]
        if section.comparisons:
            lines += ["", "### Paired comparisons", "",
                      "| A | B | Metric | Pairs | Mean A − B [95% CI] | p | p (Holm) |", "|" + "---|" * 7]
            lines += [f"| {_md(c['a'])} | {_md(c['b'])} | {_md(c['metric'])} | {c['n']} | {_md_cell(c['diff'])} | "
                      f"{c['p']} | {c['p_holm']} |" for c in section.comparisons]
    lines += _md_slices(agg)
    if data.objective is not None:
        dist = (f"pose_dist_k normalised with {_md(agg.dist_reference)}" if agg.dist_reference else
                "pose_dist_k_pooled normalised with all models of the run, not the published Dist_k")
        lines += ["", f"## Objective metrics ({dist})", "",
                  *_md_table(data.objective, ["Model", *data.objective.headers, "Missing"], lambda row: [],
                             lambda row: [str(row.missing)], title=False)]
    lines += _md_studies(data.studies)
    lines += _md_references(data.references)
    return "\n".join(lines) + "\n"


def ci_text(row: dict, key: str, digits: int = 2) -> str:
    low, high = row[f"{key}_ci_low"], row[f"{key}_ci_high"]
    return fmt(row[key], digits) + ("" if pd.isna(low) else f" [{fmt(low, digits)}, {fmt(high, digits)}]")


def _md_studies(studies: list) -> list[str]:
    lines = ["", "## Human studies"] if studies else []
    for results in studies:
        study = results.study
        alpha = results.agreement.set_index("question_id")
        lines += ["", f"### {_md(study.model_a)} vs {_md(study.model_b)} ({study.id})", "",
                  f"| Question | {_md(study.model_a)} wins (no ties) | Ties | Votes | Raters | Items | "
                  "Krippendorff's alpha |", "|" + "---|" * 7]
        for row in results.win_rates.to_dict("records"):
            lines.append(f"| {_md(row['question'])} | {ci_text(row, 'win_rate_a')} | {ci_text(row, 'tie_rate')} | "
                         f"{row['n_votes']} | {row['n_raters']} | {row['n_items']} | "
                         f"{fmt(alpha.at[row['question_id'], 'alpha'])} |")
        if results.failing_raters:
            lines += ["", f"Raters failing attention checks: {', '.join(results.failing_raters)}"
                      f"{' (excluded)' if results.excluded else ' (kept; report --exclude-failed-raters)'}."]
        if not results.judges.empty:
            lines += ["", "| Judge | Question | Agreement with the human majority | Cohen's kappa | Items |",
                      "|" + "---|" * 5]
            lines += [f"| {_md(r['judge'])} · {r['mode']} | {r['question_id']} | {fmt(r['agreement'])} | "
                      f"{fmt(r['kappa'])} | {r['n_items']} |" for r in results.judges.to_dict("records")]
    return lines


def _md_references(documents: list[dict]) -> list[str]:
    lines = ["", "## Reported by papers, not measured"] if documents else []
    for document in documents:
        lines += ["", f"### {_md(document['label'])}", "", f"Source: {_md(str(document['source']))}. "
                  f"Judge: {_md(str(document.get('judge') or 'not stated'))}. "
                  f"Verified in the paper's text: {'yes' if verified(document) else 'no (no number shown)'}."]
        lines += [f"- differs: {_md(str(d))}" for d in document.get("protocol_differences") or []]
        lines += [f"- left out: {_md(str(d))}" for d in document.get("left_out") or []]
        for table in shown(document)["tables"].values():
            keys = table["keys"]
            lines += ["", _md(table.get("caption", "")), "",
                      "| " + " | ".join(["Model", *(_md(table["columns"].get(k, k)) for k in keys)]) + " |",
                      "|" + "---|" * (len(keys) + 1)]
            for row in table["rows"]:
                values = [_md(reported_number(row.get(k, ""))) for k in keys]
                lines.append("| " + " | ".join([_md(row["model"]), *values]) + " |")
    return lines


def _md_board(board: Board) -> list[str]:
    if board.empty:
        return []
    headers = ["Model", "Videos generated"] + [f"{h} ({g.title})" for g in board.groups
                                               for h in [*g.headers, "videos scored", "missing"]]
    headers += board.objective_headers

    def cells(row: BoardRow) -> list[str]:
        out = []
        for g, group_cells in enumerate(row.cells):
            out += [_md_cell(c) for c in group_cells]
            out += ["", ""] if row.label else [str(row.scored[g]), str(row.missing[g])]
        return out + [_md_cell(c) for c in row.objective]

    lines = ["", "## Leaderboard", "", "| " + " | ".join(map(_md, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join([_md(r.model), str(r.generated), *cells(r)]) + " |" for r in board.rows]
    for row in board.reference:
        lines.append("| " + " | ".join([f"{_md(row.model)} ({_md(row.label)})", "", *cells(row)]) + " |")
    for group in board.groups:
        lines += ["", f"- {_md(group.title)}: {_md(group.settings)}; bootstrap clustering: {_md(group.clustering)}"]
    return lines


AGREEMENT_COLUMNS = [("spearman_models", "Spearman (models)"), ("kendall_models", "Kendall (models)"),
                     ("spearman_videos", "Spearman (videos)"), ("kendall_videos", "Kendall (videos)"),
                     ("pair_agreement", "Pairs ordered alike")]


def agreement_cells(row: dict) -> list[str]:
    """A row's statistics as "value [low, high]" texts, in `AGREEMENT_COLUMNS` order."""
    out = []
    for key, _ in AGREEMENT_COLUMNS:
        low, high = row[f"{key}_ci_low"], row[f"{key}_ci_high"]
        ci = "" if low is None or pd.isna(low) else f" [{fmt(low)}, {fmt(high)}]"
        out.append(f"{fmt(row[key])}{ci}")
    return out


def _md_agreement(table: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    if table.empty:
        return []
    lines = ["", "## Cross-judge agreement"]
    for (ja, ma, jb, mb), part in table.groupby(["judge_a", "mode_a", "judge_b", "mode_b"], sort=False):
        headers = ["Metric", *(label for _, label in AGREEMENT_COLUMNS), "Verdict"]
        lines += ["", f"### {_md(ja)} · {ma} vs {_md(jb)} · {mb}", "",
                  "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for row in part.to_dict("records"):
            lines.append("| " + " | ".join([_md(labels.get(row["key"], row["key"])), *agreement_cells(row),
                                             _md(row["verdict"])]) + " |")
    return lines


def _md_slices(agg: Aggregate) -> list[str]:
    lines = []
    for t in slice_tables(agg):
        lines += ["", f"### Slice by {t['axis']} ({_md(t['judge'])} · {t['mode']}, {t['key']})", "",
                  "| " + " | ".join([t["axis"], *map(_md, t["models"])]) + " |", "|" + "---|" * (len(t["models"]) + 1)]
        for row in t["rows"]:
            cells = [f"{_md_cell(cell)} (n={n})" if n else "—" for cell, n in row["cells"]]
            lines.append("| " + " | ".join([_md(str(row["value"])), *cells]) + " |")
    return (["", "## Slices"] + lines) if lines else []


def _md_table(table: Table, headers: list[str], before, after, *, title: bool = True) -> list[str]:
    lines = [f"### {table.title}", ""] if title else []
    lines += ["| " + " | ".join(map(_md, headers)) + " |", "|" + "---|" * len(headers)]
    for row in table.rows:
        cells = [_md_cell(c) for c in row.cells]
        lines.append("| " + " | ".join([_md(row.model), *before(row), *cells, *after(row)]) + " |")
    return lines
