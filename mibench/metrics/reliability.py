"""Judge reliability: pure functions over pandas DataFrames of the store's rows.

Inputs are `pd.DataFrame(store.answers())` (job_id, judge, question_id, mode, run_index, score, ...),
`pd.DataFrame(store.metrics())` (job_id, name, value, ...) and `pd.DataFrame(store.jobs())` (job_id,
model, ...). A missing score (unparseable answer, NULL) is left out, never counted as 0. A video's
rating in one mode is the mean of its scores over runs. Results are DataFrames; a statistic that is
undefined (fewer than 3 pairs, no variance) is NaN, pandas' missing value.

- `run_agreement`: agreement of repeated runs per (judge, mode, question): ICC(1,1) (one-way random
  effects, single run; runs are exchangeable), mean pairwise Spearman between runs, mean per-video
  standard deviation across runs, and the share of videos with the same score in every run. Only
  videos scored in every run of their group count.
- `metric_correlation`: Spearman and Pearson correlation between the judge's rating of one question
  (default "beat_alignment") and an objective metric (default "bas_bailando") across videos, per
  model and over all videos, next to both means.
- `mode_agreement`: correlation and mean difference between two scoring modes (default the paper's
  "greedy" and "expected") per (judge, question).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

MIN_PAIRS = 3


def icc1(table: np.ndarray) -> float:
    """ICC(1,1) of an items x runs table without missing values; NaN when undefined."""
    table = np.asarray(table, dtype=np.float64)
    n, k = table.shape if table.ndim == 2 else (0, 0)
    if n < 2 or k < 2:
        return float("nan")
    item_means = table.mean(axis=1)
    between = k * ((item_means - table.mean()) ** 2).sum() / (n - 1)
    within = ((table - item_means[:, None]) ** 2).sum() / (n * (k - 1))
    denominator = between + (k - 1) * within
    return float((between - within) / denominator) if denominator > 0 else float("nan")


def correlation(x: np.ndarray, y: np.ndarray, method: str = "spearman") -> float:
    """Pearson or Spearman (Pearson of average ranks) correlation; NaN for < 3 pairs or no variance."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < MIN_PAIRS:
        return float("nan")
    if method == "spearman":
        x, y = rankdata(x), rankdata(y)
    elif method != "pearson":
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _scored(answers: pd.DataFrame) -> pd.DataFrame:
    return answers[answers["score"].notna()].astype({"score": float})


def _agreement(group: pd.DataFrame) -> dict:
    table = group.pivot_table(index="job_id", columns="run_index", values="score", aggfunc="mean").dropna()
    values = table.to_numpy()
    runs = values.shape[1]
    pairs = [correlation(values[:, i], values[:, j]) for i in range(runs) for j in range(i + 1, runs)]
    pairs = [p for p in pairs if not np.isnan(p)]
    enough = runs >= 2 and len(values) > 0
    return {
        "videos": len(values),
        "runs": runs,
        "icc": icc1(values),
        "spearman": float(np.mean(pairs)) if pairs else float("nan"),
        "sd": float(values.std(axis=1, ddof=1).mean()) if enough else float("nan"),
        "exact": float((np.ptp(values, axis=1) == 0).mean()) if enough else float("nan"),
    }


def run_agreement(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per (judge, mode, question_id): videos, runs, icc, spearman, sd, exact."""
    keys = ["judge", "mode", "question_id"]
    rows = [dict(zip(keys, key, strict=True)) | _agreement(group)
            for key, group in _scored(answers).groupby(keys, sort=True)]
    return pd.DataFrame(rows, columns=[*keys, "videos", "runs", "icc", "spearman", "sd", "exact"])


def _ratings(answers: pd.DataFrame, question_id: str, mode: str, judge: str | None) -> pd.Series:
    chosen = _scored(answers)
    chosen = chosen[(chosen["question_id"] == question_id) & (chosen["mode"] == mode)]
    if judge is not None:
        chosen = chosen[chosen["judge"] == judge]
    return chosen.groupby("job_id")["score"].mean().rename("rating")


def metric_correlation(answers: pd.DataFrame, metrics: pd.DataFrame, jobs: pd.DataFrame, *,
                       question_id: str = "beat_alignment", metric: str = "bas_bailando",
                       mode: str = "greedy", judge: str | None = None) -> pd.DataFrame:
    """One row per model and one "all": videos, spearman, pearson, rating_mean, metric_mean."""
    values = metrics[(metrics["name"] == metric) & metrics["value"].notna()]
    values = values.groupby("job_id")["value"].mean().astype(float).rename("metric")
    paired = pd.concat([_ratings(answers, question_id, mode, judge), values], axis=1, join="inner")
    paired = paired.join(jobs.set_index("job_id")["model"], how="inner")
    groups = [(str(model), group) for model, group in paired.groupby("model", sort=True)] + [("all", paired)]
    rows = [{"model": name, "videos": len(group),
             "spearman": correlation(group["rating"], group["metric"], "spearman"),
             "pearson": correlation(group["rating"], group["metric"], "pearson"),
             "rating_mean": group["rating"].mean() if len(group) else float("nan"),
             "metric_mean": group["metric"].mean() if len(group) else float("nan")}
            for name, group in groups]
    return pd.DataFrame(rows, columns=["model", "videos", "spearman", "pearson", "rating_mean", "metric_mean"])


def mode_agreement(answers: pd.DataFrame, *, modes: tuple[str, str] = ("greedy", "expected")) -> pd.DataFrame:
    """One row per (judge, question_id): videos, spearman, pearson, mean_diff (second - first mode)
    and mean_abs_diff, over the videos rated in both modes."""
    first, second = modes
    scored = _scored(answers)
    means = scored.groupby(["judge", "question_id", "job_id", "mode"])["score"].mean().unstack("mode")
    columns = ["judge", "question_id", "videos", "spearman", "pearson", "mean_diff", "mean_abs_diff"]
    if first not in means or second not in means:
        return pd.DataFrame([], columns=columns)
    both = means[[first, second]].dropna()
    rows = []
    for (judge, question), group in both.groupby(level=["judge", "question_id"], sort=True):
        diff = group[second] - group[first]
        rows.append({"judge": judge, "question_id": question, "videos": len(group),
                     "spearman": correlation(group[first], group[second], "spearman"),
                     "pearson": correlation(group[first], group[second], "pearson"),
                     "mean_diff": float(diff.mean()), "mean_abs_diff": float(diff.abs().mean())})
    return pd.DataFrame(rows, columns=columns)
