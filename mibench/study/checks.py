"""Attention-check videos of a study: a synthetic dancer on the beat and one off it, on one drum track.

`write_beat_checks` renders them once per study into `<run>/study/<study id>/checks/` as `onbeat.mp4` and
`offbeat.mp4` (H.264 + AAC, 256x256, 24 fps, 4 s, the same 120 BPM `drum_track` in both; the dancers of
`media.synth.dancer_video`, modes "on_beat" and "off_beat"). They are not jobs of the run, because a run's
jobs feed the score, measure and report stages: `study_items` names them by the pseudo job ids
`_check-onbeat` and `_check-offbeat` (a real job id never starts with '_'), which `check_video` maps to
those files.
"""

from __future__ import annotations

from pathlib import Path

from mibench.media.synth import dancer_video, drum_track
from mibench.media.video import write_mp4
from mibench.store import Store

ON_BEAT, OFF_BEAT = "_check-onbeat", "_check-offbeat"
BEAT_ITEM = "_check-beat"  # the item id of the check pair
_FILES = {ON_BEAT: ("on_beat", "onbeat.mp4"), OFF_BEAT: ("off_beat", "offbeat.mp4")}
_BPM, _SECONDS, _FPS, _SIZE, _SR = 120.0, 4.0, 24, (256, 256), 16000


def check_dir(store: Store, study_id: str) -> Path:
    return store.root / "study" / study_id / "checks"


def write_beat_checks(store: Store, study_id: str) -> tuple[str, str]:
    """Write the study's on-beat and off-beat videos (kept when present); their pseudo job ids (a, b)."""
    folder = check_dir(store, study_id)
    folder.mkdir(parents=True, exist_ok=True)
    music = drum_track(_BPM, _SECONDS, sr=_SR)
    for mode, name in _FILES.values():
        if not (folder / name).is_file():
            frames = dancer_video(_BPM, _SECONDS, _FPS, _SIZE, mode=mode, figure="person")
            write_mp4(folder / name, frames, _FPS, audio=music, audio_sr=_SR)
    return ON_BEAT, OFF_BEAT


def check_video(store: Store, study_id: str, job_id: str) -> Path | None:
    """The file of a check's pseudo job id; None for any other id."""
    return check_dir(store, study_id) / _FILES[job_id][1] if job_id in _FILES else None
