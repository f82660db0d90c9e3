"""The `videollama2` judge: VideoLLaMA2Judge (judges/videollama2/) behind the judge protocol.

Weights: the `tiny` preset without `--checkpoint` builds a seeded random model locally. Otherwise
`--checkpoint DIR` (a folder in the official VideoLLaMA2.1-7B-AV layout; its config names the SigLIP
folder) or the model card's Hugging Face ids. Real weights load in float16 on CUDA, else in float32 (the
tiny model is float32); the judge's identity names that dtype and the device type.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mibench.fingerprint import weights_identity
from mibench.judges.base import Judge, JudgeAnswer
from mibench.judges.videollama2 import EncodedVideo, VideoLLaMA2Judge


class VideoLLaMA2(Judge):
    cuda_dtype = "float16"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._model: VideoLLaMA2Judge | None = None

    @property
    def model(self) -> VideoLLaMA2Judge:
        if self._model is None:
            if self.preset == "tiny" and self.checkpoint is None:
                self._model = VideoLLaMA2Judge.tiny(seed=0, device=self.device)
            else:
                checkpoint = self.checkpoint or self.card.weights["checkpoint"]["source"]
                siglip = None if self.checkpoint else self.card.weights["siglip"]["source"]
                self._model = VideoLLaMA2Judge.from_pretrained(checkpoint, siglip, device=self.device,
                                                               dtype=getattr(torch, self.weights_dtype()))
        return self._model

    def weights_identity(self) -> dict:
        if self.preset == "tiny" and self.checkpoint is None:
            return {"random": "tiny preset", "seed": 0}
        if self.checkpoint is not None:
            return {"checkpoint": weights_identity(self.checkpoint)}
        return {part: weights_identity(self.card.weights[part]["source"]) for part in ("checkpoint", "siglip")}

    def encode(self, video: Path, *, jitter_seed: int | None = None) -> EncodedVideo:
        return self.model.encode(video, modal=self.modal, jitter_seed=jitter_seed)

    def ask(self, encoded: EncodedVideo, questions: list[str], *, mode: str = "greedy") -> list[JudgeAnswer]:
        answers = self.model.ask(encoded, questions, mode=mode, max_new_tokens=self.max_new_tokens)
        encoded.prefix = None  # the prefix cache is per video: free it before the next one
        return [JudgeAnswer(a.text, a.expected_score, a.distribution, a.valid_mass) for a in answers]
