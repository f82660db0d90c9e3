"""The pose path's metrics (the paper's Table 8 on generated videos), on the body joints of the 2-D pose
(`kinetics.BODY_JOINTS`): BAS by recipe on the pose motion signal (`pose_bas_<recipe>`), the kinetic energy
with the whole kinetic feature vector (at 60 fps, `kinetics.at_kinetic_rate`) in its parameters
(from which the report computes each model's Dist_k) and the share of frames with a person. A video in
which no person is found leaves them undefined with a note; a variable-frame-rate one carries the timing
warning in every note but `pose_detected`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from mibench.metrics.bas import RECIPES, scores
from mibench.metrics.family import Family, Inputs, Metric, MetricValue, noted
from mibench.metrics.kinetics import (
    BODY_JOINTS,
    KINETIC_FPS,
    at_kinetic_rate,
    body,
    kinetic_features,
    kinetic_params,
    normalised,
    pose_motion,
)
from mibench.metrics.pose import pose_track


def pose_metrics(inputs: Inputs) -> dict[str, MetricValue]:
    """The pose path's metrics of one video (see the module docstring)."""
    fps, recipes, beats, music_note = inputs.fps, inputs.recipes, inputs.beats, inputs.music_note
    track = pose_track(inputs.video, fps, timestamps=inputs.timestamps)
    params = track.params | {"detected": track.detected}
    found = normalised(track.gridded)
    warning = track.timing.warning()
    if found is None:
        note = "no person found by the pose estimator"
        undefined = [m.name for m in _metrics([r.name for r in recipes]) if m.name != "pose_detected"]
        return {name: noted((None, params, note), warning) for name in undefined} | {
            "pose_detected": (track.detected, params, note)}
    positions, torso = found
    positions = body(positions)
    params |= {"torso_px": torso, "joints": list(BODY_JOINTS)}
    motion = pose_motion(positions, fps, params)
    out = scores(motion, beats, music_note, recipes, prefix="pose_")
    features = kinetic_features(at_kinetic_rate(positions, fps), KINETIC_FPS)
    kinetic = kinetic_params(fps) | {"pose": params}
    if features is None:
        out["pose_kinetic_energy"] = (None, kinetic, "fewer than 3 frames: no kinetic features")
    else:
        per_joint = features.reshape(-1, 3)
        kinetic |= {"features": features.tolist()}
        out["pose_kinetic_energy"] = (float((per_joint[:, 0] + per_joint[:, 1]).mean()), kinetic, None)
    note = None if track.detected == 1.0 else f"no person in {1 - track.detected:.0%} of frames (interpolated)"
    return {name: noted(value, warning) for name, value in out.items()} | {
        "pose_detected": (track.detected, params, note)}


def _metrics(names: Sequence[str]) -> tuple[Metric, ...]:
    bas = tuple(Metric(f"pose_bas_{n}", "pose", ("poses", "music"), "higher",
                       f"Beat Alignment Score, {RECIPES[n].source}, on the 2-D pose motion speed", n) for n in names)
    return bas + (
        Metric("pose_kinetic_energy", "pose", ("poses",), None,
               "mean horizontal + vertical kinetic energy of the joints (aistplusplus_api kinetic features)"),
        Metric("pose_detected", "pose", ("poses",), "higher",
               "share of frames in which the pose estimator found a person"),
    )


FAMILY = Family("pose", ("poses",), _metrics, pose_metrics)
