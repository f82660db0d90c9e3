"""Cross-judge agreement: do two judges rank the models (and the videos) the same way?

Definitions:
- a *judge group* is a (judge, mode) pair of `Aggregate.per_video` (the judge label may carry an
  evaluation id, "videollama2 @1a2b3c4d"); the greedy and expected modes of one judge are two groups.
  Every pair of groups that scored a common video (same `job_id`) is compared, on every column;
- a video's score on a question is the mean over the judge's runs. A question's *shared videos* are those
  both judges scored on it; a column's shared videos are those shared on at least one of its member
  questions (a question: itself; a category or overall: its questions). Everything below uses only them;
  a column without any is left out, and so is a model without a shared video on some member question;
- over MODELS: each model's score under each judge as the leaderboard defines it (`aggregate`): per
  member question the mean over the model's shared videos of that question, then the mean over the
  member questions; so when both judges scored the same videos these are the board's numbers (when not,
  `note` says how many videos each judge scored beside the shared ones). Scores equal to 1e-9 count as
  tied; Spearman's rho (average ranks) and Kendall's tau-b between the two judges' model scores
  (`scipy.stats`), `n_models`; undefined (NaN, said in `note`) with fewer than 3 models;
- over VIDEOS: Spearman's rho and Kendall's tau-b between the two judges' per-video scores, pooled over
  all models, `n_videos` videos. A video's score on a question is its own; on a category or overall it is
  the mean of its member questions, and only videos both judges scored on every member question count
  (`aggregate.video_values`: each video's value is made of the same questions). Undefined with fewer than
  3 such videos;
- PAIRWISE ORDERINGS: for each of the `n_pairs` pairs of models, the judges agree when they order the
  two models' means the same way (a tie agrees only with a tie); `pair_agreement` is the share of
  agreeing pairs (`n_agreeing`), `disagreeing_pairs` lists the others as (x, y), x placed before y by
  judge a (its ranking, best first, ties by name);
- `verdict`: "same ranking" when every pair agrees (the two rankings, ties included, are identical),
  else "judges disagree on the ranking: " and the first `VERDICT_PAIRS` disagreeing pairs, "x and y swap"
  or "x and y tie under <judge> only" (judge as "label (mode)"), then "<n> more pairs";
  "fewer than 2 models: nothing to rank" below two;
  `ranking_a` / `ranking_b` write each judge's ranking as "A > B = C";
- 95% intervals: percentile bootstrap over the shared videos, clustered by music track and prompt
  (`uncertainty.resample(units, n_boot, seed)`, the same draws for every statistic of a row and for
  every member question). On each resample the per-model scores under both judges are recomputed
  (`uncertainty.resampled_score`) and every statistic with them; a resampled video counts with its weight
  (a video drawn twice is two tied observations, as in a resample written out). Resamples where a
  statistic is undefined (a model or a model's member question not drawn, constant scores) are dropped.
  No interval with fewer than 2 shared videos or an undefined point estimate.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from mibench.report.aggregate import UNIT_FIELDS, Aggregate, question_values
from mibench.report.uncertainty import percentile_ci, resample, resampled_score

MIN_MODELS = 3  # fewer models: no rank correlation over models
MIN_VIDEOS = 3  # fewer shared videos: no correlation over videos
TIE_DECIMALS = 9  # model means equal to this many decimals are tied
VERDICT_PAIRS = 3  # a verdict names this many disagreeing pairs, then counts the rest (all in disagreeing_pairs)
STATISTICS = ["spearman_models", "kendall_models", "spearman_videos", "kendall_videos", "pair_agreement"]
AGREEMENT_FIELDS = ["judge_a", "mode_a", "judge_b", "mode_b", "key", "n_models", "n_videos", "n_pairs",
                    "n_agreeing", *[f"{s}{suffix}" for s in STATISTICS for suffix in ("", "_ci_low", "_ci_high")],
                    "disagreeing_pairs", "ranking_a", "ranking_b", "verdict", "note", "clustering"]


def _rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of a with the same row of b, (B, k) -> (B,); NaN for constant rows."""
    ra, rb = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(axis=1) / np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))


def _signs(values: np.ndarray) -> np.ndarray:
    """sign(v_i - v_j) over the pairs i < j of the last axis, (..., k) -> (..., k (k - 1) / 2)."""
    i, j = np.triu_indices(values.shape[-1], 1)
    return np.sign(values[..., i] - values[..., j])


def _tau_b(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Kendall's tau-b from pair signs: concordant - discordant over sqrt(untied in a x untied in b)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sa * sb).sum(axis=-1) / np.sqrt(np.abs(sa).sum(axis=-1) * np.abs(sb).sum(axis=-1))


def weighted_ranks(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of the values x (n,) in each resample holding unit i weights[b, i] times, (B, n)."""
    order = np.argsort(x, kind="stable")
    new = np.r_[True, x[order][1:] != x[order][:-1]]
    per_level = np.add.reduceat(weights[:, order], np.flatnonzero(new), axis=1)
    mid = np.cumsum(per_level, axis=1) - per_level + (per_level + 1) / 2
    ranks = np.empty_like(weights, dtype=float)
    ranks[:, order] = mid[:, np.cumsum(new) - 1]
    return ranks


def weighted_spearman(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of (a, b) in each resample (units repeated by their weight), (B,)."""
    ra, rb = weighted_ranks(a, weights), weighted_ranks(b, weights)
    total = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ra = ra - (weights * ra).sum(axis=1, keepdims=True) / total
        rb = rb - (weights * rb).sum(axis=1, keepdims=True) / total
        return (weights * ra * rb).sum(axis=1) / np.sqrt((weights * ra**2).sum(axis=1) * (weights * rb**2).sum(1))


def weighted_kendall(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of (a, b) in each resample (units repeated by their weight), (B,): pair counts are
    the quadratic forms w' S w of the pair-sign matrices (a unit's copies are tied with each other)."""
    sa, sb = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
    w = weights.astype(np.float32)  # small integers, exact; the matrix products dominate the cost
    forms = [np.einsum("bi,bi->b", (w @ m.astype(np.float32)).astype(float), weights)
             for m in (sa * sb, np.abs(sa), np.abs(sb))]
    with np.errstate(invalid="ignore", divide="ignore"):
        return forms[0] / np.sqrt(forms[1] * forms[2])


def _ranking(models: list[str], means: np.ndarray) -> tuple[list[int], str]:
    """Model indices best first (ties by name) and the ranking written as "A > B = C"."""
    order = sorted(range(len(models)), key=lambda i: (-means[i], models[i]))
    text = models[order[0]] if order else ""
    for prev, cur in itertools.pairwise(order):
        text += (" = " if means[prev] == means[cur] else " > ") + models[cur]
    return order, text


def _orderings(models: list[str], mean_a: np.ndarray, mean_b: np.ndarray, label_a: str, label_b: str) -> dict:
    order, ranking_a = _ranking(models, mean_a)
    ranking_b = _ranking(models, mean_b)[1]
    disagreeing, items = [], []
    for i, j in itertools.combinations(order, 2):
        sa, sb = np.sign(mean_a[i] - mean_a[j]), np.sign(mean_b[i] - mean_b[j])
        if sa != sb:
            x, y = models[i], models[j]
            disagreeing.append((x, y))
            tied_under = label_b if sb == 0 else label_a
            items.append(f"{x} and {y} swap" if sa * sb < 0 else f"{x} and {y} tie under {tied_under} only")
    if len(models) < 2:
        verdict = "fewer than 2 models: nothing to rank"
    else:
        more = len(items) - VERDICT_PAIRS
        shown = items[:VERDICT_PAIRS] + ([f"{more} more pairs"] if more > 0 else [])
        verdict = "same ranking" if not items else "judges disagree on the ranking: " + "; ".join(shown)
    return {"disagreeing_pairs": disagreeing, "ranking_a": ranking_a, "ranking_b": ranking_b, "verdict": verdict,
            "n_agreeing": len(models) * (len(models) - 1) // 2 - len(disagreeing)}


def _model_scores(values: np.ndarray, codes: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Each of the k models' score (`resampled_score` of its videos' rows of `values`) in every row of
    `weights`, rounded to `TIE_DECIMALS`: (n, m) -> (B, k)."""
    scores = np.empty((len(weights), k))
    for i in range(k):
        scores[:, i] = resampled_score(values[codes == i], weights[:, codes == i])
    return np.round(scores, TIE_DECIMALS)


def compare(a: np.ndarray, b: np.ndarray, videos: pd.DataFrame, n_boot: int, seed: int,
            labels: tuple[str, str] = ("a", "b")) -> dict:
    """Every statistic of one (judge pair, column) (see the module docstring) from the two judges' scores
    a, b of the shared videos, (n,) for a question or (n, m) for the m member questions of a category (NaN:
    no score; a question counts for a video only where both judges scored it), and their `videos` rows
    (model, music_id, prompt_id)."""
    a, b = np.asarray(a, dtype=float).reshape(len(a), -1), np.asarray(b, dtype=float).reshape(len(b), -1)
    a_members = a.shape[1]
    shared = ~np.isnan(a) & ~np.isnan(b)
    a, b = np.where(shared, a, np.nan), np.where(shared, b, np.nan)
    models, codes = np.unique(videos["model"].to_numpy(dtype=str), return_inverse=True)
    k = len(models)
    draws = resample(videos[UNIT_FIELDS].reset_index(drop=True), n_boot, seed)
    weights = np.vstack([np.ones((1, len(a))), draws.weights])  # row 0: the sample itself
    means_a, means_b = _model_scores(a, codes, k, weights), _model_scores(b, codes, k, weights)
    complete = shared.all(axis=1)  # per-video values: only videos with every member question
    n, n_units = int(complete.sum()), len(a)
    a, b, video_weights = a[complete].mean(axis=1), b[complete].mean(axis=1), weights[:, complete]
    sa, sb = _signs(means_a), _signs(means_b)
    undefined = np.isnan(means_a).any(axis=1) | np.isnan(means_b).any(axis=1)
    boot = {"pair_agreement": np.where(undefined, np.nan, (sa == sb).mean(axis=1) if k >= 2 else np.nan)}
    notes = []
    if k >= MIN_MODELS:
        boot["spearman_models"] = np.where(undefined, np.nan, _rowwise_spearman(means_a, means_b))
        boot["kendall_models"] = np.where(undefined, np.nan, _tau_b(sa, sb))
    else:
        notes.append(f"fewer than {MIN_MODELS} models: no rank correlation over models")
    if n >= MIN_VIDEOS:
        boot["spearman_videos"] = weighted_spearman(a, b, video_weights)
        boot["kendall_videos"] = weighted_kendall(a, b, video_weights)
    else:
        notes.append(f"fewer than {MIN_VIDEOS} videos scored by both judges"
                     f"{' on every member question' if a_members > 1 else ''}: no correlation over videos")
    with warnings.catch_warnings():  # constant scores: NaN, said by scipy's warning otherwise
        warnings.simplefilter("ignore")
        point = {"spearman_models": stats.spearmanr(means_a[0], means_b[0]).statistic if k >= MIN_MODELS else np.nan,
                 "kendall_models": stats.kendalltau(means_a[0], means_b[0]).statistic if k >= MIN_MODELS else np.nan,
                 "spearman_videos": stats.spearmanr(a, b).statistic if n >= MIN_VIDEOS else np.nan,
                 "kendall_videos": stats.kendalltau(a, b).statistic if n >= MIN_VIDEOS else np.nan,
                 "pair_agreement": boot["pair_agreement"][0]}
    row = {"n_models": k, "n_videos": n, "n_pairs": k * (k - 1) // 2, "note": "; ".join(notes),
           "clustering": draws.clustering, **_orderings(list(models), means_a[0], means_b[0], *labels)}
    for name in STATISTICS:
        value = float(point[name])
        low, high = (percentile_ci(boot[name][1:]) if name in boot and n_units >= 2 and not np.isnan(value)
                     else (np.nan, np.nan))
        row.update({name: value, f"{name}_ci_low": low, f"{name}_ci_high": high})
    return row


def agreement(agg: Aggregate, n_boot: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """Cross-judge agreement of a run, one row per (judge_a, mode_a, judge_b, mode_b, key), the fields
    `AGREEMENT_FIELDS` (see the module docstring); empty with fewer than two judge groups. The bootstrap
    uses `agg.n_boot` and `agg.seed` unless given."""
    n_boot = agg.n_boot if n_boot is None else n_boot
    seed = agg.seed if seed is None else seed
    per_video = agg.per_video
    keys = [c.key for c in agg.columns if c.kind == "question"]
    tables = {group: question_values(part, keys, index="job_id")  # one row per video
              for group, part in per_video.groupby(["judge", "mode"], sort=True)}
    videos = per_video.drop_duplicates("job_id").set_index("job_id")[["model", *UNIT_FIELDS]]
    rows = []
    for (judge_a, mode_a), (judge_b, mode_b) in itertools.combinations(sorted(tables), 2):
        table_a, table_b = tables[judge_a, mode_a], tables[judge_b, mode_b]
        shared = table_a.index.intersection(table_b.index, sort=False).sort_values()
        labels = (f"{judge_a} ({mode_a})", f"{judge_b} ({mode_b})")
        for column in agg.columns if len(shared) else []:
            members = list(column.members)
            a, b = table_a.loc[shared, members].to_numpy(), table_b.loc[shared, members].to_numpy()
            both = ~np.isnan(a) & ~np.isnan(b)
            model_of = videos.loc[shared, "model"].to_numpy(dtype=str)
            complete_models = [m for m in np.unique(model_of) if both[model_of == m].any(axis=0).all()]
            keep = both.any(axis=1) & np.isin(model_of, complete_models)
            if keep.any():
                scored = [_scored(table, members, videos, complete_models) for table in (table_a, table_b)]
                note = (f"over the {int(keep.sum())} videos both judges scored ({scored[0]} and {scored[1]} "
                        "scored by each; the board's means use each judge's own)"
                        if max(scored) > keep.sum() else "")
                row = compare(a[keep], b[keep], videos.loc[shared[keep]], n_boot, seed, labels)
                row["note"] = "; ".join(filter(None, [row["note"], note]))
                rows.append({"judge_a": judge_a, "mode_a": mode_a, "judge_b": judge_b, "mode_b": mode_b,
                             "key": column.key, **row})
    return pd.DataFrame(rows, columns=AGREEMENT_FIELDS)


def _scored(table: pd.DataFrame, members: list[str], videos: pd.DataFrame, models: list[str]) -> int:
    """How many videos of `models` a judge's table scored on at least one of `members`."""
    scored = table.index[table[members].notna().any(axis=1).to_numpy()]
    return int(videos.loc[scored, "model"].isin(models).sum())
