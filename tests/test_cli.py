"""The command line: user errors are one line with exit code 2, stages resume, own videos register."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from mibench.media.video import write_mp4
from mibench.store import Store


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and needle in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["generate", "--model", "nope", "--music", "."], "unknown generator 'nope'"),
        (["generate", "--model", "synthetic-onbeat", "--preset", "tiny"], "no music given"),
        (["generate", "--model", "synthetic-onbeat", "--preset", "huge", "--music", "."], "unknown preset 'huge'"),
        (["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--aist-music", "/nonexistent"],
         "aistdancedb"),
        (["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--music", ".", "--suite", "x"],
         "unknown suite"),
        (["generate", "--videos", "."], "--videos needs --name"),
        (["score", "--run-dir", "/nonexistent/run"], "no mibench run"),
        (["report", "--run-dir", "/nonexistent/run"], "no mibench run"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(args, needle, capsys, monkeypatch, tmp_path, music_dir):
    monkeypatch.chdir(music_dir)
    code, _, err = run_cli(args + ["--run-dir", str(tmp_path / "run")] if args[0] == "generate" else args,
                           capsys, monkeypatch)
    assert_one_line_error(code, err, needle)


def test_generate_then_rerun_skips_finished_jobs(tmp_path, music_dir, capsys, monkeypatch):
    args = ["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist", "--music",
            str(music_dir), "--run-dir", str(tmp_path / "run"), "--json"]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 2
    code, out, _ = run_cli(args, capsys, monkeypatch)
    again = json.loads(out)
    assert code == 0 and {k: again[k] for k in ("run_dir", "model", "done", "skipped", "failed")} == {
        "run_dir": str(tmp_path / "run"), "model": "synthetic-onbeat", "done": 0, "skipped": 2, "failed": []}
    assert [v["status"] for v in again["videos"]] == ["done", "done"]
    store = Store.open(tmp_path / "run")
    videos = store.videos()
    assert len(videos) == 2 and all(Path(v["path"]).is_file() for v in videos)
    sidecar = json.loads(Path(videos[0]["path"]).with_suffix(".json").read_text())
    assert sidecar["job"]["job_id"] == videos[0]["job_id"]


def test_a_bad_music_file_fails_its_job_and_the_rest_go_on(tmp_path, music_dir, capsys, monkeypatch):
    (music_dir / "broken.wav").write_bytes(os.urandom(2000))
    code, out, err = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--suite", "aist",
                              "--music", str(music_dir), "--run-dir", str(tmp_path / "run"), "--json"],
                             capsys, monkeypatch)
    result = json.loads(out)
    assert code == 1 and result["done"] == 2
    assert len(result["failed"]) == 1 and "broken.wav" in result["failed"][0]["error"]
    assert "broken.wav" in err


def test_killed_generation_resumes_without_duplicates_or_loss(tmp_path, music_dir):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "mibench", "generate", "--model", "synthetic-onbeat", "--preset", "full",
           "--suite", "prompts", "--limit", "6", "--frames", "90", "--music", str(music_dir), "--run-dir",
           str(run_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run_dir / "mibench.sqlite").is_file() and len(Store.open(run_dir).videos()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {v["job_id"]: Path(v["path"]).stat().st_mtime_ns for v in Store.open(run_dir).videos()}
    assert 2 <= len(first) < 6, "the run was not interrupted mid-way"
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = Store.open(run_dir)
    videos = store.videos()
    assert len(videos) == 6 and len(store.jobs()) == 6
    assert len({v["job_id"] for v in videos}) == 6
    for job_id, mtime in first.items():  # finished videos were kept, not redone
        assert Path(next(v["path"] for v in videos if v["job_id"] == job_id)).stat().st_mtime_ns == mtime
    leftovers = [p.name for p in (run_dir / "videos").rglob("*") if p.is_file() and p.suffix not in (".mp4", ".json")]
    assert leftovers == []


def test_bring_your_own_videos(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    tone = 0.3 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    write_mp4(folder / "a.mp4", frames, 10, audio=tone, audio_sr=16000)
    write_mp4(folder / "b.mp4", frames, 10, audio=tone, audio_sr=16000)
    write_mp4(folder / "silent.mp4", frames, 10)
    (folder / "a.txt").write_text("a dancer <b>in</b> a 'quoted' place\n")
    (folder / "b.json").write_text(json.dumps({"prompt": "from json"}))
    (folder / "broken.mp4").write_bytes(os.urandom(500))
    code, out, err = run_cli(["generate", "--videos", str(folder), "--name", "mine", "--run-dir",
                              str(tmp_path / "run"), "--json"], capsys, monkeypatch)
    result = json.loads(out)
    assert code == 1 and (result["registered"], result["skipped"]) == (3, 1)  # broken.mp4 skipped: a failure
    assert any("broken.mp4" in w for w in result["warnings"])
    assert any("silent.mp4" in w and "no audio" in w for w in result["warnings"])
    store = Store.open(tmp_path / "run")
    jobs = {j["music_id"]: j for j in store.jobs("mine")}
    assert jobs["a"]["prompt"] == "a dancer <b>in</b> a 'quoted' place" and jobs["b"]["prompt"] == "from json"
    assert jobs["silent"]["prompt"] == "" and jobs["a"]["music_path"] == str((folder / "a.mp4").resolve())
    assert {Path(v["path"]).name for v in store.videos("mine")} == {"a.mp4", "b.mp4", "silent.mp4"}


def test_list_and_doctor_json(capsys, monkeypatch):
    code, out, _ = run_cli(["list", "--json"], capsys, monkeypatch)
    listing = json.loads(out)
    assert code == 0
    assert {"musicinfuser", "mochi", "mmdiffusion", "synthetic-onbeat"} <= set(listing["generators"])
    assert "videollama2" in listing["judges"] and set(listing["suites"]) == {"paper", "aist", "prompts"}
    assert {"paper", "aist", "extended"} <= set(listing["prompt_sets"]) and "paper" in listing["question_sets"]
    code, out, _ = run_cli(["doctor", "--json"], capsys, monkeypatch)
    report = json.loads(out)
    assert code == 0 and report["versions"]["torch"].startswith("2.")
    assert report["weights"]["musicinfuser.adapter"].startswith("missing (get it from susunghong/MusicInfuser")


def test_a_registered_video_that_changed_is_refused(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    tone = 0.3 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    write_mp4(folder / "a.mp4", np.zeros((20, 32, 32, 3), np.uint8), 10, audio=tone, audio_sr=16000)
    register = ["generate", "--videos", str(folder), "--name", "mine", "--run-dir", str(tmp_path / "run")]
    assert run_cli(register, capsys, monkeypatch)[0] == 0
    assert run_cli(register, capsys, monkeypatch)[0] == 0  # the same files again: nothing changes
    write_mp4(folder / "a.mp4", np.full((20, 32, 32, 3), 200, np.uint8), 10, audio=tone, audio_sr=16000)
    code, _, err = run_cli(register, capsys, monkeypatch)
    assert code == 2 and "1 videos changed since they were registered as 'mine' (a)" in err
    assert len(err.strip().splitlines()) == 1


def test_doctor_says_what_a_gpu_runs_of_each_judge():
    from mibench.cards import card
    from mibench.doctor import gpu_fit

    qwen3 = card("qwen3-omni", "judge").memory_gb
    assert gpu_fit(qwen3, 80.0).startswith("fits up to 30 s")  # 77.8 GB = 72.5 GiB fits, 95.8 GB does not
    assert gpu_fit(qwen3, 140.0).startswith("fits up to 120 s")
    assert gpu_fit(qwen3, 40.0).startswith("does not fit on the GPU alone")
    assert gpu_fit(card("qwen2.5-omni", "judge").memory_gb, 40.0).startswith("fits up to 30 s")
    assert gpu_fit({}, 80.0) == "memory not stated by its model card"
    assert gpu_fit(qwen3, None).startswith("no GPU here")


# every generate option registering does not use, with a value other than its default
GENERATE_ONLY = {"--model": "synthetic-onbeat", "--as": "x", "--suite": "aist", "--aist-music": ".", "--music": ".",
                 "--preset": "tiny", "--seed": "7", "--seeds": "2", "--frames": "5", "--tempo": "2.0", "--weights": ".",
                 "--steps": "3", "--dtype": "bf16", "--offload": "model", "--vae-tiling": None, "--fuse-lora": None,
                 "--device": "cuda", "--limit": "1", "--shard": "1/2", "--executor": "ray", "--ray-address": "auto",
                 "--workers": "2", "--no-shared-fs": None, "--max-retries": "1"}


def test_registering_videos_refuses_the_options_of_generating(tmp_path, capsys, monkeypatch):
    import typer.main

    from mibench.cli import REGISTER_USES, app

    params = typer.main.get_command(app).commands["generate"].params
    assert set(GENERATE_ONLY) == {p.opts[0] for p in params if p.name not in REGISTER_USES}  # none forgotten
    folder = tmp_path / "mine"
    folder.mkdir()
    tone = 0.3 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    write_mp4(folder / "a.mp4", np.zeros((20, 32, 32, 3), np.uint8), 10, audio=tone, audio_sr=16000)
    register = ["generate", "--videos", str(folder), "--name", "mine", "--run-dir", str(tmp_path / "run"), "--json"]
    for flag, value in GENERATE_ONLY.items():
        code, out, err = run_cli(register + [flag] + ([value] if value is not None else []), capsys, monkeypatch)
        assert_one_line_error(code, err, f"{flag}: options of generating videos, but --videos registers")
        assert out == ""
    every = [part for flag, value in GENERATE_ONLY.items() for part in (flag, value) if part is not None]
    code, _, err = run_cli(register + every, capsys, monkeypatch)
    assert_one_line_error(code, err, ", ".join(GENERATE_ONLY) + ": options of generating videos")
    assert not (tmp_path / "run").exists()  # refused before anything was written

    code, out, _ = run_cli(register + ["--preset", "full", "--seed", "0"], capsys, monkeypatch)  # the defaults
    assert code == 0 and json.loads(out)["registered"] == 1


def test_name_without_videos_is_refused(tmp_path, music_dir, capsys, monkeypatch):
    code, out, err = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--name", "mine",
                              "--music", str(music_dir), "--run-dir", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 2 and out == "" and err.startswith("error: --name names registered videos")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "start"), [
    (["generate", "--limit", "0"], "error: Invalid value for '--limit'"),
    (["generate", "--bogus"], "error: No such option: --bogus"),
    (["no-such-command"], "error: No such command 'no-such-command'"),
    (["generate", "--model", "synthetic-onbeat", "--device", "nope"], "error: --device 'nope' is not a torch device"),
    (["bench", "gpu"], "error: the full-size GPU bench does not run on cpu"),
])
def test_usage_errors_are_one_line(args, start, capsys, monkeypatch):
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and out == "" and err.startswith(start) and len(err.strip().splitlines()) == 1, err


def test_a_file_where_the_run_folder_goes_is_one_line(tmp_path, music_dir, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    for run_dir in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        code, _, err = run_cli(["generate", "--model", "synthetic-onbeat", "--preset", "tiny", "--music",
                                str(music_dir), "--run-dir", str(run_dir)], capsys, monkeypatch)
        blocked = tmp_path / "afile"
        assert code == 2 and err.startswith(f"error: run folder {run_dir} cannot be used: {blocked} is a file")


def test_registering_unreadable_videos_fails(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"not a video")
    code, _, err = run_cli(["generate", "--videos", str(folder), "--name", "mine", "--run-dir", str(tmp_path / "run")],
                           capsys, monkeypatch)
    assert code == 2 and err.startswith("error: none of the 1 mp4s") and len(err.strip().splitlines()) == 1
    write_mp4(folder / "b.mp4", np.zeros((10, 32, 32, 3), np.uint8), 10, audio=np.zeros(16000, np.float32),
              audio_sr=16000)
    code, out, err = run_cli(["generate", "--videos", str(folder), "--name", "mine", "--run-dir", str(tmp_path / "run"),
                              "--json"], capsys, monkeypatch)
    assert code == 1 and (json.loads(out)["registered"], json.loads(out)["skipped"]) == (1, 1)  # the name was free
