"""The `qwen2.5-omni` and `qwen3-omni` judges: OmniJudge (judges/qwen_omni/) behind the judge protocol.

Weights: the `tiny` preset without `--checkpoint` builds a seeded random thinker and a local processor (no
download). Otherwise `--checkpoint DIR` (a released checkpoint folder: the full Omni model; only its thinker is
loaded) or the card's Hugging Face id. On CUDA the thinker loads in bf16 with `device_map="auto"`, so what does not
fit the GPU (`max_memory`, card setting `gpu_memory`) is offloaded to the CPU; on the CPU it runs in float32
(the tiny thinker too). The judge's identity names that dtype and the device type.
Loading is strict: the folder's model type must be the family's, and a missing, unexpected or mis-shaped
tensor is refused with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mibench.errors import WeightsError
from mibench.fingerprint import weights_identity
from mibench.judges.base import Judge, JudgeAnswer
from mibench.judges.qwen_omni.judge import Encoded, OmniJudge

# config.json model types of a released full checkpoint and of a thinker saved alone
MODEL_TYPES = {"qwen2.5-omni": ("qwen2_5_omni", "qwen2_5_omni_thinker"),
               "qwen3-omni": ("qwen3_omni_moe", "qwen3_omni_moe_thinker")}


class QwenOmni(Judge):
    cuda_dtype = "bfloat16"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._model: OmniJudge | None = None

    @property
    def family(self) -> str:
        return str(self.settings["family"])

    @property
    def model(self) -> OmniJudge:
        if self._model is None:
            if self.preset == "tiny" and self.checkpoint is None:
                from mibench.judges.qwen_omni.tiny import tiny_processor, tiny_thinker

                thinker = tiny_thinker(self.family, seed=0).to(self.device)
                self._model = OmniJudge(thinker, tiny_processor(self.family), self.family)
            else:
                self._model = self._load(self.checkpoint or self.card.weights["checkpoint"]["source"])
        return self._model

    def _load(self, source: str | Path) -> OmniJudge:
        from safetensors import SafetensorError

        from mibench.judges.qwen_omni.processor import load_processor
        from mibench.judges.qwen_omni.tiny import THINKER_CLASSES
        from mibench.weights import resolve

        folder = resolve(source, ["config.json", "preprocessor_config.json"], what=f"{self.family} checkpoint")
        fix = f"pass the folder of the released {self.card.weights['checkpoint']['source']}"
        try:
            model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError) as exc:
            raise WeightsError(f"cannot read {folder / 'config.json'}: {exc}".splitlines()[0], fix) from exc
        if model_type not in MODEL_TYPES[self.family]:  # checked first: transformers would build a full-size
            raise WeightsError(f"{folder} holds a {model_type!r} checkpoint, not a {self.family} one", fix)  # model
        cuda = self.device_type == "cuda"
        placement = {"dtype": getattr(torch, self.weights_dtype())}
        if cuda:
            placement |= {"device_map": "auto",
                          "max_memory": {0: self.settings.get("gpu_memory", "70GiB"), "cpu": "200GiB"}}
        try:
            thinker, info = THINKER_CLASSES[self.family].from_pretrained(folder, output_loading_info=True, **placement)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            raise WeightsError(f"cannot load the {self.family} thinker from {folder}: {exc}".splitlines()[0],
                               fix) from exc
        wrong = {k: sorted(map(str, info[k])) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")
                 if info.get(k)}
        if wrong:
            raise WeightsError(f"the checkpoint {folder} does not match the {self.family} thinker: "
                               + "; ".join(f"{k.split('_')[0]} {', '.join(v[:3])}" for k, v in wrong.items()), fix)
        return OmniJudge(thinker if cuda else thinker.to(self.device), load_processor(self.family, folder),
                         self.family)

    def weights_identity(self) -> dict:
        if self.preset == "tiny" and self.checkpoint is None:
            return {"random": "tiny preset", "seed": 0}
        return {"checkpoint": weights_identity(self.checkpoint or self.card.weights["checkpoint"]["source"])}

    def encode(self, video: Path, *, jitter_seed: int | None = None) -> Encoded:
        return self.model.encode(video, modal=self.modal, jitter_seed=jitter_seed)

    def ask(self, encoded: Encoded, questions: list[str], *, mode: str = "greedy") -> list[JudgeAnswer]:
        answers = self.model.ask(encoded, questions, mode=mode, max_new_tokens=self.max_new_tokens)
        encoded.session = None  # the prefix cache is per video: free it before the next one
        return [JudgeAnswer(a.text, a.expected_score, a.distribution, a.valid_mass) for a in answers]
