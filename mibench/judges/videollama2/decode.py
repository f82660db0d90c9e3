"""Answer decoding of the judge: greedy as `mm_infer(do_sample=False)`, and the expected-score mode.

Greedy follows HF `generate` under the reference settings: argmax after the repetition penalty of
generation_config.json (applied only to already generated ids: generation starts from
`inputs_embeds`, so the prompt is invisible to the logits processors); stop at an eos id, at
`KeywordsStoppingCriteria(["<|im_end|>"])` (its window arithmetic included) or after
`max_new_tokens`; decode with `skip_special_tokens=True` and strip.

Expected-score mode reads the answer distribution over "0".."10" from the same prefill
(`judges.scoring.answer_distribution`).
"""

from __future__ import annotations

import inspect
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
        # transformers 5.x renamed `past_key_values` to `cache` (the old name warns on every call)
        forward = inspect.signature(type(model.llm).forward).parameters
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"

    @property
    def length(self) -> int:
        return self.cache.get_seq_length()

    @torch.no_grad()
    def feed(self, embeds: torch.Tensor) -> torch.Tensor:
        """Run embeddings [1, n, D] at the next positions; the float32 logits [vocab] of the last one."""
        out = self.model.llm(inputs_embeds=embeds, **{self._cache_arg: self.cache}, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1].float()

    def feed_ids(self, ids: list[int]) -> torch.Tensor:
        return self.feed(self.model.embed(ids).unsqueeze(0))

    @torch.no_grad()
    def feed_masked(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                    keep: torch.Tensor) -> torch.Tensor:
        """Run embeddings [1, n, D] at explicit positions [n] under a boolean mask [n, cached + n]
        (True = may attend); the float32 logits [len(keep), vocab] of the fed indices `keep`."""
        out = self.model.llm(inputs_embeds=embeds, attention_mask=mask[None, None], position_ids=positions[None],
                             **{self._cache_arg: self.cache}, use_cache=True, logits_to_keep=keep)
        return out.logits[0].float()

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


class PackedPrompts:
    """Prompts that continue one shared cached prefix, fed together as one packed sequence.

    Every fed token belongs to one prompt (`owner`) and has that prompt's position (the prefix
    length plus its index in the prompt's own continuation). It may attend to the whole prefix and
    to the earlier tokens of its own prompt, never to another prompt's, so each prompt computes what
    it would alone, up to float rounding (other matrix shapes). Crop the session back to `start`
    when done.
    """

    def __init__(self, session: KVSession):
        self.session, self.start = session, session.length
        device = session.model.device
        self.owners = torch.full((self.start,), -1, dtype=torch.long, device=device)
        self.positions = torch.arange(self.start, device=device)

    def feed(self, embeds: list[torch.Tensor], owners: list[int], positions: list[int]) -> torch.Tensor:
        """Append each prompt's next embeddings [n_i, D] (prompt `owners[i]`, first position
        `positions[i]`); the logits [len(embeds), vocab] of each one's last fed token."""
        device = self.owners.device
        owner = torch.cat([torch.full((len(e),), o) for e, o in zip(embeds, owners, strict=True)]).to(device)
        position = torch.cat([p + torch.arange(len(e)) for e, p in zip(embeds, positions, strict=True)]).to(device)
        last = torch.tensor([len(e) for e in embeds]).cumsum(0).to(device) - 1
        self.owners, self.positions = torch.cat([self.owners, owner]), torch.cat([self.positions, position])
        mask = (self.owners == -1) | ((self.owners == owner[:, None]) & (self.positions <= position[:, None]))
        return self.session.feed_masked(torch.cat(embeds).unsqueeze(0), mask, position, last)


def greedy_packed(session: KVSession, suffixes: list[torch.Tensor], rules: StopRules, prompt_lens: list[int],
                  max_new_tokens: int) -> list[list[int]]:
    """`greedy` for several prompts after the session's cached prefix, decoded together.

    The suffix embeddings [n_i, D] are packed into one prefill, then every step feeds the next token
    of each unfinished prompt at once, so a step reads the weights once for all prompts. Greedy
    choices, penalty and stop rules are per prompt as in `greedy`. Extends the session.
    """
    packed = PackedPrompts(session)
    logits = packed.feed(suffixes, list(range(len(suffixes))), [packed.start] * len(suffixes))
    ids: list[list[int]] = [[] for _ in suffixes]
    active = list(range(len(suffixes)))
    while True:
        for row, i in enumerate(active):
            ids[i].append(int(torch.argmax(penalised(logits[row], ids[i], rules.repetition_penalty))))
        active = [i for i in active if len(ids[i]) < max_new_tokens and not rules.stops(ids[i], prompt_lens[i])]
        if not active:
            return ids
        embeds = [session.model.embed(ids[i][-1:]) for i in active]
        logits = packed.feed(embeds, active, [packed.start + len(suffixes[i]) + len(ids[i]) - 1 for i in active])
