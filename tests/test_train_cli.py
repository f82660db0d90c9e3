"""`mibench prepare`, `train` and `select-layers` end to end on synthetic dancers with the tiny preset: the
training loss drops, a run killed by SIGKILL resumes to the same adapter bytes, the adapter generates, and
select-layers writes the list `train --layers` consumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

from mibench.media.synth import dancer_video, drum_track
from mibench.media.video import write_mp4
from mibench.suite.aist import tempo

SIZE = ["--frames", "25", "--height", "32", "--width", "48"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Three AIST-named on-beat dancers at their tracks' tempi and two in-the-wild ones, prepared."""
    root = tmp_path_factory.mktemp("train")
    videos = root / "videos"
    videos.mkdir()
    for i, music in enumerate(["mBR1", "mPO2", "mLO3"]):
        bpm = tempo(music)
        write_mp4(videos / f"g{music[1:3]}_sBM_c01_d0{i + 1}_{music}_ch01.mp4",
                  dancer_video(bpm, 12.0, fps=30, size=(96, 96), seed=i), 30,
                  audio=drum_track(bpm, 12.0, sr=16000, seed=i), audio_sr=16000)
    for i, bpm in enumerate((96, 132)):
        path = videos / f"wild-{bpm}bpm.mp4"
        write_mp4(path, dancer_video(bpm, 12.0, fps=30, size=(96, 96), seed=10 + i), 30,
                  audio=drum_track(bpm, 12.0, sr=16000, seed=10 + i), audio_sr=16000)
        path.with_suffix(".txt").write_text("a stick figure dancing on the beat")
    return root


def test_prepare_then_train_lowers_the_loss(prepared, music_dir, capsys, monkeypatch):
    out = prepared / "prep"
    code, stdout, _ = run_cli(["prepare", str(prepared / "videos"), "--out", str(out), "--preset", "tiny", *SIZE,
                               "--crops-per-minute", "30", "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(stdout)["clips"] == 30
    kinds = [json.loads(line)["kind"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert kinds.count("aist") == 18 and kinds.count("wild") == 12
    code, stdout, _ = run_cli(["train", str(out), "--out", str(prepared / "run"), "--config", "tiny", "--preset",
                               "tiny", "--json"], capsys, monkeypatch)
    result = json.loads(stdout)
    assert code == 0 and result["finished"] and result["end_step"] == 300
    log = pd.read_csv(prepared / "run" / "log.csv")
    assert len(log) == 300 and log["loss"][-50:].mean() < 0.97 * log["loss"][:50].mean()
    assert (prepared / "run" / "transformer").is_dir()  # a whole --weights folder
    code, stdout, _ = run_cli(["generate", "--model", "musicinfuser", "--preset", "tiny", "--weights",
                               str(prepared / "run"), "--suite", "aist", "--music", str(music_dir),
                               "--limit", "1", "--run-dir", str(prepared / "gen"), "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(stdout)["done"] == 1


def test_a_killed_run_resumes_to_the_same_adapter(prepared, capsys, monkeypatch):
    out = prepared / "prep"
    if not (out / "manifest.jsonl").is_file():
        run_cli(["prepare", str(prepared / "videos"), "--out", str(out), "--preset", "tiny", *SIZE,
                 "--crops-per-minute", "30"], capsys, monkeypatch)
    whole, killed = prepared / "whole", prepared / "killed"
    assert run_cli(["train", str(out), "--out", str(whole), "--config", "tiny", "--preset", "tiny"],
                   capsys, monkeypatch)[0] == 0
    command = [sys.executable, "-m", "mibench.cli", "train", str(out), "--out", str(killed), "--config", "tiny",
               "--preset", "tiny"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "step-100" / "state.json").is_file() and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "musicinfuser.safetensors").exists()  # killed before the end
    code, stdout, _ = run_cli(["train", str(out), "--out", str(killed), "--config", "tiny", "--preset", "tiny",
                               "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(stdout)["start_step"] >= 100
    assert (killed / "musicinfuser.safetensors").read_bytes() == (whole / "musicinfuser.safetensors").read_bytes()
    columns = ["step", "loss", "lr", "sigma", "caption", "clip"]  # not the seconds
    assert pd.read_csv(killed / "log.csv")[columns].equals(pd.read_csv(whole / "log.csv")[columns])


def test_select_layers_feeds_train(prepared, capsys, monkeypatch):
    layers = prepared / "layers"
    code, stdout, _ = run_cli(["select-layers", "--out", str(layers), "--preset", "tiny", "--measure",
                               "metric:frame_consistency", "--k", "1", "--prompts", "1", "--steps", "2",
                               "--frames", "13", "--height", "32", "--width", "48", "--json"], capsys, monkeypatch)
    result = json.loads(stdout)
    chosen = json.loads((layers / "layers.json").read_text())
    assert code == 0 and result["layers"] == chosen and len(chosen) == 1
    code, _, err = run_cli(["select-layers", "--out", str(layers), "--preset", "tiny", "--measure", "vibes"],
                           capsys, monkeypatch)
    assert code == 2 and "unknown measure 'vibes'" in err


def test_data_parallel_launch_trains_with_two_processes(prepared, capsys, monkeypatch):
    """`torchrun` (what `accelerate launch` runs) with 2 CPU processes: one log, one checkpoint, and a
    single-process resume of that run is refused (the data order depends on the process count)."""
    out = prepared / "prep"
    if not (out / "manifest.jsonl").is_file():
        run_cli(["prepare", str(prepared / "videos"), "--out", str(out), "--preset", "tiny", *SIZE,
                 "--crops-per-minute", "30"], capsys, monkeypatch)
    dp = prepared / "dp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "mibench.cli", "train",
               str(out), "--out", str(dp), "--config", "tiny", "--preset", "tiny", "--max-steps", "20"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "ACCELERATE_USE_CPU": "true"},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("train: steps 0 -> 20") == 1  # the main process reports
    assert len(pd.read_csv(dp / "log.csv")) == 20 and (dp / "checkpoints" / "step-20" / "state.json").is_file()
    code, _, err = run_cli(["train", str(out), "--out", str(dp), "--config", "tiny", "--preset", "tiny"],
                           capsys, monkeypatch)
    assert code == 2 and "process" in err
