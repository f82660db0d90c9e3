"""VideoLLaMA2Judge: encode a video once, then answer any number of questions about it.

Cached path (default): the prompt prefix (system turn, user header, video then audio tokens) is
prefilled once per encoded video and its KV cache kept on the EncodedVideo; each question runs
only its own suffix and decode steps, then the cache is cropped back to the prefix. In greedy mode
the questions of one `ask` call share those steps: their suffixes are packed into one prefill and
each decode step feeds the next token of every unfinished question (`decode.greedy_packed`), so
the weights are read once per step rather than once per question. Naive path (`cached=False`):
one full prefill per question, as the official script does. Both give the same greedy answers
(logits agree to float noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from mibench.errors import ConfigError
from mibench.judges.scoring import answer_distribution, answer_tokens
from mibench.judges.videollama2 import preprocess
from mibench.judges.videollama2.chat import prompt_chunks
from mibench.judges.videollama2.decode import KVSession, StopRules, greedy, greedy_packed
from mibench.judges.videollama2.load import Settings, load_judge
from mibench.judges.videollama2.model import VideoLLaMA2AV
from mibench.judges.videollama2.tiny import build_tiny

MODALS = ("av", "video")
MODES = ("greedy", "expected")


@dataclass
class Answer:
    """One answer. `expected_score`, `distribution` (over "0".."10") and `valid_mass` (their raw
    probability before renormalising) are filled in expected mode only."""

    text: str
    token_ids: list[int]
    expected_score: float | None = None
    distribution: dict[str, float] | None = None
    valid_mass: float | None = None


@dataclass
class MediaInputs:
    """What the processor hands the model: sampled frames and (in av mode) the audio features."""

    frames: np.ndarray  # [T, H, W, 3] uint8
    frame_indices: list[int]
    pixel_values: torch.Tensor  # [T, 3, S, S] float32
    pcm: np.ndarray | None = None  # 16 kHz mono int16
    clip_ranges: list[tuple[int, int]] | None = None
    fbank: torch.Tensor | None = None  # [1, 2998, 128] bfloat16


@dataclass
class Prefill:
    """A prompt run through the LLM: its session, the next-token logits, the prompt length (the
    placeholder counted once) and, for the shared prefix session, the length to crop back to."""

    session: KVSession
    logits: torch.Tensor
    prompt_len: int
    restore: int | None = None


@dataclass(eq=False)
class EncodedVideo:
    """The multimodal tokens of one video (video first, then audio) and how they were sampled.

    `prefix` holds the KV cache of the shared prompt prefix once a cached `ask` has built it;
    drop the EncodedVideo (or set `prefix = None`) to free it.
    """

    path: Path
    modal: str
    jitter_seed: int | None
    frame_indices: list[int]
    clip_ranges: list[tuple[int, int]] | None
    tokens: torch.Tensor  # [Nv (+ Na), D]
    num_video_tokens: int
    prefix: KVSession | None = field(default=None, repr=False)
    prefix_ids: list[int] = field(default_factory=list, repr=False)


class VideoLLaMA2Judge:
    """VideoLLaMA 2.1-7B-AV as a judge (see mibench/judges/videollama2/__init__.py)."""

    def __init__(self, model: VideoLLaMA2AV, tokenizer: PreTrainedTokenizerBase, settings: Settings):
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        keyword = tokenizer.eos_token
        self.rules = StopRules(
            eos_ids=settings.eos_ids, keyword=keyword, keyword_ids=tokenizer(keyword).input_ids,
            repetition_penalty=settings.repetition_penalty,
            decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        )
        self.answers = answer_tokens(lambda s: tokenizer(s, add_special_tokens=False).input_ids)

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, siglip: str | Path | None = None, *,
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> VideoLLaMA2Judge:
        """Load `DAMO-NLP-SG/VideoLLaMA2.1-7B-AV` (+ SigLIP) from folders or Hugging Face ids."""
        return cls(*load_judge(checkpoint, siglip, device, dtype))

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> VideoLLaMA2Judge:
        """The tiny preset: seeded random weights (drawn on the CPU), local tokenizer, no download."""
        model, tokenizer, settings = build_tiny(seed)
        return cls(model.to(device), tokenizer, settings)

    def preprocess(self, video: Path, *, modal: str = "av", jitter_seed: int | None = None) -> MediaInputs:
        """Frames and audio features exactly as `processor['video'](path, va=modal == 'av')`."""
        if modal not in MODALS:
            raise ConfigError(f"unknown judge modality {modal!r}", f"use one of {', '.join(MODALS)}")
        video = Path(video)
        s = self.settings
        frames, indices = preprocess.read_frames(video, s.num_frames, jitter_seed)
        pixels = preprocess.pixel_values(frames, s.image_size, s.image_mean, s.image_std, s.rescale)
        inputs = MediaInputs(frames, indices, pixels)
        if modal == "av":
            inputs.pcm = preprocess.read_audio(video)
            inputs.clip_ranges = preprocess.clip_ranges(len(inputs.pcm), jitter_seed)
            inputs.fbank = preprocess.audio_fbank(inputs.pcm, inputs.clip_ranges)
        return inputs

    def encode(self, video: Path, *, modal: str = "av", jitter_seed: int | None = None) -> EncodedVideo:
        """Read and encode a video once. `modal="av"` needs an audio track (MediaError otherwise);
        `modal="video"` gives the judge the frames only, like the reference without `va=True`."""
        return self.encode_media(video, self.preprocess(video, modal=modal, jitter_seed=jitter_seed), jitter_seed)

    def encode_media(self, video: Path, inputs: MediaInputs, jitter_seed: int | None = None) -> EncodedVideo:
        """Run the towers on preprocessed media (what the official `mm_infer` repeats per question)."""
        parts = [self.model.encode_video(inputs.pixel_values)]
        if inputs.fbank is not None:
            parts.append(self.model.encode_audio(inputs.fbank))
        modal = "av" if inputs.fbank is not None else "video"
        return EncodedVideo(Path(video), modal, jitter_seed, inputs.frame_indices, inputs.clip_ranges,
                            torch.cat(parts), len(parts[0]))

    def ask(self, encoded: EncodedVideo, questions: list[str], *, mode: str = "greedy",
            max_new_tokens: int = 16, cached: bool = True) -> list[Answer]:
        """Answer each question; `mode="expected"` adds the score distribution over 0..10."""
        if mode not in MODES:
            raise ConfigError(f"unknown judge mode {mode!r}", f"use one of {', '.join(MODES)}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if cached and mode == "greedy":
            return self._ask_packed(encoded, questions, max_new_tokens)
        answers = []
        for question in questions:
            prefill = self.prefill(encoded, question, cached=cached)
            try:
                answers.append(self._answer(prefill, mode, max_new_tokens))
            finally:
                if prefill.restore is not None:
                    prefill.session.crop(prefill.restore)
        return answers

    def prefill(self, encoded: EncodedVideo, question: str, *, cached: bool = True) -> Prefill:
        """Run the whole prompt of one question. Cached: reuse (or build) the prefix KV cache kept on
        `encoded` and run only the question's chunk; naive: one fresh full prefill."""
        before, after = prompt_chunks(self.tokenizer, question)
        prompt_len = len(before) + 1 + len(after)
        if not cached:
            session = KVSession(self.model)
            return Prefill(session, session.feed(self.model.splice(before, encoded.tokens, after)), prompt_len)
        session = self._shared_prefix(encoded, before)
        restore = session.length
        return Prefill(session, session.feed(self.model.embed(after).unsqueeze(0)), prompt_len, restore)

    def _shared_prefix(self, encoded: EncodedVideo, before: list[int]) -> KVSession:
        """The session holding `before` + the multimodal tokens, built on first use and cropped back
        to them (in case an interrupted call left positions behind)."""
        if encoded.prefix is None or encoded.prefix_ids != before:
            encoded.prefix = KVSession(self.model)
            encoded.prefix.feed(torch.cat([self.model.embed(before), encoded.tokens]).unsqueeze(0))
            encoded.prefix_ids = before
        encoded.prefix.crop(len(before) + len(encoded.tokens))
        return encoded.prefix

    def _ask_packed(self, encoded: EncodedVideo, questions: list[str], max_new_tokens: int) -> list[Answer]:
        """Greedy answers of the cached path, all questions decoded together (see the module docstring)."""
        if not questions:
            return []
        chunks = [prompt_chunks(self.tokenizer, q) for q in questions]
        before = chunks[0][0]
        assert all(b == before for b, _ in chunks), "the chat template put question text before <video>"
        session = self._shared_prefix(encoded, before)
        restore = session.length
        try:
            ids = greedy_packed(session, [self.model.embed(after) for _, after in chunks], self.rules,
                                [len(before) + 1 + len(after) for _, after in chunks], max_new_tokens)
        finally:
            session.crop(restore)
        return [Answer(text=self.rules.decode(i).strip(), token_ids=i) for i in ids]

    def _answer(self, prefill: Prefill, mode: str, max_new_tokens: int) -> Answer:
        answer = Answer(text="", token_ids=[])
        if mode == "expected":
            distribution, mass = answer_distribution(prefill.session, prefill.logits, self.answers)
            if mass > 0:
                answer.distribution, answer.valid_mass = distribution, mass
                answer.expected_score = sum(int(k) * p for k, p in distribution.items())
        generation = greedy(prefill.session, prefill.logits, self.rules, prefill.prompt_len, max_new_tokens)
        answer.token_ids = generation.ids
        answer.text = self.rules.decode(generation.ids).strip()
        return answer
