"""The `mmdiffusion` generator: MMDiffusionPipeline (generators/mmdiffusion/) behind the generator
protocol.

The job's music (16 kHz mono, `num_frames / fps` seconds from the item's window start,
`generators.base.window_start`) is split into consecutive 1.6 s windows; each is generated
independently (no continuity between windows: the sidecar metadata lists the windows) and the music is
muxed into the 10 fps mp4. The default clip is the official single sampling window (16 frames, 1.6 s);
`--frames N` asks for longer videos made of consecutive windows.

Weights: the `tiny` preset without `--weights` builds seeded random models locally. Otherwise
`--weights DIR` holding `AIST++.pt` and `AIST++_SR.pt` (or `.safetensors`), or the card's paths.
"""

from __future__ import annotations

import time
from functools import cached_property
from pathlib import Path

from mibench.errors import WeightsError
from mibench.fingerprint import weights_identity
from mibench.generators.base import Generator, job_music
from mibench.generators.mmdiffusion import MMDiffusionPipeline
from mibench.media.video import write_mp4
from mibench.suite.jobs import Job
from mibench.weights import listing

CHECKPOINTS = {"base": "AIST++", "sr": "AIST++_SR"}


class MMDiffusionGenerator(Generator):
    options = frozenset({"num_frames", "steps"})
    uses_device = True
    uses_weights = True

    def weights_identity(self) -> dict:
        if self.preset == "tiny" and self.weights is None:
            return {"random": "tiny preset", "seed": 0}
        parts = ("base", "sr") if self.settings.get("super_resolve", True) else ("base",)
        return {part: weights_identity(self._checkpoint(part)) for part in parts}

    def prepare(self) -> None:
        _ = self.pipeline

    @cached_property
    def pipeline(self) -> MMDiffusionPipeline:
        if self.preset == "tiny" and self.weights is None:
            return MMDiffusionPipeline.tiny(seed=0, device=self.device)
        sr = self._checkpoint("sr") if self.settings.get("super_resolve", True) else None
        return MMDiffusionPipeline.from_checkpoints(self._checkpoint("base"), sr, device=self.device)

    def _checkpoint(self, part: str) -> Path:
        if self.weights is None:
            path = Path(self.card.weights[part]["source"]).expanduser()
            if not path.is_file():
                raise WeightsError(f"MM-Diffusion checkpoint {path} not found",
                                   f"download it from {self.card.weights[part]['url']} and pass --weights DIR")
            return path
        if not Path(self.weights).is_dir():
            raise WeightsError(f"--weights folder {self.weights} does not exist", "check the path")
        for suffix in (".pt", ".safetensors"):
            path = Path(self.weights) / f"{CHECKPOINTS[part]}{suffix}"
            if path.is_file():
                return path
        raise WeightsError(f"no {CHECKPOINTS[part]}.pt or .safetensors in {self.weights} (it holds: "
                           f"{listing(Path(self.weights))})",
                           f"download it from {self.card.weights[part]['url']}")

    def generate(self, job: Job, out_path: Path, callback=None) -> dict:
        pipe = self.pipeline
        window = job_music(job, pipe.sample_rate, self.num_frames / self.fps)
        laps = [time.perf_counter()]

        def on_step(done: int, total: int) -> None:
            laps.append(time.perf_counter())
            if callback is not None:
                callback(done, total)

        frames, meta = pipe.generate(
            window.wave, seed=job.seed, method=self.settings.get("method"), steps=self.settings.get("steps"),
            use_ddim=bool(self.settings.get("use_ddim")), super_resolve=bool(self.settings.get("super_resolve", True)),
            callback=on_step,
        )
        frames = frames[: self.num_frames]
        write_mp4(out_path, frames, pipe.fps, audio=window.wave, audio_sr=pipe.sample_rate)
        return {**meta, **window.info(), "fps": pipe.fps, "num_frames": len(frames),
                "step_seconds": [b - a for a, b in zip(laps, laps[1:], strict=False)]}
