"""`mibench generate` with the diffusion generators' tiny presets and with `--weights DIR`: playable mp4s
with the music muxed in, every job in the store, re-runs skip, a broken adapter is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from mibench.generators.musicinfuser.tiny import write_tiny_weights
from mibench.media.audio import load_audio
from mibench.media.video import probe, read_frames
from mibench.store import Store


@pytest.mark.parametrize(("model", "fps", "frames"), [("musicinfuser", 30, 13), ("mochi", 30, 13),
                                                       ("mmdiffusion", 10, 16)])
def test_tiny_presets_write_playable_videos_with_music(model, fps, frames, tmp_path, music_dir, capsys,
                                                       monkeypatch):
    args = ["generate", "--model", model, "--preset", "tiny", "--suite", "aist", "--music", str(music_dir),
            "--run-dir", str(tmp_path / "run"), "--json"]
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 2
    store = Store.open(tmp_path / "run")
    assert len(store.jobs(model)) == 2
    for video in store.videos(model):
        info = probe(video["path"])
        assert (info.num_frames, info.fps, info.has_audio) == (frames, fps, True)
        assert read_frames(video["path"], [0, frames - 1]).shape[0] == 2
        audio, _ = load_audio(video["path"], 16000)
        assert abs(len(audio) / 16000 - frames / fps) <= 1024 / 16000 + 1e-6  # trimmed to the video (+1 AAC frame)
    code, out, _ = run_cli(args, capsys, monkeypatch)
    assert code == 0 and json.loads(out)["skipped"] == 2


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


def test_own_weights_folder(weights_dir, tmp_path, music_dir, capsys, monkeypatch):
    args = ["generate", "--model", "musicinfuser", "--preset", "tiny", "--weights", str(weights_dir), "--suite",
            "aist", "--music", str(music_dir), "--limit", "1", "--json"]
    code, out, _ = run_cli(args + ["--run-dir", str(tmp_path / "a")], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["done"] == 1
    code, out, _ = run_cli(["generate", "--model", "musicinfuser", "--preset", "tiny", "--suite", "aist", "--music",
                            str(music_dir), "--limit", "1", "--json", "--run-dir", str(tmp_path / "b")],
                           capsys, monkeypatch)
    mine, preset = Store.open(tmp_path / "a").videos()[0], Store.open(tmp_path / "b").videos()[0]
    assert (read_frames(mine["path"]) == read_frames(preset["path"])).all()  # the saved preset, reloaded

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in weights_dir.iterdir():
        (broken / item.name).symlink_to(item)
    (broken / "musicinfuser.safetensors").unlink()
    data = (weights_dir / "musicinfuser.safetensors").read_bytes()
    (broken / "musicinfuser.safetensors").write_bytes(data[: len(data) // 2])
    args[args.index(str(weights_dir))] = str(broken)
    code, _, err = run_cli(args + ["--run-dir", str(tmp_path / "c")], capsys, monkeypatch)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "musicinfuser.safetensors" in lines[0], err


def test_frame_count_mochi_cannot_make_is_one_line(tmp_path, music_dir, capsys, monkeypatch):
    code, _, err = run_cli(["generate", "--model", "musicinfuser", "--preset", "tiny", "--frames", "12", "--music",
                            str(music_dir), "--run-dir", str(tmp_path / "run")], capsys, monkeypatch)
    assert code == 2 and err.strip().startswith("error: num_frames 12 is not 6k+1")
    assert len(err.strip().splitlines()) == 1
