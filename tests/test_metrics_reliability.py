"""Judge reliability helpers on small hand-computed tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mibench.metrics.reliability import correlation, icc1, metric_correlation, mode_agreement, run_agreement

ANSWER_COLUMNS = ["job_id", "judge", "question_id", "mode", "run_index", "score"]


def _answers(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def test_icc1_by_hand():
    # item means 1.5, 3.5, 5.5 (grand 3.5): MSB = 2 * 8 / 2 = 8, MSW = 6 * 0.25 / 3 = 0.5
    assert icc1(np.array([[1, 2], [3, 4], [5, 6]])) == pytest.approx((8 - 0.5) / (8 + 0.5))
    assert icc1(np.array([[7, 7], [8, 8], [9, 9]])) == pytest.approx(1.0)
    assert math.isnan(icc1(np.array([[5, 5], [5, 5]])))
    assert math.isnan(icc1(np.array([[1, 2]])))


def test_correlation():
    assert correlation([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert correlation([2, 4, 6], [0.1, 0.3, 0.2], "pearson") == pytest.approx(0.5)
    assert math.isnan(correlation([1, 2], [1, 2]))
    assert math.isnan(correlation([1, 1, 1], [1, 2, 3]))


def test_run_agreement():
    rows = [(f"j{i}", "vl", "beat_alignment", "greedy", run, score)
            for i, scores in enumerate([(1, 2), (3, 4), (5, 6)]) for run, score in enumerate(scores)]
    rows += [("j3", "vl", "beat_alignment", "greedy", 0, 9), ("j3", "vl", "beat_alignment", "greedy", 1, None)]
    rows += [(f"j{i}", "vl", "dance_quality", "greedy", run, 7 + i) for i in range(3) for run in (0, 1)]
    table = run_agreement(_answers(rows)).set_index("question_id")
    beat = table.loc["beat_alignment"]
    assert (beat["videos"], beat["runs"]) == (3, 2)  # j3 has a missing second run
    assert beat["icc"] == pytest.approx(7.5 / 8.5)
    assert beat["spearman"] == pytest.approx(1.0)
    assert beat["sd"] == pytest.approx(math.sqrt(0.5))
    assert beat["exact"] == 0.0
    quality = table.loc["dance_quality"]
    assert (quality["icc"], quality["sd"], quality["exact"]) == (pytest.approx(1.0), 0.0, 1.0)
    empty = run_agreement(_answers([]))
    assert empty.empty and "icc" in empty.columns


def test_metric_correlation_per_model():
    ratings = [("a1", 2), ("a2", 4), ("a3", 6), ("b1", 3), ("b2", None)]
    answers = _answers([(job, "vl", "beat_alignment", "greedy", 0, s) for job, s in ratings]
                       + [("a1", "vl", "beat_alignment", "expected", 0, 9.0)])
    metrics = pd.DataFrame({"job_id": ["a1", "a2", "a3", "b1", "b2"], "name": "bas_bailando",
                            "value": [0.1, 0.3, 0.2, 0.4, 0.5]})
    jobs = pd.DataFrame({"job_id": ["a1", "a2", "a3", "b1", "b2"], "model": ["A", "A", "A", "B", "B"]})
    table = metric_correlation(answers, metrics, jobs).set_index("model")
    assert table.loc["A", "videos"] == 3
    assert table.loc["A", "spearman"] == pytest.approx(0.5)  # ranks (1, 2, 3) vs (1, 3, 2)
    assert table.loc["A", "pearson"] == pytest.approx(0.5)  # 0.2 / (sqrt(8) * sqrt(0.02))
    assert table.loc["A", "rating_mean"] == pytest.approx(4.0)
    assert table.loc["B", "videos"] == 1 and math.isnan(table.loc["B", "spearman"])
    assert table.loc["all", "videos"] == 4
    assert table.loc["all", "metric_mean"] == pytest.approx(0.25)


def test_mode_agreement():
    rows = [(f"j{i}", "vl", "beat_alignment", "greedy", 0, g) for i, g in enumerate([5, 6, 7])]
    rows += [(f"j{i}", "vl", "beat_alignment", "expected", 0, e) for i, e in enumerate([5.5, 6.5, 7.5])]
    rows += [("j3", "vl", "beat_alignment", "expected", 0, 1.0)]
    table = mode_agreement(_answers(rows))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["videos"], row["spearman"], row["pearson"]) == (3, pytest.approx(1.0), pytest.approx(1.0))
    assert (row["mean_diff"], row["mean_abs_diff"]) == (pytest.approx(0.5), pytest.approx(0.5))
    assert mode_agreement(_answers(rows[:3])).empty
