"""The `musicinfuser` and `mochi` generators: DancePipeline (generators/musicinfuser/) behind the
generator protocol.

The music window is `num_frames / fps + 0.09` s of 16 kHz mono audio (the official `inference.py`
window, its sample count rounded up as the official code does), from the item's window start
(`generators.base.window_start`), so every generator's video of an item carries the same music. MusicInfuser
listens to it; Mochi only has it muxed in, for the audio-visual judge.

Weights: the `tiny` preset without `--weights` builds seeded random models locally. Otherwise
`--weights DIR` (a folder laid out like the fixture sets: `transformer/` in diffusers format,
`musicinfuser.safetensors`, optional `vae/`, `text_encoder/`, `tokenizer/`, `wav2vec2/`) and the
model card's sources fill in what the folder lacks. The adapter file does not record which blocks its
audio cross-attention follows: they come from the folder's `config.json` (`audio.audio_cross_attn_layers`,
as in the fixture sets) or the card's `audio_layers` setting, else the released model's 16 layers.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path

import torch

from mibench.errors import ConfigError, WeightsError
from mibench.fingerprint import weights_identity
from mibench.generators.base import Generator, job_music
from mibench.generators.musicinfuser import OFFICIAL_AUDIO_LAYERS, DancePipeline
from mibench.generators.musicinfuser.pipeline import check_size
from mibench.media.video import write_mp4
from mibench.suite.jobs import Job
from mibench.weights import listing, resolve

ADAPTER_FILE = "musicinfuser.safetensors"
LAYOUT = (ADAPTER_FILE, "transformer/", "vae/", "text_encoder/", "tokenizer/", "wav2vec2/")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class MusicInfuserGenerator(Generator):
    listens = True
    options = frozenset({"num_frames", "steps", "dtype", "offload", "vae_tiling", "fuse_lora"})
    uses_device = True
    uses_weights = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dtype = self.settings.get("dtype", "fp32")
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}", f"choose one of: {', '.join(DTYPES)}")
        check_size(self.num_frames, int(self.settings["height"]), int(self.settings["width"]),
                   int(self.settings["steps"]))

    def prepare(self) -> None:
        _ = self.pipeline

    def _placement(self) -> dict:
        return {"device": self.device, "weight_dtype": DTYPES[self.settings.get("dtype", "fp32")],
                "offload": self.settings.get("offload"), "vae_tiling": bool(self.settings.get("vae_tiling")),
                "fuse_lora": bool(self.settings.get("fuse_lora"))}

    def _sources(self) -> dict:
        """Where each part's weights come from: the --weights folder first, then the card's sources."""
        root = Path(self.weights) if self.weights is not None else None
        if root is not None and not root.is_dir():
            raise WeightsError(f"--weights folder {root} does not exist", "check the path")
        if root is not None and not any((root / part).exists() for part in LAYOUT):
            raise WeightsError(f"--weights folder {root} holds none of {', '.join(LAYOUT)} (it holds: "
                               f"{listing(root)})", "point --weights at a folder in the MusicInfuser layout")
        sources = self.card.weights
        found = {"root": root, "base": sources["base"]["source"],
                 "wav2vec": sources.get("wav2vec", {}).get("source", "facebook/wav2vec2-base-960h"), "adapter": None}
        if self.listens:
            local = root / ADAPTER_FILE if root is not None else None
            found["adapter"] = local if local is not None and local.is_file() else sources["adapter"]["source"]
            if root is not None and (root / "wav2vec2").is_dir():
                found["wav2vec"] = str(root / "wav2vec2")
        return found

    def weights_identity(self) -> dict:
        if self.preset == "tiny" and self.weights is None:
            return {"random": "tiny preset", "seed": 0}
        found = self._sources()
        parts = {"root": found["root"], "base": found["base"]}
        if self.listens:
            parts |= {"adapter": found["adapter"], "wav2vec": found["wav2vec"]}
        return {name: weights_identity(source) for name, source in parts.items()}

    @cached_property
    def pipeline(self) -> DancePipeline:
        if self.preset == "tiny" and self.weights is None:
            return DancePipeline.tiny(with_adapter=self.listens, seed=0, **self._placement())
        found = self._sources()
        root, adapter = found["root"], found["adapter"]
        if isinstance(adapter, str):
            try:
                adapter = resolve(adapter, [ADAPTER_FILE], what="MusicInfuser adapter") / ADAPTER_FILE
            except WeightsError as exc:
                if root is None:
                    raise
                raise WeightsError(f"--weights folder {root} has no {ADAPTER_FILE}, and {exc.cause}", exc.fix) from exc
        return DancePipeline.from_weights(root, adapter=adapter, base=found["base"], wav2vec=found["wav2vec"],
                                          audio_layers=self._audio_layers(root), **self._placement())

    def _audio_layers(self, root: Path | None) -> tuple[int, ...]:
        config = root / "config.json" if root is not None else None
        if config is not None and config.is_file():
            layers = json.loads(config.read_text()).get("audio", {}).get("audio_cross_attn_layers")
            if layers is not None:
                return tuple(int(i) for i in layers)
        return tuple(self.settings.get("audio_layers") or OFFICIAL_AUDIO_LAYERS)

    def music_seconds(self) -> float:
        rate = int(self.settings["audio_rate"])
        seconds = self.num_frames / self.fps + float(self.settings["audio_extra_s"])
        return math.ceil(seconds * rate) / rate

    def generate(self, job: Job, out_path: Path, callback=None) -> dict:
        rate = int(self.settings["audio_rate"])
        window = job_music(job, rate, self.music_seconds())
        frames = self.pipeline.generate(
            job.prompt, window.wave if self.listens else None, num_frames=self.num_frames,
            height=int(self.settings["height"]), width=int(self.settings["width"]), steps=int(self.settings["steps"]),
            guidance_scale=float(self.settings["guidance_scale"]), seed=job.seed, callback=callback,
        )
        write_mp4(out_path, frames, self.fps, audio=window.wave, audio_sr=rate)
        timings = self.pipeline.last_timings
        return {**window.info(), "fps": self.fps, "num_frames": len(frames), "listens_to_music": self.listens,
                "step_seconds": timings.steps_s, "decode_seconds": timings.decode_s}


class MochiGenerator(MusicInfuserGenerator):
    """Mochi, text only: the same pipeline without adapter and music."""

    listens = False
