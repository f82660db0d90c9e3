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
from mibench.metrics.bas import PUBLISHED, Recipe, beat_alignment, recipe
from mibench.metrics.kinetics import kinetic_features, kinetic_params, normalised, pose_motion
from mibench.metrics.motion import WORK_HEIGHT, MotionSignal, motion_signal
from mibench.metrics.music_beats import MIBENCH_MUSIC, MusicBeats, MusicRecipe, music_beats
from mibench.metrics.pose import pose_track
from mibench.metrics.registry import METRICS, names
from mibench.metrics.tempo import MAX_BPM, MIN_BPM, beats_bpm, periodicity_bpm, tempo_ratio

MetricValue = tuple[float | None, dict, str | None]


def metric_names(recipes: Sequence[str] = PUBLISHED, *, pose: bool = False) -> tuple[str, ...]:
    """The metrics `compute_video_metrics` returns (`registry.names`)."""
    return names(recipes, pose=pose)


def pose_metric_names(recipes: Sequence[str] = PUBLISHED) -> tuple[str, ...]:
    return tuple(n for n in names(recipes, pose=True) if METRICS[n].family == "pose")


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


def _noted(metric: MetricValue, warning: str | None) -> MetricValue:
    """`metric` with `warning` (about the frames' timing) joined to its note with "; "."""
    value, params, note = metric
    return value, params, "; ".join(part for part in (note, warning) if part) or None


def _bas(motion: MotionSignal, beats: _Beats | None, music_note: str | None,
         recipes: Sequence[Recipe], prefix: str = "") -> dict[str, MetricValue]:
    steps = np.zeros_like(motion.steps) if motion.still else motion.steps
    out = {}
    for chosen in recipes:
        name = f"{prefix}bas_{chosen.name}"
        if beats is None:
            out[name] = (None, chosen.params(motion.fps) | {"motion": motion.params}, music_note)
            continue
        found = beats(chosen.music)
        score, params = beat_alignment(steps, motion.fps, found.times, chosen)
        params |= {"music": found.params, "motion": motion.params}
        note = None
        if score is None:
            note = "no music beats: librosa found no beat within the video"
        elif motion.still:
            note = "still video: no motion beats, scored 0"
        elif params["motion_beats"] == 0:
            note = "no motion beats (the motion speed has no local minimum), scored 0"
        out[name] = (score, params, note)
    return out


def _tempo(motion: MotionSignal, beats: _Beats | None, music_note: str | None,
           bpm: float | None) -> dict[str, MetricValue]:
    duration = len(motion.speed) / motion.fps
    if motion.still:
        motion_bpm, peak, motion_note = None, None, "still video: no motion tempo"
    else:
        motion_bpm, peak = periodicity_bpm(motion.speed, motion.fps)
        motion_note = None if motion_bpm else f"no periodic motion between {MIN_BPM:g} and {MAX_BPM:g} BPM"
    music_bpm, music_params, music_bpm_note = None, {}, music_note
    if beats is not None:
        found = beats(MIBENCH_MUSIC)
        music_bpm = beats_bpm(found.times[found.times < duration])
        music_params = found.params
        music_bpm_note = None if music_bpm else "fewer than 2 music beats within the video"
    reference = float(bpm) if bpm else music_bpm
    ratio = tempo_ratio(motion_bpm, reference)
    ratio_note = motion_note or (None if reference else music_bpm_note)
    motion_params = motion.params | {"min_bpm": MIN_BPM, "max_bpm": MAX_BPM, "periodicity": peak}
    return {
        "motion_bpm": (motion_bpm, motion_params, motion_note),
        "music_bpm": (music_bpm, {"music": music_params, "given_bpm": bpm}, music_bpm_note),
        "tempo_ratio": (ratio, {"motion_bpm": motion_bpm, "music_bpm": reference,
                                "music_bpm_source": "given" if bpm else "beats"}, ratio_note),
        "motion_speed": (motion.mean_speed, motion.params, "still video" if motion.still else None),
        "frame_consistency": (motion.consistency, motion.params,
                              None if motion.consistency is not None else "single frame: no consecutive pair"),
    }


def _pose(video: Path, fps: float, timestamps: bool, beats: _Beats | None, music_note: str | None,
          recipes: Sequence[Recipe]) -> dict[str, MetricValue]:
    track = pose_track(video, fps, timestamps=timestamps)
    params = track.params | {"detected": track.detected}
    found = normalised(track.gridded)
    warning = track.timing.warning()
    if found is None:
        note = "no person found by the pose estimator"
        undefined = [n for n in pose_metric_names([r.name for r in recipes]) if n != "pose_detected"]
        return {name: _noted((None, params, note), warning) for name in undefined} | {
            "pose_detected": (track.detected, params, note)}
    positions, torso = found
    params |= {"torso_px": torso}
    motion = pose_motion(positions, fps, params)
    out = _bas(motion, beats, music_note, recipes, prefix="pose_")
    features = kinetic_features(positions, fps)
    kinetic = kinetic_params(fps) | {"pose": params}
    if features is None:
        out["pose_kinetic_energy"] = (None, kinetic, "fewer than 3 frames: no kinetic features")
    else:
        per_joint = features.reshape(-1, 3)
        kinetic |= {"features": features.tolist()}
        out["pose_kinetic_energy"] = (float((per_joint[:, 0] + per_joint[:, 1]).mean()), kinetic, None)
    note = None if track.detected == 1.0 else f"no person in {1 - track.detected:.0%} of frames (interpolated)"
    return {name: _noted(value, warning) for name, value in out.items()} | {
        "pose_detected": (track.detected, params, note)}


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
    values = _bas(motion, beats, music_note, chosen) | _tempo(motion, beats, music_note, bpm)
    values = {name: value if name == "music_bpm" else _noted(value, motion.note) for name, value in values.items()}
    return values | (_pose(video, rate, timestamps, beats, music_note, chosen) if pose else {})
