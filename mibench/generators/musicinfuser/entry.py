"""The `musicinfuser` and `mochi` generators: DancePipeline (generators/musicinfuser/) behind the
generator protocol.

The music window is `num_frames / fps + 0.09` s of 16 kHz mono audio (the official `inference.py`
window, its sample count rounded up as the official code does), cut at an offset drawn from the
job's music and seed, so MusicInfuser and Mochi videos of an item carry the same music. MusicInfuser
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

from mibench.errors import ConfigError
from mibench.generators.base import Generator, job_music
from mibench.generators.musicinfuser import OFFICIAL_AUDIO_LAYERS, DancePipeline
from mibench.generators.musicinfuser.pipeline import check_size
from mibench.media.video import write_mp4
from mibench.suite.jobs import Job
from mibench.weights import resolve

ADAPTER_FILE = "musicinfuser.safetensors"

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class MusicInfuserGenerator(Generator):
    listens = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dtype = self.settings.get("dtype", "fp32")
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}", f"choose one of: {', '.join(DTYPES)}")
        check_size(self.num_frames, int(self.settings["height"]), int(self.settings["width"]),
                   int(self.settings["steps"]))

    def prepare(self) -> None:
        _ = self.pipeline

    @cached_property
    def pipeline(self) -> DancePipeline:
        if self.preset == "tiny" and self.weights is None:
            return DancePipeline.tiny(with_adapter=self.listens, seed=0)
        root = Path(self.weights) if self.weights is not None else None
        sources = self.card.weights
        adapter = None
        if self.listens:
            adapter = (root / ADAPTER_FILE if root is not None and (root / ADAPTER_FILE).is_file()
                       else resolve(sources["adapter"]["source"], [ADAPTER_FILE], what="MusicInfuser adapter")
                       / ADAPTER_FILE)
        wav2vec = sources.get("wav2vec", {}).get("source", "facebook/wav2vec2-base-960h")
        if root is not None and (root / "wav2vec2").is_dir():
            wav2vec = str(root / "wav2vec2")
        return DancePipeline.from_weights(
            root, adapter=adapter, base=sources["base"]["source"], wav2vec=wav2vec, device=self.device,
            audio_layers=self._audio_layers(root),
            weight_dtype=DTYPES[self.settings.get("dtype", "fp32")], offload=self.settings.get("offload"),
            vae_tiling=bool(self.settings.get("vae_tiling")), fuse_lora=bool(self.settings.get("fuse_lora")),
        )

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
        music, offset = job_music(job, rate, self.music_seconds())
        frames = self.pipeline.generate(
            job.prompt, music if self.listens else None, num_frames=self.num_frames,
            height=int(self.settings["height"]), width=int(self.settings["width"]), steps=int(self.settings["steps"]),
            guidance_scale=float(self.settings["guidance_scale"]), seed=job.seed, callback=callback,
        )
        write_mp4(out_path, frames, self.fps, audio=music, audio_sr=rate)
        timings = self.pipeline.last_timings
        return {"music_offset_s": offset, "music_seconds": len(music) / rate, "fps": self.fps,
                "num_frames": len(frames), "listens_to_music": self.listens,
                "step_seconds": timings.steps_s, "decode_seconds": timings.decode_s}


class MochiGenerator(MusicInfuserGenerator):
    """Mochi, text only: the same pipeline without adapter and music."""

    listens = False
