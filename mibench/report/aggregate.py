"""Aggregation of a run's judge answers and objective metrics into leaderboard tables (pandas).

Definitions (the paper's protocol, made explicit):
- a video's score on a question is the mean over the judge's runs of its parsed scores. An unparseable
  answer (score NULL) is *missing*: counted in `n_missing`, never averaged in as 0; a video whose every
  run is missing for a question has no score for it;
- a model's score on a question is the mean over its videos that have one (`n_videos` of them);
- a category score (Dance Quality, Video Quality, Prompt Alignment) is the mean of its questions'
  scores (each question's mean over the videos that have a score for it, so a video with some answers
  missing still counts for the others), the "Avg" columns of the paper's Tables 1-3; undefined while one
  of them has no score. Every number labelled with a category or overall (paired comparisons, slices,
  cross-judge agreement) follows this definition;
- `overall` is the mean of the quality questions (Dance Quality + Video Quality: 8 in the paper's set),
  as the paper's Table 4 computes it; prompt alignment is reported apart and is not part of it;
- 95% confidence intervals: percentile bootstrap with `n_boot` resamples drawn by
  `numpy.random.default_rng(seed)` (same seed, same intervals), clustered by music track and prompt
  (`uncertainty`: videos sharing a track or a prompt are not independent); the clustering used is
  recorded per row (`clustering`). Each statistic is recomputed on each resample with the same weights
  for every question (`uncertainty.resampled_score`), so category and overall intervals carry the
  correlation between questions; a resample where a member question has no value is left out. No interval
  unless at least two videos have a score for every member question;
- paired comparisons, per judge and mode: jobs of two models share `item_id` (same music window, prompt, seed,
  tempo). Per question, the mean of a - b over the items both models have a score for; for a category or
  overall, the mean of those over its member questions (no row when a member question has no pair);
  `n_pairs` = items with a pair on at least one member question. A clustered bootstrap over those items
  gives the interval and the p-value of "no difference" (`uncertainty.bootstrap_p`, never below 2^(1 - n)
  for n pairs: what the exact sign-flip test over them could show); neither unless at least
  two items have a pair on every member question (p NaN: shown as "—" and not counted by Holm); p = 1
  when every difference is 0. Holm-adjusted within each family: one column (metric) of one judge
  evaluation and mode, over every pair of models;
- expected mode: an answer whose judge put less than `min_valid_mass` of its probability on the valid
  answers 0..10 is excluded (counted in `n_low_mass`, and as missing) when that threshold is given; else
  it is only flagged (`valid_mass` summary, threshold `FLAG_MASS`). Answers stored before the mass was
  recorded have none and are never excluded.
Everything is separated by judge evaluation and mode (`greedy` = the paper's protocol, `expected` =
the expected-score option): answers made under other judge settings are another evaluation, shown
beside, never mixed in (`labelled_answers`). Objective metrics (`store.metrics()`: per metric, the
values made under the stage options recorded last) are aggregated per model the same way, and the
headline score per prompt tag and music genre (`slices`);
a NULL value is undefined and counted in `n_missing`. Kinetic diversity (the paper's Dist_k) is a property
of a model's set of videos, not of a video: `kinetics.dist_k` over the kinetic feature vectors stored with
`pose_kinetic_energy`. `pose_dist_k` z-normalises them with one model's vectors (`dist_reference`), as
Bailando and the paper do with the real dances (register the AIST videos as a model with `generate
--videos` and name it); without a reference the report gives `pose_dist_k_pooled`, normalised with the
pooled vectors of every model of the run, under that other name because it is not the published number
and moves when models are added. Neither has an interval.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mibench.errors import ConfigError
from mibench.metrics.kinetics import dist_k
from mibench.report.slices import slice_scores
from mibench.report.uncertainty import (
    bootstrap_p,
    enough_for_interval,
    holm,
    percentile_ci,
    resample,
    resampled_means,
    resampled_score,
)
from mibench.store import Store
from mibench.suite.prompts import CATEGORIES, Question, load_question_set

CATEGORY_KEYS = {"Dance Quality": "dance_quality", "Video Quality": "video_quality",
                 "Prompt Alignment": "prompt_alignment"}
QUALITY_CATEGORIES = ("Dance Quality", "Video Quality")
OVERALL = "overall"
OVERALL_LABEL = "Overall (mean of the quality metrics)"
GROUP = ["judge", "mode", "model"]
SCORE_FIELDS = ["mean", "ci_low", "ci_high", "n_videos", "n_answers", "n_missing"]
UNIT_FIELDS = ["music_id", "prompt_id"]  # what the clustered bootstrap draws (uncertainty.CLUSTER_FACTORS)
FLAG_MASS = 0.5  # expected-mode answers with less valid mass are flagged in the report
COMPARISON_FIELDS = ["judge", "mode", "model_a", "model_b", "key", "n_pairs", "mean_diff", "ci_low", "ci_high",
                     "p_value", "p_holm", "clustering"]


@dataclass(frozen=True)
class Column:
    """A leaderboard column: one question, a category average or the overall average."""

    key: str
    label: str
    kind: str  # "question", "category" or "overall"
    category: str | None = None
    members: tuple[str, ...] = ()


@dataclass
class Aggregate:
    """All aggregated tables of a run (long form; see `leaderboard` for the wide one)."""

    columns: list[Column]
    per_video: pd.DataFrame  # judge, mode, model, job_id, item_id, music_id, prompt_id, question_id, score,
    #                          n_answers, n_missing, n_low_mass
    scores: pd.DataFrame  # judge, mode, model, key + SCORE_FIELDS + clustering
    objective: pd.DataFrame  # model, key + SCORE_FIELDS + clustering (n_answers = jobs with the metric)
    comparisons: pd.DataFrame  # COMPARISON_FIELDS
    valid_mass: pd.DataFrame  # judge, mode, n_answers, n_measured, median, min, n_below, threshold, excluded
    slices: pd.DataFrame  # slices.SLICE_FIELDS: the headline score per prompt tag and music genre
    done: dict[str, int]  # model -> number of videos generated (status done)
    seed: int
    n_boot: int
    dist_reference: str | None = None  # the model whose kinetic features normalise Dist_k (None: all)
    min_valid_mass: float | None = None  # expected-mode answers below it are excluded (None: flagged only)

    @property
    def empty(self) -> bool:
        return self.scores.empty and self.objective.empty


# -- questions and columns --------------------------------------------------------------------------
def _questions(set_names: list[str]) -> dict[str, Question]:
    """Question metadata by id from the sets the answers name (the paper's set when one is unknown)."""
    found: dict[str, Question] = {}
    for name in [*set_names, "paper"]:
        try:
            questions = load_question_set(name).questions
        except ConfigError:
            continue
        for question in questions:
            found.setdefault(question.id, question)
    return found


def build_columns(question_ids: list[str], questions: dict[str, Question]) -> list[Column]:
    """Question columns grouped by category (paper order), then category averages, then overall."""
    known = [q for q in questions.values() if q.id in question_ids]
    unknown = [qid for qid in question_ids if qid not in questions]
    columns = [Column(q.id, q.metric, "question", q.category, (q.id,))
               for category in CATEGORIES for q in known if q.category == category]
    columns += [Column(qid, qid, "question", None, (qid,)) for qid in unknown]
    for category in CATEGORIES:
        members = tuple(c.key for c in columns if c.category == category)
        if members:
            columns.append(Column(CATEGORY_KEYS[category], f"{category} (avg)", "category", category, members))
    quality = tuple(c.key for c in columns if c.kind == "question" and c.category in QUALITY_CATEGORIES)
    if quality:
        columns.append(Column(OVERALL, OVERALL_LABEL, "overall", None, quality))
    return columns


# -- loading ----------------------------------------------------------------------------------------
def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def per_video_scores(answers: list[dict], jobs: list[dict], min_valid_mass: float | None = None) -> pd.DataFrame:
    """One row per (judge, mode, model, video, question): mean over runs, answers, missing answers and
    answers excluded for low valid mass (see the module docstring), from the rows of `store.answers()`
    and `store.jobs()`."""
    answers = _frame(answers, ["job_id", "judge", "mode", "question_id", "run_index", "score", "valid_mass"])
    answers["score"] = answers["score"].astype(float)
    low = (answers["mode"] == "expected") & (answers["valid_mass"].astype(float) < min_valid_mass) \
        if min_valid_mass is not None else pd.Series(False, index=answers.index)
    answers["low_mass"] = low.astype(int)
    answers.loc[low, "score"] = np.nan
    jobs = _frame(jobs, ["job_id", "item_id", "model", *UNIT_FIELDS])
    merged = answers.merge(jobs, on="job_id")
    keys = ["judge", "mode", "model", "job_id", "item_id", *UNIT_FIELDS, "question_id"]
    grouped = merged.groupby(keys, sort=False, dropna=False).agg(
        score=("score", "mean"), n_answers=("score", "size"), n_scored=("score", "count"),
        n_low_mass=("low_mass", "sum")).reset_index()
    grouped["n_missing"] = grouped["n_answers"] - grouped["n_scored"]
    return grouped.drop(columns="n_scored")


def valid_mass_summary(answers: list[dict], threshold: float, excluded: bool) -> pd.DataFrame:
    """Per judge evaluation (label) in expected mode: how much probability the judge put on the valid
    answers 0..10: answers, answers with a recorded mass, its median and minimum, and how many fall
    below `threshold` (`excluded`: whether those were left out of the scores)."""
    rows = []
    expected = [a for a in answers if a["mode"] == "expected"]
    for (judge, mode), part in itertools.groupby(sorted(expected, key=lambda a: a["judge"]), lambda a: (a["judge"],
                                                                                                       a["mode"])):
        part = list(part)
        masses = np.array([a["valid_mass"] for a in part if a["valid_mass"] is not None], dtype=float)
        rows.append({"judge": judge, "mode": mode, "n_answers": len(part), "n_measured": int(masses.size),
                     "median": float(np.median(masses)) if masses.size else np.nan,
                     "min": float(masses.min()) if masses.size else np.nan,
                     "n_below": int(np.sum(masses < threshold)), "threshold": threshold, "excluded": excluded})
    return _frame(rows, ["judge", "mode", "n_answers", "n_measured", "median", "min", "n_below", "threshold",
                         "excluded"])


def question_values(part: pd.DataFrame, keys: list[str], index: str = "item_id") -> pd.DataFrame:
    """The video x question table of scores of `part` (rows: values of `index`; columns: `keys`; NaN where
    a video has no score for a question)."""
    wide = part.pivot(index=index, columns="question_id", values="score")
    return wide.reindex(columns=keys).astype(float)


def video_values(part: pd.DataFrame, columns: list[Column]) -> pd.DataFrame:
    """Per video (rows, indexed by item_id) the score of every column, for comparing videos one by one: a
    question's score; for a category or overall the mean of its member questions, only for a video with a
    score on every one of them (else NaN, so each video's value is made of the same questions). A model's
    category score is not the mean of these: it is the mean of its questions' means (the module docstring)."""
    wide = question_values(part, [c.key for c in columns if c.kind == "question"])
    for column in columns:
        if column.kind != "question":
            wide[column.key] = wide[list(column.members)].mean(axis=1, skipna=False)
    return wide


# -- aggregation ------------------------------------------------------------------------------------
def _units(part: pd.DataFrame, index: pd.Index, key: str) -> pd.DataFrame:
    """The clustering fields (music, prompt) of the units `index` (values of `key`) of `part`."""
    return part.drop_duplicates(key).set_index(key).reindex(index)[UNIT_FIELDS]


def _group_scores(part: pd.DataFrame, columns: list[Column], n_boot: int, seed: int) -> list[dict]:
    question_keys = [c.key for c in columns if c.kind == "question"]
    wide = question_values(part, question_keys, index="job_id")
    values = wide.to_numpy(dtype=float)
    counts = part.groupby("question_id")[["n_answers", "n_missing"]].sum().reindex(question_keys, fill_value=0)
    means = resampled_means(values, np.ones((1, len(values))))[0]  # the sample itself
    draws = resample(_units(part, wide.index, "job_id"), n_boot, seed)
    boot = resampled_means(values, draws.weights)
    index = {key: i for i, key in enumerate(question_keys)}
    rows = []
    for column in columns:
        idx = [index[m] for m in column.members]
        point = float(np.mean(means[idx]))
        low, high = percentile_ci(boot[:, idx].mean(axis=1)) if enough_for_interval(values[:, idx]) \
            else (np.nan, np.nan)
        has_any = ~np.isnan(values[:, idx]).all(axis=1)
        rows.append({"key": column.key, "mean": point, "ci_low": low, "ci_high": high,
                     "n_videos": int(has_any.sum()),
                     "n_answers": int(counts.loc[list(column.members), "n_answers"].sum()),
                     "n_missing": int(counts.loc[list(column.members), "n_missing"].sum()),
                     "clustering": draws.clustering})
    return rows


def _objective(metric_rows: list[dict], jobs: list[dict], n_boot: int, seed: int,
               dist_reference: str | None) -> pd.DataFrame:
    metrics = _frame(metric_rows, ["job_id", "name", "value", "params"])
    metrics["value"] = metrics["value"].astype(float)
    merged = metrics.merge(_frame(jobs, ["job_id", "model", *UNIT_FIELDS]), on="job_id")
    rows = []
    for (model, name), part in merged.groupby(["model", "name"], sort=True):
        part = part.sort_values("job_id")  # the resample draws by position: independent of the store's row order
        values = part["value"].to_numpy(dtype=float)
        defined = values[~np.isnan(values)]
        draws = resample(part[UNIT_FIELDS].reset_index(drop=True), n_boot, seed)
        boot = resampled_means(values[:, None], draws.weights)[:, 0]
        low, high = percentile_ci(boot) if defined.size >= 2 else (np.nan, np.nan)
        rows.append({"model": model, "key": name, "mean": float(defined.mean()) if defined.size else np.nan,
                     "ci_low": low, "ci_high": high, "n_videos": int(defined.size),
                     "n_answers": len(values), "n_missing": int(len(values) - defined.size),
                     "clustering": draws.clustering})
    return _frame(rows + _kinetic_diversity(merged, dist_reference), ["model", "key", *SCORE_FIELDS, "clustering"])


def _kinetic_diversity(metrics: pd.DataFrame, reference: str | None) -> list[dict]:
    """One Dist_k row per model with kinetic feature vectors (see the module docstring), from the run's
    metric rows joined with their jobs' models: `pose_dist_k` normalised with `reference`'s vectors, else
    `pose_dist_k_pooled`."""
    features: dict[str, list[list[float]]] = {}
    kinetic = metrics.loc[metrics["name"] == "pose_kinetic_energy", ["model", "params"]]
    for model, params in kinetic.itertuples(index=False):
        vector = json.loads(params or "{}").get("features")
        if vector is not None:
            features.setdefault(model, []).append(vector)
    if reference is not None and reference not in features:
        raise ConfigError(f"model {reference!r} has no kinetic features to normalise Dist_k with",
                          "run `mibench metrics --pose` on it, or name another model")
    if not features:
        return []
    pooled = np.array([vector for model in ([reference] if reference else features) for vector in features[model]])
    rows = []
    for model, vectors in sorted(features.items()):
        value = dist_k(np.array(vectors), reference=pooled)
        rows.append({"model": model, "key": "pose_dist_k" if reference else "pose_dist_k_pooled",
                     "mean": np.nan if value is None else value,
                     "ci_low": np.nan, "ci_high": np.nan, "n_videos": len(vectors), "n_answers": len(vectors),
                     "n_missing": 0 if value is not None else len(vectors), "clustering": "none (a set statistic)"})
    return rows


def _as_frame(values: pd.Series | pd.DataFrame) -> pd.DataFrame:
    return values.to_frame("score") if isinstance(values, pd.Series) else values


def paired_difference(a: pd.Series | pd.DataFrame, b: pd.Series | pd.DataFrame, units: pd.DataFrame, n_boot: int,
                      seed: int) -> dict | None:
    """The paired difference of one column (see the module docstring) from the two models' scores, indexed
    by item: a Series (one question) or item x member-question DataFrames with the same columns; `units`
    holds the items' music and prompt. Per question the mean of a - b over the items both have, then the
    mean over the questions; its clustered bootstrap CI and bootstrap p-value. None when a question has
    no pair."""
    a, b = _as_frame(a), _as_frame(b)
    items = a.index.intersection(b.index, sort=False)
    diffs = (a.loc[items] - b.loc[items].reindex(columns=a.columns)).dropna(how="all")
    values = diffs.to_numpy(dtype=float)
    if values.size == 0 or np.isnan(values).all(axis=0).any():
        return None
    draws = resample(units.reindex(diffs.index), n_boot, seed)
    boot = resampled_score(values, draws.weights)
    point = float(resampled_score(values, np.ones((1, len(values))))[0])
    low, high, p_value = np.nan, np.nan, np.nan
    if enough_for_interval(values):  # also n_pairs >= 2
        low, high = percentile_ci(boot)
        p_value = bootstrap_p(boot, len(values)) if np.any(values[~np.isnan(values)] != 0) else 1.0
    return {"n_pairs": len(values), "mean_diff": point, "ci_low": low, "ci_high": high, "p_value": p_value,
            "clustering": draws.clustering}


def _comparisons(per_video: pd.DataFrame, columns: list[Column], n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for (judge, mode), part in per_video.groupby(["judge", "mode"], sort=True):
        keys = [c.key for c in columns if c.kind == "question"]
        tables = {model: question_values(sub, keys) for model, sub in part.groupby("model", sort=True)}
        units = part.drop_duplicates("item_id").set_index("item_id")[UNIT_FIELDS]
        for model_a, model_b in itertools.combinations(sorted(tables), 2):
            for column in columns:
                members = list(column.members)
                result = paired_difference(tables[model_a][members], tables[model_b][members], units, n_boot, seed)
                if result is not None:
                    rows.append({"judge": judge, "mode": mode, "model_a": model_a, "model_b": model_b,
                                 "key": column.key, **result})
    table = _frame(rows, [f for f in COMPARISON_FIELDS if f != "p_holm"])
    table["p_holm"] = np.nan
    for _, family in table.groupby(["judge", "mode", "key"], sort=False):
        table.loc[family.index, "p_holm"] = holm(family["p_value"].tolist())
    return table[COMPARISON_FIELDS]


def evaluation_label(judge: str, evaluation: str, shared: bool) -> str:
    """How an evaluation is named in tables: the judge, plus the evaluation's id when the judge has
    several evaluations in one mode (they are shown side by side, never mixed)."""
    return f"{judge} @{evaluation[:8]}" if shared else judge


def labelled_answers(store: Store) -> list[dict]:
    """The store's answers with `judge` set to their evaluation's label (`evaluation_label`)."""
    answers = store.answers()
    evaluations: dict[tuple[str, str], set[str]] = {}
    for a in answers:
        evaluations.setdefault((a["judge"], a["mode"]), set()).add(a["evaluation"])
    return [{**a, "judge": evaluation_label(a["judge"], a["evaluation"], len(evaluations[(a["judge"], a["mode"])]) > 1)}
            for a in answers]


def aggregate(store: Store, *, seed: int = 0, n_boot: int = 1000, dist_reference: str | None = None,
              min_valid_mass: float | None = None) -> Aggregate:
    """Aggregate every judge answer and objective metric of a store (see the module docstring); each
    evaluation (judge settings) is its own group (`labelled_answers`)."""
    answers, jobs = labelled_answers(store), store.jobs()
    per_video = per_video_scores(answers, jobs, min_valid_mass)
    set_names = sorted({a["question_set"] for a in answers})
    columns = build_columns(list(dict.fromkeys(per_video["question_id"])), _questions(set_names))
    rows = []
    for (judge, mode, model), part in per_video.groupby(GROUP, sort=True):
        for row in _group_scores(part, columns, n_boot, seed):
            rows.append({"judge": judge, "mode": mode, "model": model, **row})
    return Aggregate(
        columns=columns,
        per_video=per_video,
        scores=_frame(rows, [*GROUP, "key", *SCORE_FIELDS, "clustering"]),
        objective=_objective(store.metrics(), jobs, n_boot, seed, dist_reference),
        comparisons=_comparisons(per_video, columns, n_boot, seed),
        valid_mass=valid_mass_summary(answers, FLAG_MASS if min_valid_mass is None else min_valid_mass,
                                      min_valid_mass is not None),
        slices=slice_scores(per_video, columns, jobs, n_boot, seed),
        done={model: len(store.videos(model)) for model in store.models()},
        seed=seed,
        n_boot=n_boot,
        dist_reference=dist_reference,
        min_valid_mass=min_valid_mass,
    )


def leaderboard(agg: Aggregate) -> pd.DataFrame:
    """The wide table: one row per (judge, mode, model) with the counts of videos (scored, done),
    answers, missing answers and answers excluded for low valid mass, the bootstrap's clustering, then per
    column `<key>`, `<key>_ci_low`, `<key>_ci_high`,
    `<key>_n_videos`, `<key>_missing`; objective metrics join as further such columns named
    `objective.<name>` (repeated on each judge/mode row of the model). A model with objective metrics
    but no judge answers has a row of its own after the others, with empty judge, mode and clustering
    and zero counts."""
    base = _spread(agg.scores, GROUP, [c.key for c in agg.columns])
    counts = agg.per_video.groupby(GROUP).agg(
        n_videos=("job_id", "nunique"), n_answers=("n_answers", "sum"), n_missing=("n_missing", "sum"),
        n_low_mass=("n_low_mass", "sum"))
    clustering = agg.scores.groupby(GROUP)["clustering"].first()  # one clustering per (judge, mode, model)
    base = counts.join(clustering).reset_index().merge(base, on=GROUP)
    objective = agg.objective.assign(key="objective." + agg.objective["key"])
    if not objective.empty:
        spread = _spread(objective, ["model"], list(dict.fromkeys(objective["key"])))
        base = base.merge(spread, on="model", how="outer")
        unjudged = base["judge"].isna()
        base[["judge", "mode", "clustering"]] = base[["judge", "mode", "clustering"]].fillna("")
        count_fields = ["n_videos", "n_answers", "n_missing", "n_low_mass"]
        base[count_fields] = base[count_fields].fillna(0).astype(int)
        base = base.assign(_unjudged=unjudged).sort_values(["_unjudged", *GROUP], kind="stable")
        base = base.drop(columns="_unjudged")
    base.insert(4, "n_videos_done", [agg.done.get(m, 0) for m in base["model"]])
    return base.reset_index(drop=True)


_SUFFIXES = {"mean": "", "ci_low": "_ci_low", "ci_high": "_ci_high", "n_videos": "_n_videos",
             "n_missing": "_missing"}


def _spread(long: pd.DataFrame, index: list[str], keys: list[str]) -> pd.DataFrame:
    """Long scores -> one row per `index`, the columns of each key in `keys` order."""
    order = [f"{key}{suffix}" for key in keys for suffix in _SUFFIXES.values()]
    if long.empty:
        return pd.DataFrame(columns=[*index, *order])
    wide = long.pivot(index=index, columns="key", values=list(_SUFFIXES))
    wide.columns = [f"{key}{_SUFFIXES[field]}" for field, key in wide.columns]
    return wide.reindex(columns=order).reset_index()
