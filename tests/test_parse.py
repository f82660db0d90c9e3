"""Parsing judge answers: robust to formats, never turning an unparseable answer into 0."""

import pytest

from mibench.judges.parse import parse_score


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 7.0),
        ("7/10", 7.0),
        ("Score: 7.5", 7.5),
        ("  8 ", 8.0),
        ("10", 10.0),
        ("0", 0.0),
        ("I would rate it 8 out of 10.", 8.0),
        ("On a scale of 0-10, I'd give it 6.", 6.0),
        ("Rating (0 to 10): 4", 4.0),
        ("Nine", 9.0),
        ("9.", 9.0),
        ("7.5/10", 7.5),
    ],
)
def test_scores_are_found(text, expected):
    assert parse_score(text) == expected


@pytest.mark.parametrize("text", ["", None, "no idea", "0-10", "Rate 0 to 10", "100", "11", "-", "/10", "out of 10"])
def test_non_scores_are_missing_not_zero(text):
    assert parse_score(text) is None
