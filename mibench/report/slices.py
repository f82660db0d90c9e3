"""Slices of the leaderboard: a model's headline score on the videos of one kind of prompt (the prompt
tags stored with each job: style, dancer, setting, group, camera) and of one music genre (AIST tracks),
so a report shows which kind of prompt or music a model fails on.

A slice's score is the leaderboard's headline score (`overall` when the questions include the quality
ones, else the first category) computed as the leaderboard computes it (`aggregate`) on the slice's
videos: per member question the mean over the slice's videos that have a score for it, then the mean of
those over the member questions (undefined while one has no score). Its 95% interval: the clustered
bootstrap over the slice's videos, every question reweighed with the same weights
(`uncertainty.resampled_score`), only when at least two of them have a score for every member question.
`n_videos`: the slice's videos with a score for at least one member question. An axis with a single
value in the run says nothing and is left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mibench.report.uncertainty import enough_for_interval, percentile_ci, resample, resampled_score

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
        videos = wide.astype(float).set_axis(members, axis=1)
        units = part.drop_duplicates("job_id").set_index("job_id")[["model", "music_id", "prompt_id"]]
        videos = videos.join(units).join(axes)
        for axis in AXES:
            values = videos[axis].dropna()
            if values.nunique() < 2:
                continue
            for (value, model), group in videos.loc[values.index].groupby([axis, "model"], sort=True):
                rows.append({"judge": judge, "mode": mode, "axis": axis, "value": value, "model": model,
                             "key": column.key, **_mean_ci(group, members, n_boot, seed)})
    return pd.DataFrame(rows, columns=SLICE_FIELDS)


def _mean_ci(group: pd.DataFrame, members: list[str], n_boot: int, seed: int) -> dict:
    """The headline score of one slice's videos (`group`: their member-question scores, music and prompt)."""
    group = group.sort_index()  # the resample draws by position: independent of the store's row order
    values = group[members].to_numpy(dtype=float)
    draws = resample(group[["music_id", "prompt_id"]].reset_index(drop=True), n_boot, seed)
    point = float(resampled_score(values, np.ones((1, len(values))))[0])
    low, high = percentile_ci(resampled_score(values, draws.weights)) if enough_for_interval(values) \
        else (np.nan, np.nan)
    return {"mean": point, "ci_low": low, "ci_high": high,
            "n_videos": int((~np.isnan(values)).any(axis=1).sum()), "clustering": draws.clustering}
