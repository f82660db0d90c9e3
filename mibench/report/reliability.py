"""The report's judge-reliability tables, per model and over all videos (see metrics/reliability.py):

- agreement of repeated runs (`--runs N`, frame jitter): ICC(1,1), mean pairwise Spearman, mean SD and
  the share of identical repeats, averaged over the questions;
- the judge's beat-alignment rating against the objective BAS (both variants; pixel and, when measured,
  pose path), per scoring mode;
- the paper's greedy mode against the expected-score mode, averaged over the questions.

A table appears only when the run has what it needs (two or more runs, metrics and answers, both modes).
"""

from __future__ import annotations

import math

import pandas as pd

from mibench.metrics.registry import METRICS
from mibench.metrics.reliability import metric_correlation, mode_agreement, run_agreement
from mibench.report.aggregate import labelled_answers
from mibench.store import Store

BAS_METRICS = tuple(m.name for m in METRICS.values() if m.recipe)  # every recipe: pixel, then pose path


def _num(value: float, digits: int = 2) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _per_model(answers: pd.DataFrame, jobs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    models = jobs.set_index("job_id")["model"]
    labelled = answers.join(models, on="job_id")
    return [(str(m), group) for m, group in labelled.groupby("model", sort=True)] + [("all", labelled)]


def _runs_table(answers: pd.DataFrame, jobs: pd.DataFrame) -> dict | None:
    rows = []
    for model, group in _per_model(answers, jobs):
        stats = run_agreement(group)
        for (judge, mode), per_q in stats[stats["runs"] >= 2].groupby(["judge", "mode"], sort=True):
            rows.append([model, judge, mode, str(int(per_q["videos"].max())), str(int(per_q["runs"].max())),
                         _num(per_q["icc"].mean()), _num(per_q["spearman"].mean()), _num(per_q["sd"].mean()),
                         _num(per_q["exact"].mean())])
    if not rows:
        return None
    return {"id": "reliability-runs", "title": "Agreement of repeated runs",
            "note": "Runs after the first jitter the sampled frames and audio clips (seeded). Statistics per "
                    "question over the videos scored in every run, then averaged over the questions.",
            "headers": ["Model", "Judge", "Mode", "Videos", "Runs", "ICC(1,1)", "Spearman", "Mean SD",
                        "Identical repeats"], "rows": rows}


def _bas_table(answers: pd.DataFrame, metrics: pd.DataFrame, jobs: pd.DataFrame) -> dict | None:
    rows = []
    for judge, mode in sorted(set(zip(answers["judge"], answers["mode"], strict=True))):
        for metric in BAS_METRICS:
            if metric not in set(metrics["name"]):
                continue
            table = metric_correlation(answers, metrics, jobs, metric=metric, mode=mode, judge=judge)
            rows += [[r.model, judge, mode, metric, str(r.videos), _num(r.spearman), _num(r.pearson),
                      _num(r.rating_mean), _num(r.metric_mean, 3)] for r in table.itertuples() if r.videos]
    if not rows:
        return None
    return {"id": "reliability-bas", "title": "Judge beat-alignment rating vs objective BAS",
            "note": "Correlation across videos between the judge's 'beat alignment' rating and the Beat "
                    "Alignment Score; undefined (—) with fewer than 3 videos or no variance.",
            "headers": ["Model", "Judge", "Mode", "Metric", "Videos", "Spearman", "Pearson", "Mean rating",
                        "Mean BAS"], "rows": rows}


def _modes_table(answers: pd.DataFrame, jobs: pd.DataFrame) -> dict | None:
    rows = []
    for model, group in _per_model(answers, jobs):
        stats = mode_agreement(group)
        for judge, per_q in stats.groupby("judge", sort=True):
            rows.append([model, judge, str(int(per_q["videos"].max())), _num(per_q["spearman"].mean()),
                         _num(per_q["pearson"].mean()), _num(per_q["mean_diff"].mean()),
                         _num(per_q["mean_abs_diff"].mean())])
    if not rows:
        return None
    return {"id": "reliability-modes", "title": "Paper mode (greedy) vs expected-score mode",
            "note": "Per question over the videos scored in both modes, then averaged over the questions; "
                    "differences are expected minus greedy.",
            "headers": ["Model", "Judge", "Videos", "Spearman", "Pearson", "Mean difference",
                        "Mean |difference|"], "rows": rows}


def reliability_tables(store: Store) -> list[dict]:
    answers, jobs = pd.DataFrame(labelled_answers(store)), pd.DataFrame(store.jobs())
    if answers.empty:
        return []
    metrics = pd.DataFrame(store.metrics())
    tables = [_runs_table(answers, jobs), _modes_table(answers, jobs)]
    if not metrics.empty:
        tables.append(_bas_table(answers, metrics, jobs))
    return [t for t in tables if t is not None]
