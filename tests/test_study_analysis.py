"""Human A/B study results on hand-made stores: win and tie rates with rater x item clustered intervals,
Krippendorff's alpha, attention checks and exclusion, and judge-vs-human agreement (Cohen's kappa)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import store_answers

from mibench.report.aggregate import aggregate
from mibench.store import Store
from mibench.study.analysis import (
    ALPHA_FIELDS,
    CHECK_FIELDS,
    JUDGE_FIELDS,
    VOTE_FIELDS,
    WIN_FIELDS,
    krippendorff_alpha,
    study_results,
    vote_rates,
    votes_table,
)
from mibench.study.model import StudyError
from mibench.suite.jobs import Job

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies(id TEXT PRIMARY KEY, created REAL, model_a TEXT, model_b TEXT, settings TEXT);
CREATE TABLE IF NOT EXISTS study_items(study TEXT, pair_id TEXT, item_id TEXT, job_a TEXT, job_b TEXT, kind TEXT,
    expected TEXT, PRIMARY KEY (study, pair_id));
CREATE TABLE IF NOT EXISTS study_raters(study TEXT, token TEXT PRIMARY KEY, label TEXT, created REAL, sequence TEXT);
CREATE TABLE IF NOT EXISTS study_votes(study TEXT, token TEXT, pair_id TEXT, question_id TEXT, choice TEXT,
    side TEXT, created REAL, PRIMARY KEY (token, pair_id, question_id));
"""
QUESTIONS = [{"id": "looks", "text": "Which video looks better?", "judge": "video_quality"},
             {"id": "music", "text": "Which dancer follows the music?", "judge": "beat_alignment"}]
# 3 raters x 4 items on "looks": a 6, b 3, tie 3 -> win rate 6/9, tie rate 3/12, share_a 6/12
TABLE = {"r1": "a a b tie", "r2": "a b b a", "r3": "a a tie tie"}
MAJORITY = ["a", "a", "b", "tie"]  # per item of TABLE
ITEMS = [f"i{k}" for k in range(4)]
CHECKS = {"same": ("same", "x", "x", "tie"), "beat": ("beat", "on", "off", "a")}  # kind, job_a, job_b, expected


def jobs(model: str) -> list[Job]:
    """One job per item; the two models' jobs of an item share its item_id."""
    return [Job(model=model, suite="paper", music_id=f"m{k}", music_path=None, prompt_id="p", prompt="dance",
                seed=0, num_frames=49) for k in range(len(ITEMS))]


def make_study(store: Store, votes: dict[str, dict], *, study: str = "s1", questions=QUESTIONS) -> None:
    """A study of model A against B: one 'pair' item per ITEMS entry, the two CHECKS, and `votes` as
    {rater token: {(pair_id, question_id): choice}} (a rater's label is its token upper-cased)."""
    store.db.executescript(SCHEMA)
    settings = {"questions": questions, "allow_tie": True, "per_rater": None, "checks": 2, "seed": 0}
    store.db.execute("INSERT INTO studies VALUES (?, 0, 'A', 'B', ?)", (study, json.dumps(settings)))
    rows = [(study, pair, a.item_id, a.job_id, b.job_id, "pair", None)
            for pair, a, b in zip(ITEMS, jobs("A"), jobs("B"), strict=True)]
    rows += [(study, pair, pair, job_a, job_b, kind, expected)
             for pair, (kind, job_a, job_b, expected) in CHECKS.items()]
    store.db.executemany("INSERT INTO study_items VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    for n, (token, choices) in enumerate(votes.items()):
        store.db.execute("INSERT INTO study_raters VALUES (?, ?, ?, ?, '[]')", (study, token, token.upper(), n))
        store.db.executemany("INSERT INTO study_votes VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(study, token, pair, question, choice, {"a": "left", "b": "right"}.get(choice, "tie"),
                               float(i)) for i, ((pair, question), choice) in enumerate(choices.items())])


def table_votes(table: dict[str, str], question: str = "looks") -> dict[str, dict]:
    """{rater: "a b tie a"} (choices on ITEMS) -> make_study's votes on `question`."""
    return {token: dict(zip([(item, question) for item in ITEMS], row.split(), strict=True))
            for token, row in table.items()}


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "mibench.sqlite")
    yield store
    store.close()


def results(store, votes, **kwargs):
    make_study(store, votes)
    return study_results(store, "s1", n_boot=200, **kwargs)


def test_win_rates_of_a_hand_made_vote_table(store):
    out = results(store, table_votes(TABLE))
    assert list(out.win_rates.columns) == WIN_FIELDS and list(out.agreement.columns) == ALPHA_FIELDS
    row = out.win_rates.set_index("question_id").loc["looks"]
    counts = ("n_votes", "n_a", "n_b", "n_tie", "n_raters", "n_items")
    assert tuple(row[list(counts)]) == (12, 6, 3, 3, 3, 4)
    assert row["win_rate_a"] == pytest.approx(2 / 3)
    assert row["tie_rate"] == pytest.approx(0.25) and row["share_a"] == pytest.approx(0.5)
    assert row["clustering"] == "rater x item" and row["question"] == "Which video looks better?"
    for name in ("win_rate_a", "tie_rate"):
        assert row[f"{name}_ci_low"] <= row[name] <= row[f"{name}_ci_high"]
    music = out.win_rates.set_index("question_id").loc["music"]  # no vote: counts 0, rates undefined
    assert music["n_votes"] == 0 and np.isnan(music["win_rate_a"]) and np.isnan(music["win_rate_a_ci_low"])
    again = study_results(store, "s1", n_boot=200)
    pd.testing.assert_frame_equal(out.win_rates, again.win_rates)  # same seed, same intervals
    other = study_results(store, "s1", n_boot=200, seed=1).win_rates
    assert not other["win_rate_a_ci_low"].equals(out.win_rates["win_rate_a_ci_low"])


def test_votes_table_lists_every_vote(store):
    make_study(store, table_votes(TABLE) | {"r4": {("same", "looks"): "tie"}})
    table = votes_table(store, "s1")
    assert list(table.columns) == VOTE_FIELDS and len(table) == 13
    first = table[(table["rater"] == "R1") & (table["pair_id"] == "i0")].iloc[0]
    assert (first["rater"], first["model_a"], first["model_b"], first["choice"], first["side"]) == ("R1", "A", "B", "a",
                                                                                                   "left")
    assert first["item_id"] == jobs("A")[0].item_id and first["question"] == "Which video looks better?"
    assert first["judge"] == "video_quality" and pd.isna(first["expected"])
    assert "token" not in table  # the secret of a rater's link: only on request
    assert set(votes_table(store, "s1", tokens=True)["token"]) == {"r1", "r2", "r3", "r4"}
    check = table[table["pair_id"] == "same"].iloc[0]
    assert check["kind"] == "same" and check["expected"] == "tie" and pd.isna(check["model_a"])  # not a job
    with pytest.raises(StudyError):
        votes_table(store, "nope")


def test_krippendorff_alpha_by_hand_and_on_krippendorffs_example(store):
    out = results(store, table_votes(TABLE))
    # coincidences o_ab = o_a,tie = o_b,tie = 1 (x2 off the diagonal), n = (6, 3, 3): 1 - 11 * 6 / (144 - 54)
    row = out.agreement.set_index("question_id").loc["looks"]
    assert row["alpha"] == pytest.approx(4 / 15) and (row["n_units"], row["n_values"]) == (4, 12)
    assert np.isnan(out.agreement.set_index("question_id").loc["music", "alpha"])
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, nominal 0.743
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, 0, 0, 0], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, 0, 3],
            [0, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 0], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, 0]]  # 0: no value
    counts = np.array([[sum(obs[u] == v for obs in data) for v in range(1, 6)] for u in range(12)])
    example = krippendorff_alpha(counts)
    assert example["alpha"] == pytest.approx(0.743, abs=5e-4) and (example["n_units"], example["n_values"]) == (11, 40)
    # two raters, three items: (a, a), (a, b), (b, b) -> 1 - 5 * 2 / 18
    assert krippendorff_alpha([[2, 0, 0], [1, 1, 0], [0, 2, 0]])["alpha"] == pytest.approx(4 / 9)


def test_alpha_is_one_for_perfect_agreement_and_undefined_without_variation(store):
    assert krippendorff_alpha([[3, 0, 0], [0, 3, 0], [0, 0, 2], [1, 0, 0]])["alpha"] == 1.0  # a lone value: unpaired
    same = krippendorff_alpha([[3, 0, 0], [2, 0, 0]])
    assert np.isnan(same["alpha"]) and "undefined" in same["note"] and same["n_values"] == 5
    out = results(store, table_votes({"r1": "a b a a", "r2": "a b a a"}))
    assert out.agreement.set_index("question_id").loc["looks", "alpha"] == 1.0


def test_attention_checks_flag_and_exclude_failing_raters(store):
    votes = table_votes(TABLE)
    votes["r1"] |= {("same", "looks"): "tie", ("same", "music"): "tie", ("beat", "music"): "a",
                    ("beat", "looks"): "b"}  # beat's looks question has no expected answer
    votes["r2"] |= {("same", "looks"): "a", ("beat", "music"): "a"}  # fails the 'same' check
    out = results(store, votes)
    checks = out.checks.set_index("rater")  # by label: a token is a secret
    assert list(out.checks.columns) == CHECK_FIELDS
    assert tuple(checks.loc["R1", ["n_checks", "n_passed", "pass_rate"]]) == (2, 2, 1.0)
    assert tuple(checks.loc["R2", ["n_checks", "n_passed", "pass_rate"]]) == (2, 1, 0.5)
    assert checks.loc["R3", "n_checks"] == 0 and np.isnan(checks.loc["R3", "pass_rate"])  # saw none: not failing
    assert out.failing_raters == ["R2"] and out.excluded == []
    assert out.win_rates.set_index("question_id").loc["looks", "win_rate_a"] == pytest.approx(2 / 3)  # checks left out
    assert results_lenient(store).failing_raters == []
    kept = study_results(store, "s1", n_boot=200, exclude_failed=True)
    assert kept.excluded == ["R2"] and len(kept.checks) == 3
    row = kept.win_rates.set_index("question_id").loc["looks"]  # r1 and r3: a 4, b 1, tie 3
    assert (row["n_votes"], row["n_raters"]) == (8, 2)
    assert row["win_rate_a"] == pytest.approx(4 / 5) and row["tie_rate"] == pytest.approx(3 / 8)
    alpha = kept.agreement.set_index("question_id").loc["looks"]  # (a,a) (a,a) (b,tie) (tie,tie): 1 - 7 * 2 / 38
    assert alpha["n_values"] == 8 and alpha["alpha"] == pytest.approx(12 / 19)


def results_lenient(store):
    return study_results(store, "s1", n_boot=10, min_pass_rate=0.5)


def add_judges(store: Store, preferences: dict[str, list[str]]) -> None:
    """Jobs of A and B on every item and judge answers on the Video Quality questions whose video_quality
    (their mean) prefers, per item, what `preferences[judge]` says."""
    store.add_jobs(jobs("A") + jobs("B"))
    scores = {"a": (7.0, 5.0), "b": (4.0, 6.0), "tie": (5.0, 5.0)}
    rows = []
    for judge, says in preferences.items():
        for k, choice in enumerate(says):
            for job, score in zip((jobs("A")[k], jobs("B")[k]), scores[choice], strict=True):
                for qid, shift in (("imaging_quality", 1.0), ("aesthetic_quality", -1.0)):  # mean: score
                    rows.append({"job_id": job.job_id, "judge": judge, "question_set": "paper", "question_id": qid,
                                 "mode": "greedy", "run_index": 0, "question": "q", "raw": "x", "score": score + shift,
                                 "distribution": None, "options": {}})
    store_answers(store, rows)


def test_judges_against_the_human_majority(store):
    add_judges(store, {"agree": MAJORITY, "reversed": ["b", "b", "a", "a"], "mixed": ["a", "b", "b", "a"]})
    out = results(store, table_votes(TABLE))  # no agg: aggregated from the store
    assert list(out.judges.columns) == JUDGE_FIELDS
    assert set(out.judges["key"]) == {"video_quality"}  # beat_alignment has no judge scores
    rows = out.judges.set_index("judge")
    assert tuple(rows.loc["agree", ["n_items", "n_agreeing", "agreement", "kappa"]]) == (4, 4, 1.0, 1.0)
    assert rows.loc["reversed", "agreement"] == 0.0 and rows.loc["reversed", "kappa"] < 0
    # mixed: p_o = 2/4; judge (a, b, tie) = (1/2, 1/2, 0), humans (1/2, 1/4, 1/4): p_e = 3/8 -> kappa 1/5
    assert rows.loc["mixed", "agreement"] == 0.5 and rows.loc["mixed", "kappa"] == pytest.approx(0.2)
    given = study_results(store, "s1", n_boot=10, agg=aggregate(store, n_boot=0))
    pd.testing.assert_frame_equal(given.judges, out.judges)


def test_human_majority_split_counts_as_tie_and_constant_answers_have_no_kappa(store):
    add_judges(store, {"always_a": ["a"] * 4})
    out = results(store, table_votes({"r1": "a a a a", "r2": "a a a b", "r3": "a a a tie"}))  # item 4: a/b/tie split
    row = out.judges.iloc[0]
    assert (row["n_agreeing"], row["agreement"]) == (3, 0.75) and row["kappa"] == 0.0
    store.db.execute("DELETE FROM study_votes WHERE pair_id = 'i3'")
    row = study_results(store, "s1", n_boot=10).judges.iloc[0]
    assert row["agreement"] == 1.0 and np.isnan(row["kappa"]) and "undefined" in row["note"]


def test_clustered_intervals_are_wider_than_naive_ones_when_raters_differ():
    """Half the raters prefer A on 9 items of 10, the other half B: the votes of a rater are not
    independent, and the rater x item bootstrap says so where a bootstrap over votes does not."""
    votes = pd.DataFrame([(f"r{r}", f"i{i}", ("a" if r < 4 else "b") if i < 9 else ("b" if r < 4 else "a"))
                          for r in range(8) for i in range(10)], columns=["token", "item_id", "choice"])
    clustered = vote_rates(votes, n_boot=500, seed=0)
    naive = vote_rates(votes, {}, n_boot=500, seed=0)  # no factors: the bootstrap over votes
    assert clustered["win_rate_a"] == naive["win_rate_a"] == 0.5
    width = {name: r["win_rate_a_ci_high"] - r["win_rate_a_ci_low"] for name, r in (("c", clustered), ("n", naive))}
    assert width["c"] > 2 * width["n"]


def test_the_clustering_named_is_the_one_drawn():
    """One rater voting once per item: neither raters nor items cluster, the intervals draw votes, and the
    results say so (the label was fixed to "rater x item" before)."""
    votes = pd.DataFrame([("r0", f"i{i}", "a" if i % 3 else "b") for i in range(6)],
                         columns=["token", "item_id", "choice"])
    assert vote_rates(votes, n_boot=50)["clustering"] == "vote"
    two = pd.concat([votes, votes.assign(token="r1")])
    assert vote_rates(two, n_boot=50)["clustering"] == "rater x item"
    assert vote_rates(votes.iloc[:1], n_boot=50)["clustering"] == "none"
