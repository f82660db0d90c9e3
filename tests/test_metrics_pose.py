"""The 2-D pose path end to end: mediapipe BlazePose on synthetic cartoon dancers with known beats,
the run stage (`mibench metrics --pose`), Dist_k in the report, and `mibench doctor`."""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from mibench.media.synth import dancer_video, drum_track
from mibench.media.video import write_mp4
from mibench.metrics.compute import compute_video_metrics
from mibench.metrics.kinetics import BODY_JOINTS
from mibench.metrics.pose import estimator_status
from mibench.metrics.pose_path import FAMILY as POSE
from mibench.report.aggregate import aggregate
from mibench.store import Store

SECONDS, FPS, SIZE = 4.0, 30, (256, 256)


def _clip(folder: Path, name: str, bpm: float, **dancer) -> Path:
    path = folder / f"{name}.mp4"
    frames = dancer_video(bpm, SECONDS, fps=FPS, size=SIZE, **({"figure": "person"} | dancer))
    write_mp4(path, frames, FPS, audio=drum_track(bpm, SECONDS), audio_sr=16000)
    return path


@cache
def _metrics(folder: Path, bpm: float, mode: str, phase: float = 0.0, seed: int = 0) -> dict:
    clip = _clip(folder, f"{mode}-{bpm}-{phase}-{seed}", bpm, mode=mode, phase_beats=phase, seed=seed)
    return compute_video_metrics(clip, bpm=bpm, pose=True, recipes=("fact", "bailando", "mibench"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pose")


def test_the_estimator_runs_offline_on_numpy_2():
    assert int(np.__version__.split(".")[0]) >= 2
    assert estimator_status().startswith("mediapipe 0.10.21 BlazePose")


@pytest.mark.parametrize(("bpm", "seed"), [(90.0, 0), (128.0, 1)])
@pytest.mark.parametrize("variant", ["fact", "bailando", "mibench"])
def test_on_beat_person_beats_off_beat_person(clips, bpm, seed, variant):
    on, off = _metrics(clips, bpm, "on_beat"), _metrics(clips, bpm, "off_beat", seed=seed)
    assert on["pose_detected"][0] == 1.0 and off["pose_detected"][0] == 1.0
    # mediapipe's keypoints jitter and the published recipes keep librosa's onset lag, so an on-beat person
    # scores 0.67-0.95 here, an off-beat one 0.02-0.46
    assert on[f"pose_bas_{variant}"][0] > 0.6
    assert on[f"pose_bas_{variant}"][0] - off[f"pose_bas_{variant}"][0] > 0.3
    params = on[f"pose_bas_{variant}"][1]
    assert params["motion"]["signal"] == "pose" and params["sigma_s"] == 3 / 60 and params["fps"] == FPS


def test_half_beat_shift_scores_low_on_every_recipe(clips):
    shifted = _metrics(clips, 90.0, "on_beat", phase=0.5)
    assert all(shifted[f"pose_bas_{r}"][0] < 0.2 for r in ("fact", "bailando", "mibench"))


def test_still_person_scores_zero_with_a_note(clips):
    still = _metrics(clips, 90.0, "still")
    for variant in ("fact", "bailando"):
        value, _, note = still[f"pose_bas_{variant}"]
        assert value == 0.0 and note.startswith("still video")
    assert still["pose_kinetic_energy"][0] < _metrics(clips, 90.0, "on_beat")["pose_kinetic_energy"][0] / 100


def test_kinetic_features_are_stored_for_dist_k(clips):
    value, params, note = _metrics(clips, 128.0, "on_beat")["pose_kinetic_energy"]
    assert note is None and value > 0
    assert len(params["features"]) == len(BODY_JOINTS) * 3 and params["aist_acceleration"] is True
    assert params["frame_time"] == pytest.approx(1 / 60) and params["source_fps"] == FPS
    assert params["resampled"] == (f"cubic spline from {FPS:g} to 60 fps" if FPS != 60 else "none")
    assert params["joints"] == list(BODY_JOINTS)


def test_no_person_leaves_pose_metrics_undefined_with_a_note(clips):
    frames = np.full((int(SECONDS * FPS), *SIZE, 3), 200, np.uint8)
    for i, frame in enumerate(frames):  # a dark square sliding across an empty room
        frame[100:130, 2 * i : 2 * i + 30] = 40
    clip = clips / "empty.mp4"
    write_mp4(clip, frames, FPS, audio=drum_track(90.0, SECONDS), audio_sr=16000)
    values = compute_video_metrics(clip, bpm=90.0, pose=True)
    assert values["pose_detected"][0] == 0.0
    for name in [m.name for m in POSE.metrics(("fact", "bailando"))][:-1]:
        assert values[name][0] is None and values[name][2] == "no person found by the pose estimator"
    assert values["motion_speed"][0] > 0  # the pixel path still sees the square move


def test_metrics_stage_with_pose_and_dist_k_in_the_report(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    for name, modes in (("steady", ["on_beat", "on_beat"]), ("varied", ["on_beat", "off_beat"])):
        folder = tmp_path / name
        folder.mkdir()
        for i, mode in enumerate(modes):
            _clip(folder, f"clip{i}", 90.0 + 30.0 * i, mode=mode)
        code, _, _ = run_cli(["generate", "--videos", str(folder), "--name", name, "--run-dir", str(run_dir)],
                             capsys, monkeypatch)
        assert code == 0
    code, out, _ = run_cli(["metrics", "--pose", "--run-dir", str(run_dir), "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 4
    store = Store.open(run_dir)
    names = {m["name"] for m in store.metrics()}
    assert set([m.name for m in POSE.metrics(("fact", "bailando"))]) <= names and "bas_fact" in names
    objective = aggregate(store, n_boot=50).objective.set_index(["model", "key"])
    assert "pose_dist_k" not in objective.index.get_level_values("key")  # no reference: not the published number
    steady, varied = objective.loc[("steady", "pose_dist_k_pooled")], objective.loc[("varied", "pose_dist_k_pooled")]
    assert steady["n_videos"] == 2 and varied["n_videos"] == 2
    assert varied["mean"] > 0 and steady["mean"] > 0
    code, _, _ = run_cli(["report", "--run-dir", str(run_dir)], capsys, monkeypatch)
    assert code == 0 and "pose_dist_k_pooled" in (run_dir / "report" / "index.html").read_text()
    pages = [p.read_text() for p in (run_dir / "report").rglob("*.html") if p.name != "index.html"]
    features = f"features = {len(BODY_JOINTS) * 3} values (for Dist_k)"
    assert any(features in page and "motion.signal = pose" in page for page in pages)
    by_steady = aggregate(store, n_boot=50, dist_reference="steady").objective.set_index(["model", "key"])
    assert by_steady.loc[("varied", "pose_dist_k"), "mean"] != varied["mean"]
    code, _, _ = run_cli(["report", "--dist-reference", "steady", "--run-dir", str(run_dir)], capsys, monkeypatch)
    assert code == 0 and "those of <b>steady</b>" in (run_dir / "report" / "index.html").read_text()
    code, _, err = run_cli(["report", "--dist-reference", "nobody", "--run-dir", str(run_dir)], capsys, monkeypatch)
    assert code == 2 and "'nobody' is not a model of this run" in err and len(err.strip().splitlines()) == 1


def test_doctor_names_the_pose_estimator(capsys, monkeypatch):
    code, out, _ = run_cli(["doctor"], capsys, monkeypatch)
    assert code == 0 and "pose estimator" in out and "BlazePose" in out


def test_pose_track_keeps_mediapipe_logs_off_stderr(clips, capfd):
    from mibench.metrics.pose import pose_track

    track = pose_track(_clip(clips, "quiet", 120.0), FPS)
    assert track.detected == 1.0 and track.keypoints.shape == (SECONDS * FPS, 33, 2)
    assert capfd.readouterr().err == ""


def test_without_mediapipe_the_pose_path_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)  # import fails as if not installed
    assert estimator_status().startswith("unavailable: the pose path needs mediapipe 0.10.21")
    folder = tmp_path / "videos"
    folder.mkdir()
    _clip(folder, "one", 120.0)
    run_dir = str(tmp_path / "run")
    code, _, _ = run_cli(["generate", "--videos", str(folder), "--name", "m", "--run-dir", run_dir], capsys,
                         monkeypatch)
    assert code == 0
    code, _, err = run_cli(["metrics", "--pose", "--run-dir", run_dir], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'pip install -e ".[pose]" && pip install --no-deps mediapipe==0.10.21' in err  # brackets kept
    code, out, _ = run_cli(["doctor"], capsys, monkeypatch)
    assert code == 0 and '".[pose]"' in out
