"""The judge's prompt, as `mm_infer(..., modal='video')` builds it for `videollama2_qwen2`.

One user turn `"<video>\\n" + question`, no system message (the Qwen2 ChatML template then inserts
its default "You are a helpful assistant." turn), generation prompt appended. The string is split
on the literal `<video>` and each chunk is tokenised on its own without special tokens; the
reference joins them with one -201 placeholder. Everything before the placeholder is the same for
every question, which is what lets the KV cache of that prefix be shared.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from mibench.errors import ConfigError

VIDEO_TOKEN = "<video>"
VIDEO_TOKEN_INDEX = -201


def prompt_text(tokenizer: PreTrainedTokenizerBase, question: str) -> str:
    """The chat-template string of one question."""
    message = [{"role": "user", "content": f"{VIDEO_TOKEN}\n{question}"}]
    return tokenizer.apply_chat_template(message, tokenize=False, add_generation_prompt=True)


def prompt_chunks(tokenizer: PreTrainedTokenizerBase, question: str) -> tuple[list[int], list[int]]:
    """Token ids before and after the <video> placeholder."""
    pieces = prompt_text(tokenizer, question).split(VIDEO_TOKEN)
    if len(pieces) != 2:
        raise ConfigError(f"judge question contains {VIDEO_TOKEN!r}: {question[:60]!r}",
                          f"remove {VIDEO_TOKEN} from the question text")
    before, after = (tokenizer(p, add_special_tokens=False).input_ids for p in pieces)
    return before, after


def input_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """`tokenizer_multimodal_token(prompt)`: the chunks joined by -201."""
    before, after = prompt_chunks(tokenizer, question)
    return [*before, VIDEO_TOKEN_INDEX, *after]
