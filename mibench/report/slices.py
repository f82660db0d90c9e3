"""Slices of the leaderboard: a model's headline score on the videos of one kind of prompt (the prompt
tags stored with each job: style, dancer, setting, group, camera) and of one music genre (AIST tracks),
so a report shows which kind of prompt or music a model fails on.

A slice's score is computed like the leaderboard's (`aggregate`): per video the mean of its non-missing
member questions of the headline column (`overall` when the questions include the quality ones, else the
first category), then the mean over the slice's videos with a clustered bootstrap interval. An axis with
a single value in the run says nothing and is left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mibench.report.uncertainty import percentile_ci, resample, resampled_means

AXES = ("style", "dancer", "setting", "group", "camera", "genre")
SLICE_FIELDS = ["judge", "mode", "axis", "value", "model", "key", "mean", "ci_low", "ci_high", "n_videos",
                "clustering"]


def headline(columns: list) -> object | None:
    """The column slices are made of: overall, else the first category average, else None."""
    summary = [c for c in columns if c.kind == "overall"] or [c for c in columns if c.kind == "category"]
    return summary[0] if summary else None


def job_axes(jobs: list[dict]) -> pd.DataFrame:
    """Per job id, its value on every axis (`AXES`): the prompt's tags and the music's genre."""
    rows = [{"job_id": j["job_id"], **{axis: (j["tags"] or {}).get(axis) for axis in AXES if axis != "genre"},
             "genre": j["genre"]} for j in jobs]
    return pd.DataFrame(rows, columns=["job_id", *AXES]).set_index("job_id")


def slice_scores(per_video: pd.DataFrame, columns: list, jobs: list[dict], n_boot: int, seed: int) -> pd.DataFrame:
    """Long table (`SLICE_FIELDS`) of the headline score per judge evaluation, mode, axis, value and model."""
    column = headline(columns)
    if column is None or per_video.empty:
        return pd.DataFrame(columns=SLICE_FIELDS)
    axes = job_axes(jobs)
    members = list(column.members)
    rows = []
    for (judge, mode), part in per_video.groupby(["judge", "mode"], sort=True):
        wide = part.pivot(index="job_id", columns="question_id", values="score").reindex(columns=members)
        videos = pd.DataFrame({"score": wide.astype(float).mean(axis=1, skipna=True)})
        units = part.drop_duplicates("job_id").set_index("job_id")[["model", "music_id", "prompt_id"]]
        videos = videos.join(units).join(axes)
        for axis in AXES:
            values = videos[axis].dropna()
            if values.nunique() < 2:
                continue
            for (value, model), group in videos.loc[values.index].groupby([axis, "model"], sort=True):
                rows.append({"judge": judge, "mode": mode, "axis": axis, "value": value, "model": model,
                             "key": column.key, **_mean_ci(group, n_boot, seed)})
    return pd.DataFrame(rows, columns=SLICE_FIELDS)


def _mean_ci(group: pd.DataFrame, n_boot: int, seed: int) -> dict:
    scores = group["score"].to_numpy(dtype=float)
    defined = scores[~np.isnan(scores)]
    draws = resample(group[["music_id", "prompt_id"]].reset_index(drop=True), n_boot, seed)
    low, high = (percentile_ci(resampled_means(scores[:, None], draws.weights)[:, 0]) if defined.size >= 2
                 else (np.nan, np.nan))
    return {"mean": float(defined.mean()) if defined.size else np.nan, "ci_low": low, "ci_high": high,
            "n_videos": int(defined.size), "clustering": draws.clustering}
