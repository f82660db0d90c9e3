"""Honest uncertainty: the clustered bootstrap (intervals that cover where the naive ones do not), the
Holm correction, bootstrap p-values, and expected-mode answers with little valid mass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import store_answers

from mibench.report.aggregate import aggregate, leaderboard
from mibench.report.uncertainty import (
    bootstrap_p,
    clustering_factors,
    holm,
    percentile_ci,
    resample,
    resampled_means,
)
from mibench.store import Store
from mibench.suite.jobs import Job

TRACKS = [f"m{i}" for i in range(10)]
PROMPTS = [f"p{i}" for i in range(10)]


def paper_design() -> pd.DataFrame:
    """The paper's suite: 10 tracks x 10 prompts, one video each."""
    return pd.DataFrame([(m, p) for m in TRACKS for p in PROMPTS], columns=["music_id", "prompt_id"])


def test_clustering_factors_follow_the_design():
    crossed = paper_design()
    assert clustering_factors(crossed) == ("music_id", "prompt_id")
    assert resample(crossed, 10, 0).clustering == "music track x prompt"
    one_prompt = crossed[crossed["prompt_id"] == "p0"]  # every track once: the tracks are the units
    assert clustering_factors(one_prompt) == () and resample(one_prompt, 10, 0).clustering == "video"
    aist = pd.DataFrame({"music_id": TRACKS * 3, "prompt_id": "base"})  # 3 seeds per track, one caption
    assert clustering_factors(aist) == ("music_id",)
    weights = resample(aist, 50, 1).weights
    assert np.array_equal(weights[:, :10], weights[:, 10:20])  # a track's videos are drawn together
    assert np.all(weights.sum(axis=1) == 30)


def test_two_way_weights_are_products_of_track_and_prompt_draws():
    design = paper_design()
    weights = resample(design, 20, 3).weights.reshape(20, 10, 10)
    for w in weights:  # rank one: w[m, p] = tracks[m] * prompts[p]
        assert np.linalg.matrix_rank(w) == 1
        assert w.sum(axis=1).sum() == pytest.approx(w.sum())
        tracks, prompts = w.sum(axis=1), w.sum(axis=0)
        assert np.allclose(np.outer(tracks, prompts) / w.sum(), w)


def test_clustered_intervals_cover_where_naive_ones_do_not():
    """Scores driven by the music track (as a judge that likes some tracks): over many simulated suites
    the naive 95% bootstrap interval misses the true mean most of the time, the clustered one rarely."""
    rng = np.random.default_rng(0)
    design = paper_design()
    codes = pd.factorize(design["music_id"], sort=True)[0]
    covered = {"clustered": 0, "naive": 0}
    widths = {"clustered": [], "naive": []}
    trials = 150
    for trial in range(trials):
        track_effect = rng.normal(0.0, 1.0, size=10)
        scores = 5.0 + track_effect[codes] + rng.normal(0.0, 0.3, size=100)
        for name, clustered in (("clustered", True), ("naive", False)):
            draws = resample(design, 400, trial, clustered=clustered)
            low, high = percentile_ci(resampled_means(scores[:, None], draws.weights)[:, 0])
            covered[name] += low <= 5.0 <= high
            widths[name].append(high - low)
    assert covered["naive"] / trials < 0.6
    assert covered["clustered"] / trials > 0.85
    assert np.median(widths["clustered"]) > 2.5 * np.median(widths["naive"])


def _store_with_track_effect(path, models=("A",), n_runs: int = 1) -> Store:
    store = Store(path / "mibench.sqlite")
    rng = np.random.default_rng(5)
    effect = dict(zip(TRACKS, rng.normal(0.0, 1.5, size=10), strict=True))
    rows = []
    for model_index, model in enumerate(models):
        jobs = [Job(model=model, suite="paper", music_id=m, music_path=None, prompt_id=p, prompt=f"prompt {p}",
                    seed=0, num_frames=49) for m in TRACKS for p in PROMPTS]
        store.add_jobs(jobs)
        for job in jobs:
            store.record_video(job.job_id, f"v/{job.job_id}.mp4", fingerprint="fp")
            score = float(np.clip(5 + model_index + effect[job.music_id] + rng.normal(0, 0.2), 0, 10))
            rows += [{"job_id": job.job_id, "judge": "judge", "question_set": "paper",
                      "question_id": "imaging_quality", "mode": "greedy", "run_index": r, "question": "q",
                      "raw": str(score), "score": score, "distribution": None, "options": {}} for r in range(n_runs)]
    store_answers(store, rows)
    return store


def test_report_intervals_are_clustered_by_track_and_prompt(tmp_path):
    store = _store_with_track_effect(tmp_path)
    agg = aggregate(store, seed=0, n_boot=1000)
    row = agg.scores.set_index("key").loc["imaging_quality"]
    assert row["clustering"] == "music track x prompt"
    per_video = agg.per_video.set_index("job_id")["score"].to_numpy()
    naive = percentile_ci(resampled_means(per_video[:, None],
                                          resample(paper_design(), 1000, 0, clustered=False).weights)[:, 0])
    track_means = agg.per_video.groupby("music_id")["score"].mean().to_numpy()
    expected_half_width = 1.96 * track_means.std(ddof=1) / np.sqrt(10)
    half_width = (row["ci_high"] - row["ci_low"]) / 2
    assert half_width > 2.5 * (naive[1] - naive[0]) / 2  # the naive interval is visibly too narrow
    assert half_width == pytest.approx(expected_half_width, rel=0.3)
    assert leaderboard(agg).iloc[0]["clustering"] == "music track x prompt"
    store.close()


def test_holm_adjustment_of_a_known_family():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.02, float("nan"), 0.01])
    assert np.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_bootstrap_p_value():
    assert bootstrap_p(np.full(999, 0.5)) == pytest.approx(2 / 1000)
    assert bootstrap_p(np.linspace(-1, 1, 1001)) == pytest.approx(1.0)
    assert bootstrap_p(np.concatenate([np.full(900, 1.0), np.full(100, -1.0)])) == pytest.approx(2 * 101 / 1001)


def test_bootstrap_p_is_never_below_what_n_pairs_can_show():
    one_sided = np.full(999, 0.5)  # every resample on one side of 0
    assert bootstrap_p(one_sided) == pytest.approx(2 / 1000)
    assert bootstrap_p(one_sided, n=2) == 0.5  # a sign-flip test over 2 pairs: p >= 2 / 2^2
    assert bootstrap_p(one_sided, n=5) == 2.0 ** -4
    assert bootstrap_p(one_sided, n=1) == 1.0
    assert bootstrap_p(one_sided, n=30) == pytest.approx(2 / 1000)  # below the data's own p: no change
    assert np.isnan(bootstrap_p(np.full(10, np.nan), n=3))


def test_paired_comparisons_are_holm_corrected_per_metric(tmp_path):
    store = _store_with_track_effect(tmp_path, models=("A", "B", "C"))
    agg = aggregate(store, seed=0, n_boot=500)
    family = agg.comparisons[agg.comparisons["key"] == "imaging_quality"]
    assert len(family) == 3 and set(family["clustering"]) == {"music track x prompt"}
    assert family["p_holm"].tolist() == pytest.approx(holm(family["p_value"].tolist()))
    assert (family["p_holm"] >= family["p_value"]).all()
    b_minus_a = family[(family["model_a"] == "A") & (family["model_b"] == "B")].iloc[0]
    assert b_minus_a["mean_diff"] == pytest.approx(-1.0, abs=0.1)  # paired: the track effect cancels
    assert b_minus_a["p_holm"] < 0.05
    store.close()


def test_low_valid_mass_is_flagged_and_optionally_excluded(tmp_path):
    store = Store(tmp_path / "mibench.sqlite")
    jobs = [Job(model="A", suite="aist", music_id=m, music_path=None, prompt_id="base", prompt="p", seed=0,
                num_frames=49) for m in TRACKS[:4]]
    store.add_jobs(jobs)
    masses = [0.9, 0.95, 0.2, None]  # the last answer predates valid-mass recording
    scores = [8.0, 6.0, 1.0, 5.0]
    store_answers(store, [{"job_id": job.job_id, "judge": "judge", "question_set": "paper",
                           "question_id": "imaging_quality", "mode": "expected", "run_index": 0, "question": "q",
                           "raw": "", "score": score, "distribution": None, "valid_mass": mass, "options": {}}
                          for job, mass, score in zip(jobs, masses, scores, strict=True)])
    flagged = aggregate(store, n_boot=50)
    mass = flagged.valid_mass.iloc[0]
    assert (mass["n_answers"], mass["n_measured"], mass["n_below"], mass["excluded"]) == (4, 3, 1, False)
    assert mass["median"] == pytest.approx(0.9) and mass["min"] == pytest.approx(0.2)
    assert flagged.scores.set_index("key").at["imaging_quality", "mean"] == pytest.approx(5.0)
    excluded = aggregate(store, n_boot=50, min_valid_mass=0.5)
    row = excluded.scores.set_index("key").loc["imaging_quality"]
    assert row["mean"] == pytest.approx((8 + 6 + 5) / 3) and row["n_missing"] == 1
    assert excluded.valid_mass.iloc[0]["excluded"] and excluded.valid_mass.iloc[0]["threshold"] == 0.5
    assert leaderboard(excluded).iloc[0]["n_low_mass"] == 1
    store.close()
