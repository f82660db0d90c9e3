"""Answer decoding of the judge: greedy as `mm_infer(do_sample=False)`, and the expected-score mode.

Greedy follows HF `generate` under the reference settings: argmax after the repetition penalty of
generation_config.json (applied only to already generated ids: generation starts from
`inputs_embeds`, so the prompt is invisible to the logits processors); stop at an eos id, at
`KeywordsStoppingCriteria(["<|im_end|>"])` (its window arithmetic included) or after
`max_new_tokens`; decode with `skip_special_tokens=True` and strip.

Expected-score mode reads the answer distribution over "0".."10" from the same prefill. Qwen2 spells
numbers digit by digit, so "10" is two tokens ("1", "0"). Each answer's probability is the chain
product along its tokens; an answer that is a prefix of a longer one ("1" of "10") keeps only the
mass that does not continue into it: P("10") = P("1") P("0" | "1"), P("1") = P("1") (1 - P("0" | "1")).
A first digit other than "1" is taken as the whole answer (two-digit numbers other than 10 are out
of range anyway). That costs one extra one-token step per question. Probabilities are the softmax
of raw logits (temperature 1, no penalty: none applies at the first step), renormalised over the
eleven answers; `valid_mass` is their total before renormalising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from mibench.judges.videollama2.model import VideoLLaMA2AV


class KVSession:
    """The LLM with one growing DynamicCache: feed embeddings, read next-token logits, crop back."""

    def __init__(self, model: VideoLLaMA2AV):
        self.model = model
        self.cache = DynamicCache()

    @property
    def length(self) -> int:
        return self.cache.get_seq_length()

    @torch.no_grad()
    def feed(self, embeds: torch.Tensor) -> torch.Tensor:
        """Run embeddings [1, n, D] at the next positions; the float32 logits [vocab] of the last one."""
        out = self.model.llm(inputs_embeds=embeds, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float()

    def feed_ids(self, ids: list[int]) -> torch.Tensor:
        return self.feed(self.model.embed(ids).unsqueeze(0))

    def crop(self, length: int) -> None:
        """Forget every position from `length` on (the kept prefix tensors are not modified)."""
        if self.length > length:
            self.cache.crop(length - self.length)


@dataclass(frozen=True)
class StopRules:
    """eos ids (generation_config), the keyword stop of `mm_infer` and the repetition penalty."""

    eos_ids: frozenset[int]
    keyword: str
    keyword_ids: list[int]
    repetition_penalty: float
    decode: Callable[[list[int]], str] = field(repr=False)

    def stops(self, generated: list[int], prompt_len: int) -> bool:
        """HF EosTokenCriteria or KeywordsStoppingCriteria; `prompt_len` counts the -201 as one id.

        The reference's window is `output[-offset:]` with offset = min(new - prompt_len, keyword
        length) and the output holding only new ids, i.e. usually an empty or odd window; kept as is.
        """
        if generated[-1] in self.eos_ids or generated[-len(self.keyword_ids):] == self.keyword_ids:
            return True
        offset = min(len(generated) - prompt_len, len(self.keyword_ids))
        return self.keyword in self.decode(generated[-offset:])


def penalised(logits: torch.Tensor, generated: list[int], penalty: float) -> torch.Tensor:
    """HF RepetitionPenaltyLogitsProcessor over the generated ids."""
    if not generated or penalty == 1.0:
        return logits
    ids = torch.tensor(sorted(set(generated)), device=logits.device)
    picked = logits[ids]
    out = logits.clone()
    out[ids] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return out


@dataclass
class Generation:
    ids: list[int]
    step_logits: list[torch.Tensor]


def greedy(session: KVSession, first_logits: torch.Tensor, rules: StopRules, prompt_len: int,
           max_new_tokens: int) -> Generation:
    """Greedy continuation from the logits of the last prompt position; extends the session."""
    ids: list[int] = []
    logits, steps = first_logits, [first_logits]
    while True:
        ids.append(int(torch.argmax(penalised(logits, ids, rules.repetition_penalty))))
        if len(ids) >= max_new_tokens or rules.stops(ids, prompt_len):
            return Generation(ids, steps)
        logits = session.feed_ids(ids[-1:])
        steps.append(logits)


def answer_tokens(encode: Callable[[str], list[int]], low: int = 0, high: int = 10) -> dict[str, list[int]]:
    """Token ids of every answer "low".."high"."""
    return {str(k): encode(str(k)) for k in range(low, high + 1)}


def answer_distribution(session: KVSession, first_logits: torch.Tensor,
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
