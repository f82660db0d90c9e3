"""Aggregation of a hand-made store: means, categories, overall, missing answers, CIs, paired tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import store_answers

from mibench.report.aggregate import aggregate, leaderboard, paired_difference
from mibench.report.uncertainty import bootstrap_p, resample, resampled_means
from mibench.store import Store
from mibench.suite.jobs import Job

MISSING = None
# model -> question -> per item (m1, m2, m3) the scores of runs 0 and 1 (None = unparseable answer)
SCORES = {
    "A": {"imaging_quality": [(8, 6), (9, MISSING), (5, 7)],
          "aesthetic_quality": [(6, 6), (7, 7), (MISSING, MISSING)],
          "overall_consistency": [(9, 9), (8, 8), (7, 7)],
          "style_alignment": [(5, 5), (6, 6), (7, 7)],
          "style_capture": [(4, 4), (5, 5), (9, 9)]},
    "B": {"imaging_quality": [(6,), (8,)],
          "aesthetic_quality": [(5,), (5,)],
          "overall_consistency": [(7,), (9,)],
          "style_alignment": [(4,), (6,)],
          "style_capture": [(3,), (7,)]},
}


def make_job(model: str, music: str, prompt: str = "a dancer on a rooftop", seed: int = 0) -> Job:
    return Job(model=model, suite="paper", music_id=music, music_path=None, prompt_id="p1", prompt=prompt,
               seed=seed, num_frames=49)


def answer(job: Job, question_id: str, run: int, score: float | None, *, judge: str = "judge",
           mode: str = "greedy") -> dict:
    return {"job_id": job.job_id, "judge": judge, "question_set": "paper", "question_id": question_id,
            "mode": mode, "run_index": run, "question": f"rate {question_id}",
            "raw": "I cannot tell" if score is None else str(score), "score": score,
            "distribution": None, "options": {"runs": 2}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("run") / "mibench.sqlite")
    jobs = {(m, music): make_job(m, music) for m in ("A", "B") for music in ("m1", "m2", "m3")}
    store.add_jobs(jobs.values())
    for job in jobs.values():
        store.record_video(job.job_id, f"videos/{job.model}/{job.job_id}.mp4", fingerprint="fp")
    rows = [answer(jobs[model, f"m{i + 1}"], qid, run, None if s is None else float(s))
            for model, questions in SCORES.items() for qid, items in questions.items()
            for i, runs in enumerate(items) for run, s in enumerate(runs)]
    rows.append(answer(jobs["A", "m1"], "imaging_quality", 0, 5.5, mode="expected"))
    rows.append(answer(jobs["A", "m1"], "imaging_quality", 0, 3.0, judge="other"))
    store_answers(store, rows)
    store.record_metrics(jobs["A", "m1"].job_id, "fp", {"bas": (0.2, {"fps": 30}, None)})
    store.record_metrics(jobs["A", "m2"].job_id, "fp", {"bas": (0.4, {"fps": 30}, None)})
    store.record_metrics(jobs["A", "m3"].job_id, "fp", {"bas": (None, {"fps": 30}, "no motion beats")})
    yield store
    store.close()


def scores_of(agg, model: str, *, judge: str = "judge", mode: str = "greedy"):
    s = agg.scores
    return s[(s["judge"] == judge) & (s["mode"] == mode) & (s["model"] == model)].set_index("key")


def test_means_categories_and_overall(store):
    agg = aggregate(store, seed=0, n_boot=500)
    a = scores_of(agg, "A")
    imaging = (7 + 9 + 6) / 3  # per video: mean over runs, the missing run skipped
    expected = {"imaging_quality": imaging, "aesthetic_quality": 6.5, "overall_consistency": 8.0,
                "style_alignment": 6.0, "style_capture": 6.0, "video_quality": (imaging + 6.5 + 8) / 3,
                "dance_quality": 6.0, "prompt_alignment": 6.0, "overall": (imaging + 6.5 + 8 + 6) / 4}
    for key, value in expected.items():
        assert a.at[key, "mean"] == pytest.approx(value), key
    b = scores_of(agg, "B")
    assert b.at["imaging_quality", "mean"] == pytest.approx(7.0)
    assert b.at["overall", "mean"] == pytest.approx((7 + 5 + 8 + 5) / 4)
    assert [c.key for c in agg.columns] == [
        "style_alignment", "imaging_quality", "aesthetic_quality", "overall_consistency", "style_capture",
        "dance_quality", "video_quality", "prompt_alignment", "overall"]


def test_missing_answers_are_counted_not_zero(store):
    agg = aggregate(store, seed=0, n_boot=200)
    a = scores_of(agg, "A")
    assert a.at["imaging_quality", "n_missing"] == 1
    assert a.at["imaging_quality", "n_videos"] == 3
    assert a.at["aesthetic_quality", "n_missing"] == 2
    assert a.at["aesthetic_quality", "n_videos"] == 2  # the video with only missing answers has no score
    assert a.at["video_quality", "n_missing"] == 3
    assert a.at["imaging_quality", "n_answers"] == 6
    row = leaderboard(agg).set_index(["judge", "mode", "model"]).loc[("judge", "greedy", "A")]
    assert row["n_missing"] == 3 and row["n_answers"] == 30
    assert row["aesthetic_quality_missing"] == 2 and row["aesthetic_quality"] == pytest.approx(6.5)


def test_partial_scores_and_separation_by_judge_and_mode(store):
    agg = aggregate(store, seed=0, n_boot=200)
    board = leaderboard(agg).set_index(["judge", "mode", "model"])
    assert board.loc[("judge", "greedy", "B"), "n_videos"] == 2
    assert board.loc[("judge", "greedy", "B"), "n_videos_done"] == 3
    assert scores_of(agg, "A", mode="expected").at["imaging_quality", "mean"] == 5.5
    assert scores_of(agg, "A", judge="other").at["imaging_quality", "mean"] == 3.0
    assert set(board.index) == {("judge", "greedy", "A"), ("judge", "greedy", "B"),
                                ("judge", "expected", "A"), ("other", "greedy", "A")}


def test_confidence_intervals_are_seeded(store):
    first = aggregate(store, seed=7, n_boot=400).scores
    again = aggregate(store, seed=7, n_boot=400).scores
    cols = ["ci_low", "ci_high"]
    assert np.array_equal(first[cols].to_numpy(), again[cols].to_numpy(), equal_nan=True)
    assert first["ci_low"].notna().sum() > 10
    units = pd.DataFrame({"music_id": ["m1", "m2", "m3"], "prompt_id": ["p1"] * 3})
    assert not np.array_equal(resample(units, 400, seed=7).weights, resample(units, 400, seed=8).weights)
    a = first[(first["model"] == "A") & (first["judge"] == "judge") & (first["mode"] == "greedy")].set_index("key")
    assert 6.0 <= a.at["imaging_quality", "ci_low"] <= a.at["imaging_quality", "mean"]
    assert a.at["imaging_quality", "mean"] <= a.at["imaging_quality", "ci_high"] <= 9.0
    single = scores_of(aggregate(store, seed=7, n_boot=400), "A", mode="expected")
    assert np.isnan(single.at["imaging_quality", "ci_low"])  # one video: no interval


def test_resampled_means_match_a_loop():
    values = np.array([[1.0, np.nan], [2.0, 4.0], [6.0, 8.0]])
    units = pd.DataFrame({"music_id": ["m1", "m2", "m3"], "prompt_id": ["p1"] * 3})
    weights = resample(units, 50, seed=3).weights
    assert np.array_equal(weights, resample(units, 50, seed=3).weights)
    assert np.all(weights.sum(axis=1) == 3)
    fast = resampled_means(values, weights)
    for b, w in enumerate(weights):
        repeated = np.repeat(values, w.astype(int), axis=0)
        for j in range(2):
            column = repeated[:, j][~np.isnan(repeated[:, j])]
            expected = column.mean() if column.size else np.nan
            assert np.isclose(fast[b, j], expected, equal_nan=True)


def test_paired_comparison_on_shared_items(store):
    agg = aggregate(store, seed=0, n_boot=300)
    comp = agg.comparisons
    comp = comp[(comp["judge"] == "judge") & (comp["mode"] == "greedy")].set_index("key")
    assert set(comp["model_a"]) == {"A"} and set(comp["model_b"]) == {"B"}
    imaging = comp.loc["imaging_quality"]
    assert imaging["n_pairs"] == 2 and imaging["mean_diff"] == pytest.approx(1.0)  # (7-6 + 9-8) / 2
    capture = comp.loc["style_capture"]  # A: 4, 5 vs B: 3, 7 on the shared items m1, m2
    assert capture["mean_diff"] == pytest.approx(((4 - 3) + (5 - 7)) / 2)
    assert 0.0 < capture["p_value"] <= 1.0 and capture["p_holm"] == capture["p_value"]  # one pair: no correction
    assert capture["clustering"] == "video"  # two items, two tracks, one prompt: each track holds one item
    # per video an overall score is the mean of its non-missing quality questions
    assert comp.loc["overall", "mean_diff"] == pytest.approx(((7 + 6 + 9 + 5) / 4 - (6 + 5 + 7 + 4) / 4
                                                              + (9 + 7 + 8 + 6) / 4 - (8 + 5 + 9 + 6) / 4) / 2)


def test_paired_difference_statistics():
    a = np.array([5.0, 6.0, 7.0, 8.0, 9.0, 6.5])
    b = np.array([4.0, 6.5, 5.0, 7.0, 7.5, 6.0])
    units = pd.DataFrame({"music_id": [f"m{i}" for i in range(6)], "prompt_id": "p"})
    result = paired_difference(pd.Series(a), pd.Series(b), units, n_boot=1000, seed=1)
    assert result["mean_diff"] == pytest.approx((a - b).mean())
    boot = resampled_means((a - b)[:, None], resample(units, 1000, seed=1).weights)[:, 0]
    assert result["p_value"] == bootstrap_p(boot) and result["p_value"] < 0.05
    assert result["ci_low"] < result["mean_diff"] < result["ci_high"]
    assert result == paired_difference(pd.Series(a), pd.Series(b), units, n_boot=1000, seed=1)
    same = paired_difference(pd.Series(a), pd.Series(a), units, n_boot=100, seed=1)
    assert same["mean_diff"] == 0 and same["p_value"] == 1.0


def test_objective_metrics_join_as_columns(store):
    agg = aggregate(store, seed=0, n_boot=200)
    obj = agg.objective.set_index(["model", "key"]).loc[("A", "bas")]
    assert obj["mean"] == pytest.approx(0.3) and obj["n_missing"] == 1 and obj["n_videos"] == 2
    board = leaderboard(agg).set_index(["judge", "mode", "model"])
    assert board.loc[("judge", "greedy", "A"), "objective.bas"] == pytest.approx(0.3)
    assert board.loc[("judge", "greedy", "A"), "objective.bas_missing"] == 1
    assert np.isnan(board.loc[("judge", "greedy", "B"), "objective.bas"])


def test_empty_store(tmp_path):
    store = Store(tmp_path / "mibench.sqlite")
    agg = aggregate(store)
    assert agg.empty and agg.columns == [] and leaderboard(agg).empty
    store.close()


def test_objective_metrics_without_judge_answers(tmp_path):
    store = Store(tmp_path / "mibench.sqlite")
    job = make_job("A", "m1")
    store.add_jobs([job])
    store.record_video(job.job_id, "v.mp4", fingerprint="fp")
    store.record_metrics(job.job_id, "fp", {"bas": (0.5, {}, None)})
    agg = aggregate(store)
    store.close()
    row = leaderboard(agg).iloc[0]
    assert not agg.empty and agg.scores.empty
    assert (row["judge"], row["model"], row["n_videos"], row["n_videos_done"]) == ("", "A", 0, 1)
    assert row["objective.bas"] == 0.5 and np.isnan(row["objective.bas_ci_low"])
