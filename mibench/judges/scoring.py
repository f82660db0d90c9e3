"""The expected-score mode shared by every judge: the distribution of the answers "0".."10".

Qwen-family tokenizers spell numbers digit by digit, so "10" is two tokens ("1", "0"). Each answer's
probability is the chain product along its tokens; an answer that is a prefix of a longer one ("1" of
"10") keeps only the mass that does not continue into it: P("10") = P("1") P("0" | "1"),
P("1") = P("1") (1 - P("0" | "1")). A first digit other than "1" is taken as the whole answer
(two-digit numbers other than 10 are out of range anyway). That costs one extra one-token step per
question. Probabilities are the softmax of raw logits (temperature 1, no penalty: none applies at the
first step), renormalised over the eleven answers; `valid_mass` is their total before renormalising.

A judge's session is anything with `length`, `feed_ids(ids) -> next-token logits` and `crop(length)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch


class Session(Protocol):
    @property
    def length(self) -> int: ...

    def feed_ids(self, ids: list[int]) -> torch.Tensor: ...

    def crop(self, length: int) -> None: ...


def answer_tokens(encode: Callable[[str], list[int]], low: int = 0, high: int = 10) -> dict[str, list[int]]:
    """Token ids of every answer "low".."high"."""
    return {str(k): encode(str(k)) for k in range(low, high + 1)}


def answer_distribution(session: Session, first_logits: torch.Tensor,
                        answers: dict[str, list[int]]) -> tuple[dict[str, float], float]:
    """(distribution over the answers, their total raw probability); see the module docstring.

    Every proper prefix of an answer's tokens costs one fed step; the session is cropped back.
    """
    start = session.length
    probs = {(): torch.softmax(first_logits.double(), -1)}
    for prefix in sorted({tuple(t[:j]) for t in answers.values() for j in range(1, len(t))}, key=len):
        probs[prefix] = torch.softmax(session.feed_ids(list(prefix)).double(), -1)
        session.crop(start)
    mass = {}
    for name, tokens in answers.items():
        p = 1.0
        for j, token in enumerate(tokens):
            p *= float(probs[tuple(tokens[:j])][token])
        longer = {t[len(tokens)] for t in answers.values() if len(t) > len(tokens) and t[: len(tokens)] == tokens}
        if longer:
            p *= 1.0 - sum(float(probs[tuple(tokens)][c]) for c in longer)
        mass[name] = p
    total = sum(mass.values())
    return ({k: v / total for k, v in mass.items()} if total > 0 else {}), total
