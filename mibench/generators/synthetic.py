"""The `synthetic-*` generators: procedural stick-figure dancers that move on the beat of the job's
music, or ignore it. They need no weights and give the metrics and reports a known signal.

The tempo is the job's BPM when known (AIST tracks, synthetic music) and librosa's estimate otherwise.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np

from mibench.generators.base import Generator, job_music
from mibench.media.synth import dancer_video
from mibench.media.video import write_mp4
from mibench.suite.jobs import Job

SAMPLE_RATE = 16000


class SyntheticGenerator(Generator):
    def generate(self, job: Job, out_path: Path) -> dict:
        seconds = self.num_frames / self.fps
        window = job_music(job, SAMPLE_RATE, seconds)
        bpm = job.bpm * job.tempo if job.bpm else _estimate_bpm(window.wave)
        # The dancer's clock starts at the window's start: shift its phase so beats stay on the music grid.
        phase = -(window.start_s * bpm / 60.0) % 1.0 if job.bpm else 0.0
        frames = dancer_video(
            bpm, seconds, fps=self.fps, size=(int(self.settings["height"]), int(self.settings["width"])),
            mode=self.settings["mode"], phase_beats=phase, seed=job.seed,
        )
        write_mp4(out_path, frames, self.fps, audio=window.wave, audio_sr=SAMPLE_RATE)
        return {**window.info(), "bpm": bpm, "mode": self.settings["mode"], "fps": self.fps,
                "num_frames": len(frames)}


def _estimate_bpm(music: np.ndarray) -> float:
    tempo, _ = librosa.beat.beat_track(y=music, sr=SAMPLE_RATE)
    bpm = float(np.atleast_1d(tempo)[0])
    return bpm if bpm > 0 else 120.0
