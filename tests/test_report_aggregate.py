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
    # overall: per quality question the mean difference over the shared items, then the mean over questions
    # (imaging, aesthetic, overall consistency, style alignment)
    per_question = [((7 - 6) + (9 - 8)) / 2, ((6 - 5) + (7 - 5)) / 2, ((9 - 7) + (8 - 9)) / 2, ((5 - 4) + (6 - 6)) / 2]
    assert comp.loc["overall", "mean_diff"] == pytest.approx(np.mean(per_question))


def test_paired_difference_statistics():
    a = np.array([5.0, 6.0, 7.0, 8.0, 9.0, 6.5])
    b = np.array([4.0, 6.5, 5.0, 7.0, 7.5, 6.0])
    units = pd.DataFrame({"music_id": [f"m{i}" for i in range(6)], "prompt_id": "p"})
    result = paired_difference(pd.Series(a), pd.Series(b), units, n_boot=1000, seed=1)
    assert result["mean_diff"] == pytest.approx((a - b).mean())
    boot = resampled_means((a - b)[:, None], resample(units, 1000, seed=1).weights)[:, 0]
    assert bootstrap_p(boot) < 2.0 ** -5  # the resamples alone claim more than 6 items can show
    assert result["p_value"] == bootstrap_p(boot, n=6) == 2.0 ** -5 and result["p_value"] < 0.05
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


def design_store(path, spec: dict, tracks=("m0", "m1", "m2"), prompts=("p0", "p1", "p2"),
                 tags=None) -> Store:
    """One video per (model, track, prompt); `spec` maps (model, judge) -> score(question id, track, prompt)
    (None: an unparseable answer; "skip": no answer); `tags` maps a prompt to its tags."""
    store = Store(path / "mibench.sqlite")
    rows = []
    for model in dict.fromkeys(m for m, _ in spec):
        jobs = [Job(model=model, suite="paper", music_id=m, music_path=None, prompt_id=p, prompt=f"prompt {p}",
                    seed=0, num_frames=49, tags=(tags or {}).get(p, {})) for m in tracks for p in prompts]
        store.add_jobs(jobs)
        for job in jobs:
            store.record_video(job.job_id, f"v/{job.job_id}.mp4", fingerprint="fp")
    for job in store.jobs():
        for (model, judge), score_of in spec.items():
            if job["model"] != model:
                continue
            for qid in ("imaging_quality", "aesthetic_quality"):
                score = score_of(qid, job["music_id"], job["prompt_id"])
                if score != "skip":
                    rows.append({"job_id": job["job_id"], "judge": judge, "question_set": "paper",
                                 "question_id": qid, "mode": "greedy", "run_index": 0, "question": "q",
                                 "raw": str(score), "score": score, "distribution": None, "options": {}})
    store_answers(store, rows)
    return store


def imaging_5_aesthetic_9(qid: str, track: str, prompt: str) -> float:
    return 5.0 if qid == "imaging_quality" else 9.0


def aesthetic_on_p0_only(qid: str, track: str, prompt: str) -> float | None:
    """Like `imaging_5_aesthetic_9`, but the aesthetic answer is unparseable except on prompt p0."""
    return 5.0 if qid == "imaging_quality" else (9.0 if prompt == "p0" else None)


def test_comparisons_follow_the_boards_category_definition(tmp_path):
    """With answers missing, a category's paired difference is the mean of its questions' differences
    (the board's definition), not the difference of per-video means of whatever questions were answered."""
    store = design_store(tmp_path, {("A", "j"): imaging_5_aesthetic_9, ("B", "j"): aesthetic_on_p0_only,
                                    ("C", "j"): lambda qid, *_: 6.0 if qid == "imaging_quality" else None})
    agg = aggregate(store, seed=0, n_boot=200)
    store.close()
    board = agg.scores.set_index(["model", "key"])["mean"]
    assert board["A", "overall"] == board["B", "overall"] == 7.0  # (5 + 9) / 2 for both models
    comp = agg.comparisons.set_index(["model_a", "model_b", "key"])
    overall = comp.loc[("A", "B", "overall")]
    assert overall["mean_diff"] == 0.0 == board["A", "overall"] - board["B", "overall"]
    assert overall["n_pairs"] == 9 and comp.loc[("A", "B", "aesthetic_quality"), "n_pairs"] == 3
    assert overall["ci_low"] == overall["ci_high"] == 0.0 and overall["p_value"] == 1.0
    # C has no aesthetic score at all: no category difference with it, only the imaging one
    assert ("A", "C", "overall") not in comp.index and ("A", "C", "video_quality") not in comp.index
    assert comp.loc[("A", "C", "imaging_quality"), "mean_diff"] == -1.0


def test_slices_follow_the_boards_category_definition(tmp_path):
    tags = {"p0": {"dancer": "male"}, "p1": {"dancer": "male"}, "p2": {"dancer": "female"}}
    store = design_store(tmp_path, {("A", "j"): imaging_5_aesthetic_9, ("B", "j"): aesthetic_on_p0_only},
                         tags=tags)
    agg = aggregate(store, seed=0, n_boot=200)
    store.close()
    slices = agg.slices.set_index(["axis", "value", "model"])
    male = slices.loc[("dancer", "male", "B")]
    assert male["mean"] == 7.0  # imaging 5 on the 6 videos, aesthetic 9 on the 3 that have it
    assert male["n_videos"] == 6 and male["ci_low"] == male["ci_high"] == 7.0
    female = slices.loc[("dancer", "female", "B")]  # no aesthetic score there: undefined, as on the board
    assert np.isnan(female["mean"]) and np.isnan(female["ci_low"]) and female["n_videos"] == 3
    assert slices.loc[("dancer", "female", "A"), "mean"] == 7.0


def test_no_interval_without_two_videos_on_every_member_question(tmp_path):
    store = design_store(tmp_path, {("A", "j"): lambda qid, track, prompt: (
        {"m0": 3.0, "m1": 6.0, "m2": 8.0}[track] if qid == "imaging_quality"
        else (7.0 if (track, prompt) == ("m0", "p0") else None))})
    agg = aggregate(store, seed=0, n_boot=200)
    store.close()
    a = agg.scores.set_index("key")
    assert a.at["imaging_quality", "ci_low"] < a.at["imaging_quality", "ci_high"]
    assert a.at["aesthetic_quality", "n_videos"] == 1 and np.isnan(a.at["aesthetic_quality", "ci_low"])
    for key in ("video_quality", "overall"):  # one member scored on a single video: no interval
        assert a.at[key, "mean"] == pytest.approx((17 / 3 + 7) / 2)
        assert np.isnan(a.at[key, "ci_low"]) and np.isnan(a.at[key, "ci_high"]), key


def test_a_single_pair_has_no_p_value_and_stays_out_of_holm(tmp_path):
    tracks = [f"m{i}" for i in range(6)]
    store = design_store(tmp_path, {
        ("A", "j"): lambda qid, track, prompt: 5.0 + 0.1 * int(track[1:]),
        ("B", "j"): lambda qid, track, prompt: 6.0 + 0.1 * int(track[1:]) ** 2 / 5,
        ("C", "j"): lambda qid, track, prompt: 1.0 if track == "m0" else "skip",  # one item scored
        ("D", "j"): lambda qid, track, prompt: 9.0 if track in ("m0", "m1") else "skip"},  # two items
        tracks=tracks, prompts=("p0",))
    agg = aggregate(store, seed=0, n_boot=500)
    store.close()
    comp = agg.comparisons[agg.comparisons["key"] == "imaging_quality"].set_index(["model_a", "model_b"])
    for pair in (("A", "C"), ("B", "C"), ("C", "D")):
        assert comp.loc[pair, "n_pairs"] == 1
        assert np.isnan(comp.loc[pair, "p_value"]) and np.isnan(comp.loc[pair, "p_holm"]), pair
    defined = comp["p_value"].dropna()
    assert comp.loc[("A", "B"), "p_holm"] == pytest.approx(min(1.0, 3 * comp.loc[("A", "B"), "p_value"]))
    assert len(defined) == 3  # A-B, A-D, B-D: the Holm family
    assert comp.loc[("A", "D"), "n_pairs"] == 2 and comp.loc[("A", "D"), "p_value"] >= 0.5  # 2 units: p >= 2^-1
    assert comp.loc[("A", "B"), "p_value"] == 2.0 ** -5  # 6 tracks, one prompt: 6 units, p >= 2^-5


def test_models_with_objective_metrics_only_keep_their_rows(tmp_path):
    store = design_store(tmp_path, {("A", "j"): imaging_5_aesthetic_9, ("GT", "j"): lambda *_: "skip"})
    for job in store.jobs():
        value = 0.9 if job["model"] == "GT" else 0.5
        store.record_metrics(job["job_id"], "fp", {"frame_consistency": (value, {}, None)})
    agg = aggregate(store, seed=0, n_boot=50)
    store.close()
    board = leaderboard(agg)
    assert board["model"].tolist() == ["A", "GT"]
    gt = board.set_index("model").loc["GT"]
    assert (gt["judge"], gt["mode"], gt["clustering"]) == ("", "", "")
    assert (gt["n_videos"], gt["n_answers"], gt["n_missing"], gt["n_low_mass"], gt["n_videos_done"]) == (0, 0, 0, 0, 9)
    assert gt["objective.frame_consistency"] == pytest.approx(0.9) and np.isnan(gt["overall"])
    assert board.set_index("model").at["A", "objective.frame_consistency"] == pytest.approx(0.5)
