"""The metrics of one video (`compute_video_metrics`).

Metric names (`registry.METRICS`, `registry.names`), each stored as (value or None when undefined,
parameters, note or None):

- `bas_<recipe>`: Beat Alignment Score by each chosen recipe of `bas.py` (default the published
  `bas_fact` and `bas_bailando`; `bas_mibench` on request);
- `motion_bpm`, `music_bpm`, `tempo_ratio`: motion tempo, music tempo and their ratio (`tempo.py`);
  the ratio divides by the given BPM when there is one, else by the music's measured tempo;
- `motion_speed`: mean of the motion-speed envelope (`motion.py`; unit in its parameters);
- `frame_consistency`: mean correlation of consecutive frames (`motion.py`);
- with `pose=True`, the 2-D pose path (`pose.py`, `kinetics.py`): `pose_bas_<recipe>` (the same BAS
  recipes on the pose motion signal), `pose_kinetic_energy` (mean over joints of the
  horizontal + vertical kinetic features; its parameters carry the whole kinetic feature vector, from
  which the report computes each model's Dist_k) and `pose_detected` (fraction of frames with a person).
  A video in which no person is found leaves them undefined with a note.

Frames are placed in time by the container's timestamps and the motion envelopes (pixel and pose) are
sampled on the constant grid at the header's average rate (`motion.py`, `media.video.FrameTiming`): a
constant-rate video scores as if frame i were at i / fps; a variable-frame-rate one is resampled and every
motion-derived metric (all but `music_bpm` and `pose_detected`) gets the warning in its note (joined to
any other note with "; "), its timing in `params["motion"]["frame_times"]` or `params["frame_times"]`.
A given `fps` overrides the container's timing: frame i at i / fps (for a header with a wrong rate).

The music is the video's own audio track unless another file is given, and is taken to start with the
video. A still video scores BAS 0 (nothing moves on the beat) with a note; music that is silent, missing
or beatless leaves BAS and tempo undefined (None) with a note. Nothing is ever NaN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from mibench.errors import MediaError
from mibench.media.audio import existing_file, is_silent, load_audio
from mibench.media.video import probe
from mibench.metrics.bas import PUBLISHED, recipe
from mibench.metrics.family import Inputs, MetricValue, noted
from mibench.metrics.motion import WORK_HEIGHT, motion_signal
from mibench.metrics.music_beats import MIBENCH_MUSIC, MusicBeats, MusicRecipe, music_beats
from mibench.metrics.registry import families, names


def metric_names(recipes: Sequence[str] = PUBLISHED, *, pose: bool = False) -> tuple[str, ...]:
    """The metrics `compute_video_metrics` returns (`registry.names`)."""
    return names(recipes, pose=pose)


def _music(video: Path, music: Path | None) -> tuple[np.ndarray | None, int, str | None]:
    """(wave, sr, None) or (None, 0, why there is no usable music). A missing explicit file raises."""
    source = existing_file(music) if music is not None else video
    try:
        wave, sr = load_audio(source)
    except MediaError as exc:
        return None, 0, f"no music: {exc.cause}"
    if is_silent(wave):
        return None, 0, f"no music beats: the music of {source.name} is silent"
    return wave, sr, None


class _Beats:
    """The beats of one music wave per music recipe (the wave itself is not kept)."""

    def __init__(self) -> None:
        self.found: dict[MusicRecipe, MusicBeats] = {}

    def track(self, wave: np.ndarray, sr: int, fps: float, bpm: float | None, recipes: set[MusicRecipe]) -> None:
        for chosen in sorted(recipes - set(self.found), key=lambda r: r.name):
            self.found[chosen] = music_beats(wave, sr, fps, chosen, start_bpm=bpm)

    def __call__(self, chosen: MusicRecipe) -> MusicBeats:
        return self.found[chosen]


def _load_beats(video: Path, music: Path | None, fps: float, bpm: float | None, recipes: set[MusicRecipe],
                cache: dict | None) -> tuple[_Beats | None, str | None]:
    """The music's beats for every recipe needed, or (None, why there are none). With a `cache`, music
    already tracked (the same samples, rate and tempo prior) is not tracked again."""
    wave, sr, note = _music(video, music)
    if wave is None:
        return None, note
    key = (hashlib.sha1(wave.tobytes()).hexdigest(), sr, fps, bpm)
    beats = cache.setdefault(key, _Beats()) if cache is not None else _Beats()
    beats.track(wave, sr, fps, bpm, recipes)
    return beats, None


def compute_video_metrics(video: Path, *, music: Path | None = None, bpm: float | None = None,
                          fps: float | None = None, method: str = "diff", height: int = WORK_HEIGHT,
                          recipes: Sequence[str] = PUBLISHED, music_cache: dict | None = None,
                          pose: bool = False) -> dict[str, MetricValue]:
    """Every metric of one video (see the module docstring): name -> (value or None, params, note), the
    names of `registry.names(recipes, pose=pose)`.

    `music`: the music file (default: the video's own audio track); `bpm`: the music's known tempo (the
    FACT recipe's tracking prior and the ratio's reference); `fps`: overrides the header's frame rate and
    the container's timestamps (frame i at i / fps); `method` and `height`: the motion signal (`motion.py`);
    `recipes`: BAS recipes (`bas.RECIPES`; default the two published ones); `music_cache`: a dict shared
    across calls, so videos carrying the same music (every model's video of an item, every prompt of a
    music window) track its beats once; `pose`: also the 2-D pose path.
    """
    chosen = [recipe(name) for name in recipes]
    video = existing_file(video)
    timestamps = not fps
    rate = float(fps or probe(video).fps)
    music_recipes = {r.music for r in chosen} | {MIBENCH_MUSIC}
    # Music beats (librosa; scipy's median filters release the GIL) are tracked in a second thread
    # while this one decodes the video: the two halves take similar time.
    # BLAS (librosa's mel filterbank products) runs single-threaded: its idle threads spin on the two cores
    # that the decoder and the music thread need.
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max_workers=1) as pool:
        music_job = pool.submit(_load_beats, video, Path(music) if music is not None else None, rate, bpm,
                                music_recipes, music_cache)
        motion = motion_signal(video, rate, method=method, height=height, timestamps=timestamps)
        beats, music_note = music_job.result()
    inputs = Inputs(video, rate, timestamps, motion, beats, music_note, bpm, tuple(chosen))
    values: dict[str, MetricValue] = {}
    for family in families(pose=pose):
        found = family.compute(inputs)
        if "pixels" in family.needs:  # the pixel motion's timing warning (the pose family notes its own)
            found = {name: value if name == "music_bpm" else noted(value, motion.note) for name, value in found.items()}
        values |= found
    return values
