"""Cross-judge agreement on hand-made stores: rank correlations over models and videos, pairwise model
orderings, verdicts, clustered bootstrap intervals, and the judge groups compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import store_answers
from scipy import stats

from mibench.report.aggregate import aggregate
from mibench.report.agreement import (
    AGREEMENT_FIELDS,
    agreement,
    compare,
    weighted_kendall,
    weighted_spearman,
)
from mibench.store import Store
from mibench.suite.jobs import Job

TRACKS = [f"m{i}" for i in range(4)]
PROMPTS = [f"p{i}" for i in range(3)]
QUESTIONS = ("imaging_quality", "aesthetic_quality")  # Video Quality: columns 2 questions, the category, overall
BASE = {"A": 8.0, "B": 6.0, "C": 4.0, "D": 2.0}


def jitter(model: str, track: int, prompt: int, question: int) -> float:
    """A small per-video deviation (|.| < 0.5: the models' score ranges never overlap)."""
    return 0.1 * ((3 * track + 2 * prompt + question + ord(model)) % 7 - 3)


def make_store(path, judges: dict, models=tuple(BASE)) -> Store:
    """A store with one video per (model, track, prompt) and answers of every judge evaluation:
    `judges` maps (judge, mode) or (judge, mode, evaluation id) -> score(model, track index, prompt index,
    question index) (None: no answer)."""
    store = Store(path / "mibench.sqlite")
    rows = []
    for model in models:
        jobs = {(t, p): Job(model=model, suite="paper", music_id=m, music_path=None, prompt_id=pr,
                            prompt=f"prompt {pr}", seed=0, num_frames=49)
                for t, m in enumerate(TRACKS) for p, pr in enumerate(PROMPTS)}
        store.add_jobs(jobs.values())
        for (t, p), job in jobs.items():
            store.record_video(job.job_id, f"v/{job.job_id}.mp4", fingerprint="fp")
            for (judge, mode, *evaluation), score_of in judges.items():
                for q, qid in enumerate(QUESTIONS):
                    score = score_of(model, t, p, q)
                    if score is not None:
                        rows.append({"job_id": job.job_id, "judge": judge, "question_set": "paper",
                                     "question_id": qid, "mode": mode, "run_index": 0, "question": "q",
                                     "raw": str(score), "score": float(score), "distribution": None, "options": {},
                                     "evaluation": evaluation[0] if evaluation else None})
    store_answers(store, rows)
    return store


def ranked(model: str, track: int, prompt: int, question: int) -> float:
    """A judge that ranks the models A > B > C > D on every video."""
    return BASE[model] + jitter(model, track, prompt, question)


def rows_of(table: pd.DataFrame, key: str = "overall") -> pd.Series:
    found = table[table["key"] == key]
    assert len(found) == 1
    return found.iloc[0]


def run(tmp_path, judges, **kwargs) -> pd.DataFrame:
    store = make_store(tmp_path, judges, **kwargs)
    agg = aggregate(store, seed=0, n_boot=200)
    store.close()
    return agreement(agg)


def test_identical_rankings_under_a_monotone_transform(tmp_path):
    table = run(tmp_path, {("videollama2", "greedy"): ranked,
                           ("qwen2.5-omni", "greedy"): lambda *v: ranked(*v) ** 2 / 10})
    assert list(table.columns) == AGREEMENT_FIELDS
    assert set(table["key"]) == {*QUESTIONS, "video_quality", "overall"}
    for _, row in table.iterrows():
        assert (row["judge_a"], row["judge_b"]) == ("qwen2.5-omni", "videollama2")
        assert row["spearman_models"] == pytest.approx(1) and row["kendall_models"] == pytest.approx(1)
        assert row["spearman_videos"] == pytest.approx(1) and row["kendall_videos"] == pytest.approx(1)
        assert (row["n_models"], row["n_videos"], row["n_pairs"], row["n_agreeing"]) == (4, 48, 6, 6)
        assert row["pair_agreement"] == 1 and row["disagreeing_pairs"] == []
        assert row["verdict"] == "same ranking" and row["ranking_a"] == row["ranking_b"] == "A > B > C > D"
        assert row["clustering"] == "music track x prompt" and row["note"] == ""


def test_reversed_ranking(tmp_path):
    table = run(tmp_path, {("j1", "greedy"): ranked, ("j2", "greedy"): lambda *v: 10 - ranked(*v)})
    row = rows_of(table)
    assert row["spearman_models"] == pytest.approx(-1) and row["kendall_models"] == pytest.approx(-1)
    assert row["spearman_videos"] == pytest.approx(-1)
    assert row["n_agreeing"] == 0 and row["pair_agreement"] == 0 and len(row["disagreeing_pairs"]) == 6
    assert row["ranking_b"] == "D > C > B > A"
    assert row["verdict"] == "judges disagree on the ranking: A and B swap; A and C swap; A and D swap; 3 more pairs"


def test_one_adjacent_swap_among_four_models(tmp_path):
    swapped = {"A": 8.0, "B": 4.0, "C": 6.0, "D": 2.0}
    table = run(tmp_path, {("j1", "greedy"): ranked,
                           ("j2", "greedy"): lambda m, t, p, q: swapped[m] - jitter(m, p, t, q)})
    for _, row in table.iterrows():
        assert row["kendall_models"] == pytest.approx((5 - 1) / 6)  # one discordant pair of 6
        assert row["spearman_models"] == pytest.approx(1 - 6 * 2 / (4 * 15))  # rank differences 0, 1, 1, 0
        assert row["n_agreeing"] == 5 and row["pair_agreement"] == pytest.approx(5 / 6)
        assert row["disagreeing_pairs"] == [("B", "C")]
        assert row["verdict"] == "judges disagree on the ranking: B and C swap"
        assert (row["ranking_a"], row["ranking_b"]) == ("A > B > C > D", "A > C > B > D")


def test_ties_disagree_unless_both_tie(tmp_path):
    tied = {"A": 8.0, "B": 5.0, "C": 5.0, "D": 2.0}
    table = run(tmp_path, {("j1", "greedy"): lambda m, *_: BASE[m], ("j2", "greedy"): lambda m, *_: tied[m]})
    row = rows_of(table)
    assert row["disagreeing_pairs"] == [("B", "C")] and row["ranking_b"] == "A > B = C > D"
    assert row["verdict"] == "judges disagree on the ranking: B and C tie under j2 (greedy) only"
    both = run(tmp_path / "both", {("j1", "greedy"): lambda m, *_: tied[m], ("j2", "greedy"): lambda m, *_: tied[m]})
    assert rows_of(both)["verdict"] == "same ranking" and rows_of(both)["pair_agreement"] == 1


def per_video_table(agg, judge: str) -> pd.DataFrame:
    part = agg.per_video[agg.per_video["judge"] == judge]
    wide = part.pivot(index="job_id", columns="question_id", values="score")
    wide["overall"] = wide[list(QUESTIONS)].mean(axis=1, skipna=False)  # only videos with every question
    return wide


def test_video_correlations_equal_scipy(tmp_path):
    rng = np.random.default_rng(3)
    truth = {(m, t, p, q): BASE[m] + rng.normal(0, 2) for m in BASE for t in range(4) for p in range(3)
             for q in range(2)}
    noisy = {key: value + rng.normal(0, 2) for key, value in truth.items()}
    store = make_store(tmp_path, {("j1", "greedy"): lambda *v: round(truth[v]),  # integer answers: ties
                                  ("j2", "greedy"): lambda *v: None if v[1:] == (0, 0, 1) else round(noisy[v])})
    agg = aggregate(store, seed=0, n_boot=200)
    store.close()
    table = agreement(agg)
    a, b = per_video_table(agg, "j1"), per_video_table(agg, "j2")
    for key in ("imaging_quality", "aesthetic_quality", "overall"):
        both = pd.concat([a[key], b[key]], axis=1, keys=["a", "b"]).dropna()
        row = rows_of(table, key)
        assert row["n_videos"] == len(both) == (48 if key == "imaging_quality" else 44)
        assert row["spearman_videos"] == pytest.approx(stats.spearmanr(both["a"], both["b"]).statistic)
        assert row["kendall_videos"] == pytest.approx(stats.kendalltau(both["a"], both["b"]).statistic)


def test_weighted_correlations_equal_scipy_on_the_written_out_resample():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 30).astype(float), rng.integers(0, 5, 30).astype(float)
    weights = rng.integers(0, 4, size=(5, 30)).astype(float)
    for w, rho, tau in zip(weights, weighted_spearman(a, b, weights), weighted_kendall(a, b, weights), strict=True):
        xa, xb = np.repeat(a, w.astype(int)), np.repeat(b, w.astype(int))
        assert rho == pytest.approx(stats.spearmanr(xa, xb).statistic)
        assert tau == pytest.approx(stats.kendalltau(xa, xb).statistic)


def test_intervals_contain_the_estimate_and_follow_the_seed(tmp_path):
    rng = np.random.default_rng(7)
    noise = {(m, t, p, q): rng.normal(0, 1.5) for m in BASE for t in range(4) for p in range(3) for q in range(2)}
    store = make_store(tmp_path, {("j1", "greedy"): ranked,
                                  ("j2", "greedy"): lambda *v: BASE[v[0]] + noise[v]})
    agg = aggregate(store, seed=0, n_boot=300)
    store.close()
    table = agreement(agg)
    for stat in ("spearman_models", "kendall_models", "spearman_videos", "kendall_videos", "pair_agreement"):
        assert (table[f"{stat}_ci_low"] <= table[stat] + 1e-12).all(), stat
        assert (table[stat] <= table[f"{stat}_ci_high"] + 1e-12).all(), stat
    assert (table["spearman_videos_ci_low"] < table["spearman_videos_ci_high"]).all()
    pd.testing.assert_frame_equal(table, agreement(agg))
    pd.testing.assert_frame_equal(agreement(agg, n_boot=100, seed=4), agreement(agg, n_boot=100, seed=4))
    other = agreement(agg, n_boot=100, seed=5)
    assert not np.allclose(other["spearman_videos_ci_low"], table["spearman_videos_ci_low"])
    assert other["spearman_videos"].tolist() == table["spearman_videos"].tolist()


def test_fewer_than_three_models_and_a_single_judge(tmp_path):
    table = run(tmp_path, {("j1", "greedy"): ranked, ("j2", "greedy"): lambda *v: 10 - ranked(*v)}, models=("A", "B"))
    row = rows_of(table)
    assert row["n_models"] == 2 and np.isnan(row["spearman_models"]) and np.isnan(row["kendall_models"])
    assert np.isnan(row["spearman_models_ci_low"]) and "fewer than 3 models" in row["note"]
    assert row["n_pairs"] == 1 and row["pair_agreement"] == 0 and row["verdict"].endswith("A and B swap")
    assert row["spearman_videos"] == pytest.approx(-1)
    single = run(tmp_path / "single", {("j1", "greedy"): ranked})
    assert single.empty and list(single.columns) == AGREEMENT_FIELDS


def test_modes_and_evaluations_are_separate_groups(tmp_path):
    table = run(tmp_path, {("videollama2", "greedy"): ranked, ("videollama2", "expected"): ranked})
    assert set(zip(table["judge_a"], table["mode_a"], table["judge_b"], table["mode_b"], strict=True)) == {
        ("videollama2", "expected", "videollama2", "greedy")}
    assert (table["verdict"] == "same ranking").all()
    evaluations = run(tmp_path / "evals", {("videollama2", "greedy", "1a2b3c4d-x"): ranked,
                                           ("videollama2", "greedy", "9f8e7d6c-y"): lambda *v: 10 - ranked(*v)})
    row = rows_of(evaluations)  # two evaluations of one judge and mode: two groups, labelled apart
    assert (row["judge_a"], row["judge_b"]) == ("videollama2 @1a2b3c4d", "videollama2 @9f8e7d6c")
    assert row["verdict"].startswith("judges disagree on the ranking: A and B swap")


def test_compare_on_a_full_suite():
    """10 models x 100 videos, 1000 resamples (its speed is measured by `mibench bench`, not here)."""
    rng = np.random.default_rng(0)
    videos = pd.DataFrame([(f"M{i}", f"t{t}", f"p{p}") for i in range(10) for t in range(10) for p in range(10)],
                          columns=["model", "music_id", "prompt_id"])
    a, b = rng.integers(0, 11, 1000).astype(float), rng.integers(0, 11, 1000).astype(float)
    row = compare(a, b, videos, 1000, 0)
    assert row["n_models"] == 10 and row["n_videos"] == 1000 and row["n_pairs"] == 45


def test_models_are_ranked_by_the_boards_scores(tmp_path):
    """A model whose high-scoring question is often unanswered: the board's score is the mean of its
    questions' means, and agreement ranks the models by that score, not by per-video means."""
    means = {"A": (5.0, 9.0), "B": (6.0, 7.0), "C": (6.3, 6.3)}  # (imaging, aesthetic): A 7 > B 6.5 > C 6.3

    def partial(model, track, prompt, question):
        return None if (model, question) == ("B", 1) and prompt != 0 else means[model][question]

    store = make_store(tmp_path, {("j1", "greedy"): partial, ("j2", "greedy"): lambda m, t, p, q: means[m][q]},
                       models=tuple(means))
    agg = aggregate(store, seed=0, n_boot=100)
    store.close()
    board = agg.scores[(agg.scores["judge"] == "j1") & (agg.scores["key"] == "overall")].set_index("model")["mean"]
    assert board.to_dict() == pytest.approx({"A": 7.0, "B": 6.5, "C": 6.3})
    table = agreement(agg)
    row = rows_of(table)
    assert row["ranking_a"] == row["ranking_b"] == "A > B > C" and row["verdict"] == "same ranking"
    assert row["n_models"] == 3 and row["kendall_models"] == pytest.approx(1)
    # per-video correlation of a category: only videos both judges scored on every member question
    assert row["n_videos"] == 12 + 4 + 12 and rows_of(table, "imaging_quality")["n_videos"] == 36


def test_a_partly_scored_judge_is_compared_on_the_shared_videos_and_says_so(tmp_path):
    table = run(tmp_path, {("j1", "greedy"): ranked,
                           ("j2", "greedy"): lambda m, t, p, q: ranked(m, t, p, q) if t < 2 else None})
    row = rows_of(table)
    assert row["n_videos"] == 4 * 2 * 3 and row["verdict"] == "same ranking"
    assert row["note"] == "over the 24 videos both judges scored (48 and 24 scored by each; the board's means " \
                          "use each judge's own)"
