"""A Qwen-Omni thinker as a judge: the official usage's inputs, encoded once per video, every question after it.

Inputs, as the model cards use the models: the frames and the video's own audio track as qwen-omni-utils reads
them (`media.read_media`, `use_audio_in_video=True`), the conversation [system prompt (Qwen2.5-Omni's card
prompt; none for Qwen3-Omni, per its evaluation settings), user: the video, then the question], the checkpoint's
chat template with the generation prompt, and the processor called with `use_audio_in_video` and no fps (the
cards pass none: the processor's default, 2.0 for Qwen2.5-Omni, 1.0 for Qwen3-Omni, sets the time positions).

Shared prefix: the rendered prompt is the same for every question up to the question's text (the template puts
the media first), so the processor and the thinker run once on that prefix (`encode`: towers, placeholders,
3D positions, KV cache) and each question feeds only its own tokens at the next positions: text after the media
sits at position index + `rope_deltas` on all three axes, as the thinker computes it for the whole prompt
(tested against one full `thinker(**processor(...))` call). Only the last position's logits are computed.

Decoding is `thinker.generate(do_sample=False)`: argmax after the repetition penalty of the checkpoint's
generation config (over the prompt ids and the generated ones, as `generate` applies it to input ids), stop at
its eos ids or after `max_new_tokens`, decode with `skip_special_tokens=True` and strip. Expected-score mode:
`judges.scoring.answer_distribution`. Runs after the first jitter the sampled frames (`media`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DynamicCache

from mibench.errors import ConfigError, MediaError
from mibench.judges.qwen_omni.media import OmniMedia, read_media
from mibench.judges.scoring import answer_distribution, answer_tokens

SYSTEM_PROMPTS = {
    "qwen2.5-omni": "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
                    "auditory and visual inputs, as well as generating text and speech.",
    "qwen3-omni": None,
}
MODES = ("greedy", "expected")
MODALS = ("av", "video")
_SENTINEL = "\x00QUESTION\x00"


@dataclass
class Answer:
    text: str
    expected_score: float | None = None
    distribution: dict[str, float] | None = None
    valid_mass: float | None = None


class Session:
    """The thinker with one DynamicCache holding a video's prefix; feeds text ids at the next positions."""

    def __init__(self, thinker: torch.nn.Module):
        self.thinker = thinker
        self.cache = DynamicCache()
        self.rope_delta = 0

    @property
    def length(self) -> int:
        return self.cache.get_seq_length()

    @torch.no_grad()
    def prefill(self, inputs: dict, use_audio_in_video: bool) -> torch.Tensor:
        """Run the processor's inputs (towers, placeholders, 3D positions); the last position's logits."""
        model = self.thinker.model
        model.rope_deltas = None  # computed afresh for this prompt
        out = model(**inputs, cache=self.cache, use_cache=True, use_audio_in_video=use_audio_in_video)
        self.rope_delta = int(model.rope_deltas.reshape(-1)[0])
        return self.thinker.lm_head(out.last_hidden_state[0, -1]).float()

    @torch.no_grad()
    def feed_ids(self, ids: list[int]) -> torch.Tensor:
        """Text ids at the next positions (index + rope delta on all three axes); the last one's logits."""
        device = self.thinker.lm_head.weight.device
        positions = torch.arange(self.length, self.length + len(ids), device=device) + self.rope_delta
        out = self.thinker.model(input_ids=torch.tensor([ids], device=device), cache=self.cache, use_cache=True,
                                 position_ids=positions.view(1, 1, -1).expand(3, 1, -1))
        return self.thinker.lm_head(out.last_hidden_state[0, -1]).float()

    def crop(self, length: int) -> None:
        """Forget every position from `length` on."""
        if self.length > length:
            self.cache.crop(length - self.length)


@dataclass
class Encoded:
    """One video read and run through the thinker up to the question (see the module docstring)."""

    video: Path
    modal: str
    jitter_seed: int | None
    frame_indices: list[int]
    prefix_text: str
    prefix_ids: list[int]
    session: Session | None


class OmniJudge:
    """A thinker, its processor and its family (`qwen2.5-omni` or `qwen3-omni`)."""

    def __init__(self, thinker: torch.nn.Module, processor, family: str):
        if family not in SYSTEM_PROMPTS:
            raise ConfigError(f"unknown Qwen-Omni family {family!r}", f"use one of {', '.join(SYSTEM_PROMPTS)}")
        self.thinker, self.processor, self.family = thinker.eval(), processor, family
        self.tokenizer = processor.tokenizer
        config = thinker.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.repetition_penalty = float(config.repetition_penalty or 1.0)
        self.answers = answer_tokens(lambda s: self.tokenizer(s, add_special_tokens=False).input_ids)

    def conversation(self, video: object, question: str) -> list[dict]:
        system = SYSTEM_PROMPTS[self.family]
        turns = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
        return turns + [{"role": "user", "content": [{"type": "video", "video": video},
                                                     {"type": "text", "text": question}]}]

    def prompt(self, question: str) -> str:
        """The rendered prompt of a question (chat template, generation prompt)."""
        return self.processor.apply_chat_template(self.conversation("video", question), add_generation_prompt=True,
                                                  tokenize=False)

    def processor_inputs(self, media: OmniMedia, text: str) -> dict:
        """`processor(...)` as the official usage calls it: the video and, with its audio, use_audio_in_video."""
        audio = {} if media.audio is None else {"audio": [media.audio], "use_audio_in_video": True,
                                                 "audio_from_video_indices": [0]}
        return dict(self.processor(text=[text], videos=[media.video], return_tensors="pt", padding=True, **audio))

    def encode(self, video: Path, *, modal: str = "av", jitter_seed: int | None = None) -> Encoded:
        """Read the video and run the thinker on the shared prefix. `modal="av"` needs an audio track."""
        if modal not in MODALS:
            raise ConfigError(f"unknown judge modality {modal!r}", f"use one of {', '.join(MODALS)}")
        video = Path(video)
        media = read_media(video, jitter_seed=jitter_seed, with_audio=modal == "av")
        if modal == "av" and media.audio is None:
            raise MediaError(f"{video} has no audio track: the judge listens to the music",
                             "score it with --modal video, or give the video its music")
        rendered = self.prompt(_SENTINEL)
        prefix_text = rendered[:rendered.index(_SENTINEL)]
        inputs = {k: v.to(self.thinker.device) if torch.is_tensor(v) else v
                  for k, v in self.processor_inputs(media, prefix_text).items()}
        session = Session(self.thinker)
        session.prefill(inputs, use_audio_in_video=media.audio is not None)
        return Encoded(video, modal, jitter_seed, media.frame_indices, prefix_text,
                       inputs["input_ids"][0].tolist(), session)

    def suffix_ids(self, encoded: Encoded, question: str) -> list[int]:
        """The question's tokens after the prefix; refused if the tokenizer would join them across the cut."""
        rendered = self.prompt(question)
        if not rendered.startswith(encoded.prefix_text):
            raise ConfigError("the chat template does not put the media before the question",
                              "use the checkpoint's own chat template")
        suffix = rendered[len(encoded.prefix_text):]

        def ids(text: str) -> list[int]:
            return self.tokenizer(text, add_special_tokens=False).input_ids

        if ids(rendered) != ids(encoded.prefix_text) + ids(suffix):
            raise ConfigError("the tokenizer joins the question to the media prefix", "report this checkpoint")
        return ids(suffix)

    def ask(self, encoded: Encoded, questions: list[str], *, mode: str = "greedy",
            max_new_tokens: int = 16) -> list[Answer]:
        """Answer each question after the video's prefix; `mode="expected"` adds the distribution over 0..10."""
        if mode not in MODES:
            raise ConfigError(f"unknown judge mode {mode!r}", f"use one of {', '.join(MODES)}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        session = encoded.session
        start = session.length
        answers = []
        for question in questions:
            suffix = self.suffix_ids(encoded, question)
            logits = session.feed_ids(suffix)
            answer = Answer(self._greedy(session, logits, encoded.prefix_ids + suffix, max_new_tokens))
            session.crop(start + len(suffix))
            if mode == "expected":
                distribution, mass = answer_distribution(session, logits, self.answers)
                if mass > 0:
                    answer.distribution, answer.valid_mass = distribution, mass
                    answer.expected_score = sum(int(k) * p for k, p in distribution.items())
            session.crop(start)
            answers.append(answer)
        return answers

    def _greedy(self, session: Session, logits: torch.Tensor, prompt_ids: list[int], max_new_tokens: int) -> str:
        generated: list[int] = []
        while True:
            token = int(torch.argmax(self._penalised(logits, prompt_ids + generated)))
            generated.append(token)
            if token in self.eos_ids or len(generated) >= max_new_tokens:
                return self.tokenizer.decode(generated, skip_special_tokens=True).strip()
            logits = session.feed_ids([token])

    def _penalised(self, logits: torch.Tensor, seen: list[int]) -> torch.Tensor:
        """HF RepetitionPenaltyLogitsProcessor over every id of the sequence so far."""
        if self.repetition_penalty == 1.0:
            return logits
        ids = torch.tensor(sorted(set(seen)), device=logits.device)
        picked = logits[ids]
        out = logits.clone()
        out[ids] = torch.where(picked < 0, picked * self.repetition_penalty, picked / self.repetition_penalty)
        return out
