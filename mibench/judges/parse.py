"""Parsing a judge's free-text answer into a 0-10 score.

Accepted: "7", "7/10", "Score: 7.5", "I would rate it 8 out of 10", "seven". Not a score: an echo of
the scale ("0-10", "0 to 10"), a denominator ("/10", "out of 10"), a number outside 0..10, or no
number at all. An answer that is not a score parses to None (missing), never to 0.
"""

from __future__ import annotations

import re

_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_SCALE_ECHO = re.compile(r"\b0\s*(?:-|–|—|to)\s*10\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.]*\d)|\b(" + "|".join(_WORDS) + r")\b", re.IGNORECASE)
_DENOMINATOR = re.compile(r"(?:/|\bout of|\bof)\s*$", re.IGNORECASE)


def parse_score(text: str | None) -> float | None:
    """The first number in `text` that is a score in [0, 10], else None."""
    if not text:
        return None
    cleaned = _SCALE_ECHO.sub(" ", text)
    for match in _NUMBER.finditer(cleaned):
        if _DENOMINATOR.search(cleaned[: match.start()]):
            continue
        value = float(match.group(1)) if match.group(1) else float(_WORDS[match.group(2).lower()])
        return value if 0.0 <= value <= 10.0 else None
    return None
