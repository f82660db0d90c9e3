"""The leaderboard a researcher reads first (top of index.html, first table of the Markdown): one row per
model name (a generator variant made with other settings is its own name, `generate --as`), with per
judge evaluation and mode the overall and category scores (95% CI), the videos it scored and the missing
answers, and then the headline objective metrics (music-motion BAS under both published recipes and
Dist_k; 4 significant digits); the best measured value of each column marked; rows ordered by the first
judge group's overall score. Reported rows of papers that used the same judge follow the measured ones,
labelled (`references`). The bootstrap's clustering is decided per model (its design); each group names
its models' clusterings (`views.clustering_text`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from markupsafe import Markup

from mibench.metrics.registry import better
from mibench.report.aggregate import OVERALL, Aggregate
from mibench.report.charts import Bar, category_chart, metric_chart, nice_max
from mibench.report.references import judge_rows
from mibench.report.views import Cell, clustering_text, model_page, objective_cell

SUMMARY_KEYS = (OVERALL, "dance_quality", "video_quality", "prompt_alignment")
SUMMARY_LABELS = {OVERALL: "Overall", "dance_quality": "Dance", "video_quality": "Video",
                  "prompt_alignment": "Prompt align."}
HEADLINE_OBJECTIVE = ("pose_bas_fact", "pose_bas_bailando", "pose_dist_k", "pose_dist_k_pooled", "bas_fact",
                      "bas_bailando")


@dataclass
class BoardGroup:
    """The columns of one judge evaluation and mode."""

    judge: str
    mode: str
    keys: list[str]
    settings: str = ""
    clustering: str = ""  # the bootstrap clustering of its models (`views.clustering_text`)

    @property
    def title(self) -> str:
        return f"{self.judge} · {self.mode}"

    @property
    def headers(self) -> list[str]:
        return [SUMMARY_LABELS[k] for k in self.keys]


@dataclass
class BoardRow:
    model: str
    cells: list[list[Cell]]  # per group, per key
    missing: list[int]  # per group: missing answers
    objective: list[Cell]
    scored: list[int] = field(default_factory=list)  # per group: videos with a score from that judge and mode
    generated: int = 0  # videos generated
    href: str | None = None
    generator: str = ""  # the generator and its settings fingerprint
    settings: str = ""  # ... and every setting (shown on hover)
    label: str = ""  # reference rows: "reported in <paper>, not measured"


@dataclass
class Board:
    groups: list[BoardGroup]
    objective_keys: list[str]
    rows: list[BoardRow]
    reference: list[BoardRow] = field(default_factory=list)

    @property
    def objective_headers(self) -> list[str]:
        return [f"{k} {'↑' if better(k) == 'higher' else '↓' if better(k) == 'lower' else ''}".strip()
                for k in self.objective_keys]

    @property
    def empty(self) -> bool:
        return not self.rows


def judge_card(label: str) -> str:
    """The judge card behind a group label ("videollama2 @1a2b3c4d" -> "videollama2")."""
    return label.split(" @")[0]


def build_board(agg: Aggregate, settings: dict[tuple[str, str], str], generators: dict[str, str],
                references: list[dict] | None) -> Board:
    """The board of `agg`: `settings` per (judge label, mode) and `generators` per model are shown with the
    groups and rows; `references` (reference documents) add the labelled reported rows."""
    pairs = sorted(set(agg.scores[["judge", "mode"]].itertuples(index=False, name=None)),
                   key=lambda p: (p[0], p[1] != "greedy", p[1]))
    present = {c.key for c in agg.columns}
    keys = [k for k in SUMMARY_KEYS if k in present]
    scores = agg.scores.set_index(["judge", "mode", "model", "key"])
    groups = [BoardGroup(judge, mode, keys, settings.get((judge, mode), ""),
                         clustering_text(agg.scores[(agg.scores["judge"] == judge) & (agg.scores["mode"] == mode)]))
              for judge, mode in pairs]
    objective = agg.objective.set_index(["model", "key"])
    objective_keys = [k for k in HEADLINE_OBJECTIVE if not agg.objective.empty and k in set(agg.objective["key"])]
    models = sorted(set(agg.done) | set(agg.scores["model"]) | set(agg.objective["model"]))  # unscored too
    per_video = agg.per_video
    rows = []
    for model in models:
        cells, missing, scored = [], [], []
        for group in groups:
            index = (group.judge, group.mode, model)
            cells.append([_cell(scores, (*index, key)) for key in group.keys])
            part = per_video[(per_video["judge"] == group.judge) & (per_video["mode"] == group.mode)
                             & (per_video["model"] == model)]
            missing.append(int(part["n_missing"].sum()))
            scored.append(int(part["job_id"].nunique()))
        rows.append(BoardRow(model, cells, missing, [_cell(objective, (model, k), objective=True)
                                                     for k in objective_keys],
                             scored=scored, generated=agg.done.get(model, 0), href=model_page(model),
                             generator=generators.get(model, "").split(": ")[0], settings=generators.get(model, "")))
    rows.sort(key=lambda r: _order(r))
    _mark_best(rows, groups, objective_keys)
    return Board(groups, objective_keys, rows, _reference_rows(groups, objective_keys, references or []))


def _cell(table, index: tuple, objective: bool = False) -> Cell:
    make = objective_cell if objective else Cell
    if index not in table.index:
        return make(math.nan)
    row = table.loc[index]
    return make(float(row["mean"]), float(row["ci_low"]), float(row["ci_high"]), int(row["n_missing"]))


def _order(row: BoardRow) -> tuple:
    """First judge group's first column (overall) descending, rows without it last, then by name."""
    first = row.cells[0][0].value if row.cells and row.cells[0] else math.nan
    return (math.isnan(first), -first if not math.isnan(first) else 0.0, row.model)


def _mark_best(rows: list[BoardRow], groups: list[BoardGroup], objective_keys: list[str]) -> None:
    if len(rows) < 2:
        return
    columns = [[r.cells[g][k] for r in rows] for g, group in enumerate(groups) for k in range(len(group.keys))]
    directions = ["higher"] * len(columns)
    columns += [[r.objective[i] for r in rows] for i in range(len(objective_keys))]
    directions += [better(k) for k in objective_keys]
    for column, direction in zip(columns, directions, strict=True):
        values = [c.value for c in column if not math.isnan(c.value)]
        if direction and values:
            best = max(values) if direction == "higher" else min(values)
            for c in column:
                c.best = c.value == best


def _reference_rows(groups: list[BoardGroup], objective_keys: list[str], documents: list[dict]) -> list[BoardRow]:
    """Reported rows under the greedy groups of the judge the paper used; other cells empty."""
    rows: dict[tuple[str, str], BoardRow] = {}
    for g, group in enumerate(groups):
        if group.mode != "greedy":
            continue
        for key in group.keys:
            for document, reported in judge_rows(documents, judge_card(group.judge), key):
                if key not in reported:
                    continue
                row = rows.setdefault((document["name"], reported["model"]), BoardRow(
                    reported["model"], [[Cell(math.nan) for _ in grp.keys] for grp in groups],
                    [0] * len(groups), [Cell(math.nan) for _ in objective_keys], scored=[0] * len(groups),
                    label=document["label"]))
                row.cells[g][group.keys.index(key)] = Cell(float(reported[key]))
    return list(rows.values())


def board_charts(board: Board) -> list[Markup]:
    """The board's charts: the summary scores of each judge group (0-10), and each headline objective
    metric on its own axis (they have different scales)."""
    models = [r.model for r in board.rows]
    charts = []
    for g, group in enumerate(board.groups):
        bars = [(SUMMARY_LABELS[key], [Bar(r.model, r.cells[g][k].value, r.cells[g][k].low, r.cells[g][k].high)
                                       for r in board.rows]) for k, key in enumerate(group.keys)]
        charts.append(category_chart(f"Scores with 95% CI ({group.title})", models, bars))
    for i, (key, header) in enumerate(zip(board.objective_keys, board.objective_headers, strict=True)):
        bars = [Bar(r.model, r.objective[i].value, r.objective[i].low, r.objective[i].high) for r in board.rows]
        top = nice_max([v for b in bars for v in (b.value, b.high)])
        charts.append(metric_chart(f"{header} (95% CI)", models, [(key, bars)], scale_max=top))
    return charts
