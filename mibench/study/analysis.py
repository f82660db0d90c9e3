"""Results of a human A/B study (the `studies`, `study_items`, `study_raters` and `study_votes` tables of
the run's store): who wins, how much the raters agree, who failed the attention checks, and whether the
Video-LLM judges side with the humans.

Definitions:
- a *vote* is one rater's (token's) answer to one question of one study item: 'a' (the item's `job_a`),
  'b' (`job_b`) or 'tie'. Only votes on 'pair' items (model_a's video of an item against model_b's)
  enter the win rates, the agreement and the judge comparison; 'same' and 'beat' items are checks;
- per question (`win_rates`): `n_votes`, `n_a`, `n_b`, `n_tie`, `n_raters`, `n_items`;
  `win_rate_a` = n_a / (n_a + n_b) (ties left out; NaN without a decisive vote), `tie_rate` =
  n_tie / n_votes and `share_a` = n_a / n_votes (the share of all votes: model_b's is 1 - share_a - tie_rate);
- 95% intervals of `win_rate_a` and `tie_rate`: percentile bootstrap (`n_boot` resamples drawn by
  `numpy.random.default_rng(seed)`) clustered by rater and by item: a rater's votes share the rater's
  taste, an item's votes share its videos. Each resample draws the raters and the items with replacement,
  independently, and weighs a vote by the product of its rater's and its item's draw counts
  (`uncertainty.resample` over the rater and item columns); resamples where a rate is
  undefined are dropped; no interval with fewer than 2 votes;
- agreement (`agreement`): Krippendorff's alpha for nominal data per question, units = items, values = the
  raters' choices. With n_uc the number of values c in unit u and m_u = sum_c n_uc, units with m_u >= 2
  are pairable (`n_units`); coincidences o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1), n_c = sum_k
  o_ck, n = sum_c n_c (`n_values`); alpha = 1 - (n - 1) sum_{c != k} o_ck / sum_{c != k} n_c n_k
  (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"): 1 perfect agreement, 0 chance level.
  Undefined (NaN, said in `note`) with fewer than 2 pairable values or when they are all the same;
- attention checks (`checks`): a 'same' item's expected answer holds for every question; a 'beat' item's
  only for the questions whose `judge` is `beat_alignment` (the music alignment); a NULL one for none
  (`model.expected_choice`; `votes_table`'s `expected`). A rater *saw* a check (`n_checks`) when they
  answered one of its questions that has an expected answer, and *passed* it (`n_passed`) when every such
  answer was the expected one. A rater is *failing*
  when `pass_rate` = n_passed / n_checks is below `min_pass_rate` (default 1.0: any failed check); a rater
  who saw no check (pass rate NaN) is not. With `exclude_failed` the failing raters' votes are left out of
  every other statistic (`excluded` lists them; `checks` still shows every rater). Raters are named by
  their labels everywhere: a token is the secret of a rater's voting link (`votes_table(tokens=True)` only);
- judge vs human (`judges`): for each judge group (judge, mode) of the aggregate and each question whose
  `judge` key is a column of it, per 'pair' item where both models' videos have a score
  (`aggregate.video_values`): the judge says 'a' when model_a's video scores higher, 'b' when lower,
  'tie' when equal (to `TIE_DECIMALS`); the humans say the choice with the most votes on the item, 'tie'
  when two choices share the most (an exact split). `agreement` = `n_agreeing` / `n_items`; Cohen's kappa over the three
  categories = (p_o - p_e) / (1 - p_e), p_e = sum_c p_judge(c) p_human(c); undefined (NaN, `note`) when
  p_e = 1. Without `agg` the store's judge answers are aggregated (`aggregate(store, n_boot=0)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mibench.report.aggregate import Aggregate, aggregate, video_values
from mibench.report.uncertainty import percentile_ci, resample
from mibench.store import Store
from mibench.study.model import Study, expected_choice, load_study

CHOICES = ("a", "b", "tie")
TIE_DECIMALS = 9  # judge score differences rounded to this many decimals; 0 is a tie
CLUSTERS = {"token": "rater", "item_id": "item"}  # what the bootstrap draws (uncertainty.resample factors)
VOTE_FIELDS = ["study", "rater", "pair_id", "item_id", "kind", "model_a", "model_b", "job_a", "job_b",
               "question_id", "question", "judge", "side", "choice", "expected", "created"]
RATE_FIELDS = ["n_votes", "n_a", "n_b", "n_tie", "win_rate_a", "win_rate_a_ci_low", "win_rate_a_ci_high",
               "tie_rate", "tie_rate_ci_low", "tie_rate_ci_high", "share_a"]
WIN_FIELDS = ["question_id", "question", *RATE_FIELDS, "n_raters", "n_items", "clustering"]
ALPHA_FIELDS = ["question_id", "alpha", "n_units", "n_values", "note"]
CHECK_FIELDS = ["rater", "n_checks", "n_passed", "pass_rate", "failing"]
JUDGE_FIELDS = ["judge", "mode", "question_id", "key", "n_items", "n_agreeing", "agreement", "kappa", "note"]


@dataclass
class StudyResults:
    """Every table of a study's results (see the module docstring for the definitions)."""

    study: Study
    win_rates: pd.DataFrame  # WIN_FIELDS, one row per question
    agreement: pd.DataFrame  # ALPHA_FIELDS
    checks: pd.DataFrame  # CHECK_FIELDS, one row per rater
    judges: pd.DataFrame  # JUDGE_FIELDS
    failing_raters: list[str]  # labels of the raters below min_pass_rate
    excluded: list[str]  # labels of the raters whose votes were left out (failing ones with exclude_failed)
    min_pass_rate: float
    n_boot: int
    seed: int


def votes_table(store: Store, study_id: str, *, tokens: bool = False) -> pd.DataFrame:
    """Every vote of a study (`VOTE_FIELDS`, and the rater's `token` after `study` with `tokens`): rater label,
    item, the two videos' models (a 'pair' item's are the study's; a check's come from the run's jobs, empty
    for videos that are not jobs), question text and judge key, the question's expected answer (checks)."""
    study = load_study(store, study_id)  # StudyError when unknown
    rows = store.db.execute(
        "SELECT v.study, v.token, COALESCE(r.label, v.token) AS rater, v.pair_id, i.item_id, i.kind,"
        " CASE WHEN i.kind = 'pair' THEN s.model_a ELSE ja.model END AS model_a,"
        " CASE WHEN i.kind = 'pair' THEN s.model_b ELSE jb.model END AS model_b,"
        " i.job_a, i.job_b, v.question_id, v.side, v.choice, i.expected, v.created"
        " FROM study_votes v JOIN studies s ON s.id = v.study"
        " LEFT JOIN study_raters r ON r.token = v.token"
        " LEFT JOIN study_items i ON i.study = v.study AND i.pair_id = v.pair_id"
        " LEFT JOIN jobs ja ON ja.job_id = i.job_a LEFT JOIN jobs jb ON jb.job_id = i.job_b"
        " WHERE v.study = ? ORDER BY v.created, v.token, v.pair_id, v.question_id", (study_id,)).fetchall()
    table = pd.DataFrame([dict(r) for r in rows], columns=["token", *VOTE_FIELDS])
    questions = {q["id"]: q for q in study.questions}
    table["question"] = [questions.get(q, {}).get("text") for q in table["question_id"]]
    table["judge"] = [questions.get(q, {}).get("judge") for q in table["question_id"]]
    table["expected"] = pd.Series([expected_choice(k, e, j) for k, e, j in
                                   zip(table["kind"], table["expected"], table["judge"], strict=True)], dtype=object)
    return table[["study", "token", *VOTE_FIELDS[1:]] if tokens else VOTE_FIELDS]


def vote_rates(votes: pd.DataFrame, factors: dict[str, str] = CLUSTERS, n_boot: int = 1000, seed: int = 0) -> dict:
    """`RATE_FIELDS` of a set of votes (column `choice`), the intervals drawn by `uncertainty.resample` over
    `factors` (default: raters and items), and what they drew (`clustering`: a factor whose levels each hold
    one vote is not drawn)."""
    is_a, is_b, is_tie = (votes["choice"].eq(c).to_numpy(dtype=float) for c in CHOICES)
    n = len(votes)
    weights, clustering = np.ones((1, n)), "none"  # row 0: the sample itself
    if n >= 2:
        draws = resample(votes, n_boot, seed, factors=factors, unit="vote")
        weights, clustering = np.vstack([weights, draws.weights]), draws.clustering
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = {"win_rate_a": weights @ is_a / (weights @ (is_a + is_b)),
                 "tie_rate": weights @ is_tie / weights.sum(axis=1)}
    row = {"n_votes": n, "n_a": int(is_a.sum()), "n_b": int(is_b.sum()), "n_tie": int(is_tie.sum()),
           "share_a": is_a.sum() / n if n else np.nan, "clustering": clustering}
    for name, values in rates.items():
        low, high = percentile_ci(values[1:]) if n >= 2 else (np.nan, np.nan)
        row.update({name: float(values[0]), f"{name}_ci_low": low, f"{name}_ci_high": high})
    return row


def krippendorff_alpha(counts: np.ndarray) -> dict:
    """Nominal Krippendorff's alpha from a (units, categories) table of value counts (module docstring):
    alpha, n_units and n_values (pairable), note."""
    counts = np.asarray(counts, dtype=float).reshape(-1, np.shape(counts)[-1])
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    scaled = counts / (m - 1)[:, None]
    coincidences = scaled.T @ counts - np.diag(scaled.sum(axis=0))
    n_c = coincidences.sum(axis=1)
    n = n_c.sum()
    off = ~np.eye(len(n_c), dtype=bool)
    expected = np.outer(n_c, n_c)[off].sum()
    note = ("fewer than 2 pairable values" if n < 2 else
            "every pairable value is the same: no expected disagreement, alpha undefined" if expected == 0 else "")
    alpha = np.nan if note else 1 - (n - 1) * coincidences[off].sum() / expected
    return {"alpha": float(alpha), "n_units": len(m), "n_values": int(n), "note": note}


def cohen_kappa(x: pd.Series, y: pd.Series) -> dict:
    """Agreement and Cohen's kappa of two aligned series of choices over `CHOICES` (module docstring)."""
    n = len(x)
    agreeing = int((x.to_numpy() == y.to_numpy()).sum())
    p_o = agreeing / n if n else np.nan
    p_e = sum(x.eq(c).mean() * y.eq(c).mean() for c in CHOICES) if n else np.nan
    note = "no item" if not n else "both always give the same answer: kappa undefined" if np.isclose(p_e, 1) else ""
    return {"n_items": n, "n_agreeing": agreeing, "agreement": p_o,
            "kappa": np.nan if note else float((p_o - p_e) / (1 - p_e)), "note": note}


def _checks(store: Store, study: Study, votes: pd.DataFrame, min_pass_rate: float) -> pd.DataFrame:
    passed: dict[str, dict[str, bool]] = {}  # token -> check pair_id -> every expected answer given
    for vote in votes[votes["expected"].notna()].itertuples():
        seen = passed.setdefault(vote.token, {})
        seen[vote.pair_id] = seen.get(vote.pair_id, True) and vote.choice == vote.expected
    raters = store.db.execute("SELECT token, label FROM study_raters WHERE study = ? ORDER BY rowid",
                              (study.id,)).fetchall()
    labels = {r["token"]: r["label"] for r in raters}
    labels.update({token: None for token in votes["token"] if token not in labels})  # votes of unregistered raters
    table = pd.DataFrame({"token": list(labels), "rater": [label or token for token, label in labels.items()],
                          "n_checks": [len(passed.get(t, {})) for t in labels],
                          "n_passed": [sum(passed.get(t, {}).values()) for t in labels]})
    with np.errstate(invalid="ignore", divide="ignore"):
        table["pass_rate"] = np.where(table["n_checks"] > 0, table["n_passed"] / table["n_checks"], np.nan)
    table["failing"] = table["pass_rate"] < min_pass_rate  # NaN (no check seen) compares False
    return table[["token", *CHECK_FIELDS]]  # the token: to exclude the rater's votes


def _majority(counts: pd.DataFrame) -> pd.Series:
    """The choice with the most votes per row of a (row, CHOICES) count table; 'tie' on a shared top."""
    top = counts.eq(counts.max(axis=1), axis=0)
    return pd.Series(np.where(top.sum(axis=1) > 1, "tie", top.idxmax(axis=1)), index=counts.index)


def _judges(agg: Aggregate, study: Study, counts: pd.DataFrame) -> pd.DataFrame:
    keys = {c.key for c in agg.columns}
    questions = [q for q in study.questions if q["judge"] in keys]
    rows = []
    for (judge, mode), part in agg.per_video.groupby(["judge", "mode"], sort=True):
        tables = {model: video_values(sub, agg.columns) for model, sub in part.groupby("model")}
        if study.model_a not in tables or study.model_b not in tables:
            continue
        for q in questions:
            diff = (tables[study.model_a][q["judge"]] - tables[study.model_b][q["judge"]]).round(TIE_DECIMALS)
            says = np.sign(diff.dropna()).map({1.0: "a", -1.0: "b", 0.0: "tie"})
            voted = q["id"] in counts.index.get_level_values(0)
            human = _majority(counts.loc[q["id"]]) if voted else pd.Series(dtype=object)
            both = pd.concat({"judge": says, "human": human}, axis=1, join="inner")
            rows.append({"judge": judge, "mode": mode, "question_id": q["id"], "key": q["judge"],
                         **cohen_kappa(both["judge"], both["human"])})
    return pd.DataFrame(rows, columns=JUDGE_FIELDS)


def study_results(store: Store, study_id: str, *, agg: Aggregate | None = None, exclude_failed: bool = False,
                  min_pass_rate: float = 1.0, n_boot: int = 1000, seed: int = 0) -> StudyResults:
    """Every result table of a study (see the module docstring)."""
    study = load_study(store, study_id)  # StudyError when unknown
    votes = votes_table(store, study_id, tokens=True)
    checks = _checks(store, study, votes, min_pass_rate)
    failing = checks[checks["failing"]]
    excluded = failing if exclude_failed else failing.iloc[:0]
    pair = votes[(votes["kind"] == "pair") & ~votes["token"].isin(excluded["token"])]
    counts = pair.groupby(["question_id", "item_id"])["choice"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=list(CHOICES), fill_value=0)
    win_rows, alpha_rows = [], []
    for q in study.questions:
        part = pair[pair["question_id"] == q["id"]]
        win_rows.append({"question_id": q["id"], "question": q["text"], **vote_rates(part, CLUSTERS, n_boot, seed),
                         "n_raters": part["token"].nunique(), "n_items": part["item_id"].nunique()})
        table = counts.loc[q["id"]].to_numpy() if len(part) else np.zeros((0, len(CHOICES)))
        alpha_rows.append({"question_id": q["id"], **krippendorff_alpha(table)})
    agg = aggregate(store, n_boot=0) if agg is None else agg
    return StudyResults(study=study, win_rates=pd.DataFrame(win_rows, columns=WIN_FIELDS),
                        agreement=pd.DataFrame(alpha_rows, columns=ALPHA_FIELDS), checks=checks[CHECK_FIELDS],
                        judges=_judges(agg, study, counts), failing_raters=failing["rater"].tolist(),
                        excluded=excluded["rater"].tolist(),
                        min_pass_rate=min_pass_rate, n_boot=n_boot, seed=seed)
